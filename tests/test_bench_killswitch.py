"""Benchmark 4 (bench/killswitch.py) times every trial, however slowly the tick starts.

It flipped the kill switch a fixed 0.1 to 0.28 s after the tick began; on a
loaded machine a tick that took longer than that to start its first action
started none, and the whole run stopped with "a trial started no action; the
benchmark is broken". This runs it small with a provider slower than that.
"""

from __future__ import annotations

from types import ModuleType

import anyio
import pytest

from jarvis.actuators.base import Scope
from jarvis.model import ResourceState
from tests.bench_support import load_bench

SLOW_OBSERVE_S = 1.0
"""Longer than the old fixed flip delay (at most 0.28 s), as a loaded machine's tick can be."""


@pytest.fixture(scope="module")
def killswitch() -> ModuleType:
    return load_bench("killswitch")


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_every_trial_starts_actions_before_the_flip_when_the_tick_starts_slowly(
    killswitch: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flip waits for the batch to begin: each trial starts actions and times the flip."""

    class SlowStart(killswitch.SlowFleet):  # type: ignore[name-defined,misc]
        async def observe(self, scope: Scope | None = None) -> list[ResourceState]:
            await anyio.sleep(SLOW_OBSERVE_S)
            states: list[ResourceState] = await super().observe(scope)
            return states

    monkeypatch.setattr(killswitch, "SlowFleet", SlowStart)
    trials = await killswitch._trials("sqlite", 2)
    started = [count for _, count in trials]
    assert min(started) > 0, f"actions started per trial: {started}"
    assert max(started) < killswitch.ACTIONS, "the flip stopped the batch part-way"
    assert all(latency >= 0 for latency, _ in trials)
