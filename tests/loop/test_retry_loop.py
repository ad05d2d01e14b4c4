"""The retry budget through the whole loop: backoff, escalation, quarantine that
survives a restart, operator reset, and intents orphaned by a crash."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from jarvis.actuators.base import ActuatorError
from jarvis.loop.admin import AdminService
from jarvis.loop.clock import VirtualClock
from jarvis.loop.reconciler import Reconciler
from jarvis.model import (
    MAX_URI_BYTES,
    Action,
    ActionKind,
    ErrorKind,
    Event,
    EventKind,
    Health,
    Outcome,
    ResourceRef,
    Restart,
    Scale,
)
from jarvis.policies.heal import HealPolicy
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio


@pytest.fixture
def db_url(sqlite_or_postgres: str) -> str:
    """Each test here runs on the embedded SQLite default and on a real PostgreSQL."""
    return sqlite_or_postgres


async def always_fail(action: Action) -> Outcome:
    return Outcome.failure("ImagePullBackOff", kind=ErrorKind.TEMPORARY)


async def run_ticks(reconciler: Reconciler, clock: VirtualClock, n: int) -> None:
    for _ in range(n):
        await reconciler.tick()
        clock.advance(30)


async def test_three_failures_escalate_and_quarantine_across_a_restart(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Three failed restarts with backoff, one escalation, and a quarantine a restart keeps."""
    fleet.services["web"].health = Health.UNHEALTHY
    fleet.on_apply = always_fail
    app = await make_app([HealPolicy()])
    await run_ticks(app.reconciler, clock, 10)
    assert len(fleet.applied) == 3
    escalated = await app.store.events(kinds=["action.escalated"])
    assert [e.resource for e in escalated] == ["sim://web"]
    blocked = await app.store.events(kinds=["action.blocked"], limit=100)
    reasons = [e.payload["blocked"] for e in blocked]
    assert reasons[:1] == ["retry_budget"] and reasons[-1] == "quarantine"
    assert app.metrics.registry.get_sample_value("jarvis_quarantined_resources") == 1

    # A new process on the same database keeps the quarantine.
    await app.aclose()
    restarted = await make_app([HealPolicy()])
    await run_ticks(restarted.reconciler, clock, 3)
    assert len(fleet.applied) == 3

    # The operator's reset lifts it.
    assert await restarted.store.reset_retries("sim://web") == 1
    fleet.on_apply = None
    await run_ticks(restarted.reconciler, clock, 1)
    assert len(fleet.applied) == 4
    assert fleet.services["web"].health is Health.HEALTHY


