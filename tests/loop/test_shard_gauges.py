"""Gauges a tick sets from one resource, with shards: only the holder of its shard sets them.

A replica that keeps leading other shards after the resource's shard moved away
must not go on exporting what it last read of it: summed or maxed over the
replicas, it would count twice, or stay stale for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from jarvis.actuators.base import Scope
from jarvis.loop.clock import VirtualClock
from jarvis.model import ModelSpend, ResourceState
from tests.cost.builders import cost_state
from tests.fakes import FakeActuator
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio


@dataclass
class UsageSensor:
    """``cost://llm`` with two models no price matches, three requests between them."""

    clock: VirtualClock
    name: str = "llm-usage"
    provider: str = "cost"

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        unpriced = {"gpt-5": ModelSpend(1.0, 2), "acme/llm-9000": ModelSpend(0.5, 1)}
        return [cost_state(1.5, now=self.clock.now(), unpriced=unpriced)]

    async def aclose(self) -> None:
        return None


async def test_a_replica_whose_shard_of_llm_usage_moved_away_stops_counting_unpriced_models(
    make_app: AppFactory, fleet: FakeActuator, clock: VirtualClock
) -> None:
    """While this replica holds ``cost://llm``'s shard it exports the unpriced models and
    requests it reads; once another holds it, 0 (as a follower shows), not its last reading."""
    app = await make_app(actuators=[fleet, UsageSensor(clock)])
    sample = app.metrics.registry.get_sample_value

    await app.reconciler.tick()
    assert (sample("jarvis_llm_unpriced_models"), sample("jarvis_llm_unpriced_requests")) == (2, 3)

    app.reconciler.owns = lambda uri: uri != "cost://llm"  # its shard moved to another replica
    clock.advance(30)
    await app.reconciler.tick()
    assert (sample("jarvis_llm_unpriced_models"), sample("jarvis_llm_unpriced_requests")) == (0, 0)
