"""The facets' record shape: `ResourceState.record_attributes` renders the legacy JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jarvis.model import (
    Health,
    ResourceRef,
    ResourceState,
    Rollout,
    RolloutState,
    RouteWeights,
    Versions,
)

T0 = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)


def test_facets_render_as_the_flat_attributes_they_replaced() -> None:
    """Facets and remaining attributes render as one flat object, unknown facts left out."""
    state = ResourceState(
        ResourceRef("sim", "api"),
        Health.HEALTHY,
        T0,
        attributes={"cluster": "prod"},
        rollout=Rollout(RolloutState.COMPLETED),
        versions=Versions(available=("v1",), image="registry/api:2"),
    )
    assert state.record_attributes() == {
        "rollout": "completed",
        "image": "registry/api:2",
        "versions_available": ["v1"],
        "cluster": "prod",
    }


def test_record_nulls_keep_a_providers_explicit_nulls() -> None:
    """Keys a provider recorded as null stay null, not absent, when the fact is unknown."""
    state = ResourceState(
        ResourceRef("ecs", "prod/api"),
        Health.HEALTHY,
        T0,
        rollout=Rollout(RolloutState.IN_PROGRESS),
        versions=Versions(),
        record_nulls=frozenset({"rollout_reason", "previous_version", "stable_version"}),
    )
    assert state.record_attributes() == {
        "rollout": "in_progress",
        "rollout_reason": None,
        "previous_version": None,
        "versions_available": [],
        "stable_version": None,
    }


def test_route_weights_render_with_their_version_and_floors() -> None:
    """A route's weights facet renders ``weights``, ``weights_version`` and ``floors``."""
    state = ResourceState(
        ResourceRef("route", "chat", "route"),
        Health.HEALTHY,
        T0,
        weights=RouteWeights({"a": 1.0}, 3, {"a": 0.1}),
    )
    assert state.record_attributes() == {
        "weights": {"a": 1.0},
        "weights_version": 3,
        "floors": {"a": 0.1},
    }


@pytest.mark.anyio
async def test_the_simulated_fleet_reports_metrics_only_under_their_shared_names() -> None:
    """Every metric name an actuator writes is a `Metric`, the names policies read by."""
    from jarvis.actuators.sim import SimulatedActuator
    from jarvis.loop.clock import VirtualClock
    from jarvis.model import Metric

    states = await SimulatedActuator.create(VirtualClock(), seed=3, services=12).observe()
    names = {name for state in states for name in state.metrics}
    assert names and names <= set(Metric)
