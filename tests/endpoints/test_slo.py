"""The pure parts: p95, the SLO verdict, one alert per breach, and endpoint health for policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jarvis.model import Health, History, ResourceRef, ResourceState, Snapshot
from jarvis.policies.heal import HealPolicy
from jarvis.policies.slo import Judgement, Objective, alert_change, judge, p95, with_endpoint_health

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
OBJECTIVE = Objective("x", frozenset({"endpoint://a"}), 100.0, timedelta(minutes=5), 3)


def test_p95_is_a_latency_some_probe_had() -> None:
    """Nearest rank: below twenty samples the p95 is the slowest one."""
    assert p95([10.0, 20.0, 500.0]) == 500.0
    assert p95(float(ms) for ms in range(1, 101)) == 95.0


def test_the_verdict_uses_only_the_window_and_needs_enough_samples() -> None:
    """Samples older than the window do not count; too few say nothing."""
    old = [(T0 - timedelta(minutes=6), 900.0)]
    fresh = [(T0 - timedelta(seconds=s), 50.0) for s in (0, 30, 60)]
    assert judge(OBJECTIVE, old + fresh, T0) == Judgement(True, 50.0, 3)
    assert judge(OBJECTIVE, old + fresh[:2], T0).ok is None
    slow = [*fresh, (T0, 150.0)]
    assert judge(OBJECTIVE, slow, T0).ok is False


def test_one_alert_per_breach_and_one_resolution() -> None:
    """Fire when broken with none open, resolve when met with one open, else stay quiet."""
    broken, met, unknown = Judgement(False, 1, 9), Judgement(True, 1, 9), Judgement(None, 1, 1)
    assert alert_change(False, broken) is True
    assert alert_change(True, broken) is None
    assert alert_change(True, met) is False
    assert alert_change(False, met) is None
    assert alert_change(True, unknown) is None


def _state(uri: str, health: Health, detail: str = "") -> ResourceState:
    provider, _, name = uri.partition("://")
    kind = "endpoint" if provider == "endpoint" else "service"
    return ResourceState(ResourceRef(provider, name, kind), health, T0, detail=detail)


def _snapshot(*states: ResourceState) -> Snapshot:
    return Snapshot(T0, {str(s.ref): s for s in states})


def test_an_unhealthy_endpoint_makes_the_service_it_serves_unhealthy() -> None:
    """Only an unhealthy endpoint counts, and only for the resource it names."""
    down = _state("endpoint://a", Health.UNHEALTHY, "status 503, expected 200 (3 in a row)")
    service = _state("ecs://prod/api", Health.HEALTHY)
    other = _state("ecs://prod/web", Health.HEALTHY)
    folded = with_endpoint_health(
        _snapshot(down, service, other), {"endpoint://a": "ecs://prod/api"}
    )
    assert folded.resources["ecs://prod/api"].health is Health.UNHEALTHY
    assert "endpoint://a failing: status 503" in folded.resources["ecs://prod/api"].detail
    assert folded.resources["ecs://prod/web"].health is Health.HEALTHY
    degraded = _snapshot(_state("endpoint://a", Health.DEGRADED), service)
    assert with_endpoint_health(degraded, {"endpoint://a": "ecs://prod/api"}) is degraded


def test_heal_restarts_the_served_service_and_never_the_endpoint() -> None:
    """Folded, heal proposes one restart, of the service; unfolded, nothing."""
    raw = _snapshot(
        _state("endpoint://a", Health.UNHEALTHY, "no answer"),
        _state("ecs://prod/api", Health.HEALTHY),
    )
    folded = with_endpoint_health(raw, {"endpoint://a": "ecs://prod/api"})
    linked = HealPolicy().evaluate(folded, History(), T0)
    assert [str(a.target) for a in linked.actions] == ["ecs://prod/api"]
    assert HealPolicy().evaluate(raw, History(), T0).actions == ()
