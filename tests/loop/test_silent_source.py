"""A silent metric source beside a silent provider costs a tick one observe timeout.

The metric sources of ``[metrics]`` are read beside the actuators' observe, each within
``loop.observe_timeout``. Before, they were read after it, each within the observe
timeout again: a provider and a source both silent took two observe timeouts, and with
the least tick timeout the configuration takes (observe + apply) a slow apply after them
was cut at the tick timeout, every tick. The deadline is the event loop's, so the apply
is slow in real time; the numbers leave seconds of margin either way.
"""

from __future__ import annotations

import anyio
import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.loop.scheduler import bounded_tick
from jarvis.model import Action, EventKind, Health, Outcome
from jarvis.policies.heal import HealPolicy
from tests.fakes import FakeActuator, FakeSource
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio

OBSERVE, APPLY = 3.0, 6.0
TICK = OBSERVE + APPLY
"""The least tick timeout the configuration takes (`loop.tick_timeout`)."""
SLOW_APPLY = 4.0
"""An apply well within its timeout, but longer than what two observe timeouts one after
another leave of the tick (9 - 2 x 3 = 3 s): cut then; now whole, 2 s to spare."""


async def test_a_silent_provider_and_a_silent_source_cost_the_tick_one_observe_timeout(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """A provider and a metric source that never answer are cut together at the observe
    timeout, each recorded, so the tick keeps its apply timeout: a slow restart of another
    provider's resource ends before the tick timeout (observe + apply), which cuts nothing."""
    hung = FakeActuator(clock, provider="other", name="other").add("x")
    hung.on_observe = anyio.sleep_forever
    fleet.services["web"].health = Health.UNHEALTHY

    async def slow(_action: Action) -> Outcome | None:
        await anyio.sleep(SLOW_APPLY)
        return None

    fleet.on_apply = slow
    app = await make_app(
        [HealPolicy()],
        actuators=[hung, fleet],
        sources=[FakeSource(services=("sim://api",), hang=True)],
        loop={"observe_timeout": OBSERVE, "apply_timeout": APPLY, "tick_timeout": TICK},
    )

    report = await bounded_tick(app.reconciler, TICK)

    assert report is not None, "the tick was cut at loop.tick_timeout"
    assert [str(d.action.target) for d in report.applied] == ["sim://web"]
    cut = {"other": "observe timed out after 3s", "prom": "metrics read timed out after 3s"}
    assert report.snapshot.errors == cut
    failed = await app.store.events(kinds=[EventKind.OBSERVE_FAILED])
    assert {e.payload["actuator"]: e.payload["error"] for e in failed} == cut
    assert await app.store.events(kinds=[EventKind.TICK_FINISHED])