async def test_an_orphaned_intent_is_closed_as_unknown_and_counted(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """An action.started without an outcome becomes action.unknown and a failed attempt."""
    app = await make_app()
    now = clock.now()
    app.store.append(
        [
            Event(
                kind=EventKind.ACTION_STARTED,
                ts=now - timedelta(seconds=5),
                idempotency_key="crashed:started",
                tick_id="crashed",
                resource="sim://api",
                action_kind="restart",
                policy="heal",
                action_id="crashed",
            )
        ]
    )
    await app.store.flush()
    await app.aclose()

    restarted = await make_app()
    unknown = await restarted.store.events(kinds=["action.unknown"])
    assert [(e.resource, e.action_id) for e in unknown] == [("sim://api", "crashed")]
    assert await restarted.store.open_intents() == []
    ledger = await restarted.store.load_retries()
    state = ledger[("sim://api", "restart")]
    assert state.consecutive_failures == 1 and len(state.attempts) == 1

    # Starting again does not close it twice.
    again = await make_app()
    assert len(await again.store.events(kinds=["action.unknown"])) == 1


async def test_an_apply_that_hangs_times_out_as_unknown_and_counts_as_a_failure(
    make_app: AppFactory, fleet: FakeActuator
) -> None:
    """An apply past its timeout may have reached the provider: it is recorded as unknown
    (timed out), not failed, and charged to the budget."""

    async def hang(action: Action) -> Outcome:
        await anyio.sleep_forever()
        raise AssertionError

    fleet.on_apply = hang
    fleet.services["api"].health = Health.UNHEALTHY
    app = await make_app([HealPolicy()], loop={"apply_timeout": 0.05})
    report = await app.reconciler.tick()
    outcome = report.decisions[0].outcome
    assert outcome is not None and outcome.status == "timed_out"
    assert await app.store.events(kinds=["action.failed"]) == []
    [unknown] = await app.store.events(kinds=["action.unknown"])
    assert unknown.payload["outcome"] == "timed_out"
    assert "did not finish within" in str(unknown.payload["detail"])
    ledger = await app.store.load_retries()
    assert ledger[("sim://api", "restart")].consecutive_failures == 1


async def test_scale_actions_respect_the_restart_kind_budget_separately(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """The budget counts per (resource, action kind): a quarantined restart leaves scale alone."""
    fleet.on_apply = always_fail
    restart = Action(ResourceRef("sim", "api"), Restart(), "p", "r")
    app = await make_app([ProposeEach([restart])])
    await run_ticks(app.reconciler, clock, 10)
    scale = Action(ResourceRef("sim", "api"), Scale(replicas=3), "p", "r")
    fleet.on_apply = None
    app2 = await make_app([ProposeEach([scale])])
    report = await app2.reconciler.tick()
    assert [d.action.kind for d in report.applied] == [ActionKind.SCALE]


async def test_fixes_that_succeed_without_fixing_escalate_when_the_budget_is_spent(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Three 'successful' restarts of a service that stays broken escalate and quarantine."""
    fleet.services["web"].health = Health.UNHEALTHY
    fleet.restart_heals = False
    app = await make_app([HealPolicy()])
    await run_ticks(app.reconciler, clock, 6)
    assert len(fleet.applied) == 3
    escalated = await app.store.events(kinds=["action.escalated"])
    assert [e.resource for e in escalated] == ["sim://web"]
    assert "did not fix it" in escalated[0].payload["last_error"]
    ledger = await app.store.load_retries()
    assert ledger[("sim://web", "restart")].quarantined


async def test_a_terminal_error_escalates_and_quarantines_after_one_attempt(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Access denied is not retried three times: one attempt, one escalation, quarantined."""

    async def denied(action: Action) -> Outcome:
        return Outcome.failure("AccessDenied: not allowed", kind=ErrorKind.TERMINAL)

    fleet.services["web"].health = Health.UNHEALTHY
    fleet.on_apply = denied
    app = await make_app([HealPolicy()])
    await run_ticks(app.reconciler, clock, 6)
    assert len(fleet.applied) == 1
    (escalated,) = await app.store.events(kinds=["action.escalated"])
    assert escalated.resource == "sim://web"
    assert "terminal" in (escalated.reason or "")
    assert escalated.payload["last_error"] == "AccessDenied: not allowed"
    blocked = await app.store.events(kinds=["action.blocked"], limit=100)
    assert {e.payload["blocked"] for e in blocked} == {"quarantine"}


async def test_a_name_holding_a_secret_is_held_to_its_retry_budget_and_reset_by_name(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """The ledger row of a name the store redacts still quarantines it, and resets by its name."""
    secret = "s3cr3t-admin-token"  # what a tenant may name a service after, by chance
    name = f"web-{secret}"
    fleet.add(name, health=Health.UNHEALTHY)
    fleet.on_apply = always_fail
    app = await make_app([HealPolicy()], admin_token=secret)

    await run_ticks(app.reconciler, clock, 10)

    assert [a.target.name for a in fleet.applied] == [name] * 3
    uri = f"sim://{name}"
    blocked = await app.store.events(kinds=["action.blocked"], limit=100)
    assert blocked and blocked[-1].payload["blocked"] == "quarantine"
    # The page and the admin API reset by the name the operator knows.
    assert await AdminService(app.killswitch).reset_retries(resource=uri, actor="admin") == 1
    fleet.on_apply = None
    await run_ticks(app.reconciler, clock, 1)
    assert len(fleet.applied) == 4


async def test_targets_deleted_since_observe_fail_as_gone_without_escalation_or_charge(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Services a human deletes between observe and apply are recorded failed as gone:
    no escalation, no quarantine, no failure on the ledger, no breaker; then unobserved."""

    async def deleted(action: Action) -> Outcome:
        # Gone from the provider as the call reaches it: the next observe sees it no more.
        del fleet.services[action.target.name]
        error = ActuatorError(f"{action.target} not found", kind=ErrorKind.GONE, code="NotFound")
        return error.outcome()

    fleet.add("api", "db", health=Health.UNHEALTHY)
    fleet.services["web"].health = Health.UNHEALTHY
    fleet.on_apply = deleted
    app = await make_app([HealPolicy()])
    await run_ticks(app.reconciler, clock, 4)

    assert sorted(str(a.target) for a in fleet.applied) == ["sim://api", "sim://db", "sim://web"]
    failed = await app.store.events(kinds=["action.failed"], limit=10)
    assert {(e.resource, e.payload["error_kind"]) for e in failed} == {
        ("sim://api", "gone"),
        ("sim://db", "gone"),
        ("sim://web", "gone"),
    }
    assert await app.store.events(kinds=["action.escalated", "alert"]) == []
    ledger = await app.store.load_retries()
    rows = [ledger[(uri, "restart")] for uri in ("sim://api", "sim://db", "sim://web")]
    assert [(r.quarantined, r.consecutive_failures, r.retry_after) for r in rows] == [
        (False, 0, None)
    ] * 3
    assert all(len(r.attempts) == 1 for r in rows)


#: Names a tenant, a product's table or a provider may give a resource: case, look-alike
#: letters, glob and path characters, NUL, a lone surrogate, a line break, and a long name
#: (varied, so it does not compress: 900 bytes, more than any provider's own names).
HOSTILE = (
    "Web",
    "w\u0435b",  # Cyrillic e
    "w*",
    "w?b[1]",
    "../web",
    "web/../api",
    "web\x00x",
    "web\ud800",
    "web\nx",
    "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(300)),
)


#: Every name acted on in each tick, and failures across the fleet not read as a fleet outage.
SPREAD = {"bounds": {"max_actions_per_tick": 20}, "breakers": {"enabled": False}}


async def test_hostile_names_are_each_held_to_three_attempts_across_a_restart(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """Whatever a name holds, each gets three failed attempts, one escalation and a quarantine
    a restart keeps, and no name's ledger row stands in for another's."""
    fleet.services.clear()
    fleet.add(*HOSTILE, health=Health.UNHEALTHY)
    fleet.on_apply = always_fail
    app = await make_app([HealPolicy()], **SPREAD)

    await run_ticks(app.reconciler, clock, 10)
    await app.aclose()
    restarted = await make_app([HealPolicy()], **SPREAD)
    await run_ticks(restarted.reconciler, clock, 10)

    counts = {name: [a.target.name for a in fleet.applied].count(name) for name in HOSTILE}
    assert counts == dict.fromkeys(HOSTILE, 3)
    escalated = await restarted.store.events(kinds=["action.escalated"], limit=100)
    assert len(escalated) == len(HOSTILE)


async def test_a_name_longer_than_a_store_can_key_is_left_out_said_and_the_rest_goes_on(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """A provider's name past `MAX_URI_BYTES` is left out of the snapshot with an observe
    error naming it; the other resources are healed and every event is written."""
    huge = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1500))  # 4,500 bytes
    fleet.add(huge, health=Health.UNHEALTHY)
    fleet.services["web"].health = Health.UNHEALTHY
    app = await make_app([HealPolicy()])

    await run_ticks(app.reconciler, clock, 2)

    assert [str(a.target) for a in fleet.applied] == ["sim://web"]
    failed = await app.store.events(kinds=["observe.failed"], limit=10)
    assert failed and all(f"longer than {MAX_URI_BYTES} bytes" in str(e.reason) for e in failed)
    assert len(await app.store.events(kinds=["tick.finished"], limit=10)) == 2
