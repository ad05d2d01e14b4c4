"""Shared by the tests that drive the loop from a real metrics source
(`tests/kubernetes/test_prometheus_loop.py` on Prometheus,
`tests/cloudrun/test_monitoring_loop.py` on Cloud Monitoring's PromQL front).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import anyio

from jarvis.app import App
from jarvis.loop.clock import VirtualClock
from jarvis.loop.reconciler import TickReport

DEADLINE = 90.0
"""Generous: a real server scrapes and answers on a loaded 2-core machine."""


async def values_seen(
    app: App, done: Callable[[Mapping[str, float]], bool], *, resource: str, source: str
) -> None:
    """Wait until the app's one source answers what ``done`` expects for ``resource``."""
    (reader,) = app.sources
    values: Mapping[str, float] = {}
    with anyio.move_on_after(DEADLINE):
        while True:
            values = (await reader.read()).values.get(resource, {})
            if done(values):
                return
            await anyio.sleep(0.5)
    raise AssertionError(f"{source} never showed the expected values; last {values}")


async def tick(app: App, clock: VirtualClock) -> TickReport:
    """One tick, then the virtual clock moves on by an interval."""
    report = await app.reconciler.tick()
    clock.advance(30)
    return report
