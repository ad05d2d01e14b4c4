"""Metrics: every documented series is exported, on a registry private to each object."""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from importlib.metadata import version

from annotated_types import Le
from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import BaseModel

from jarvis.config.endpoints import EndpointSettings
from jarvis.config.sections import LoopSettings
from jarvis.model import Health
from jarvis.telemetry.metrics import Metrics

EXPECTED_NAMES = (
    "jarvis_ticks_total",
    "jarvis_tick_duration_seconds",
    "jarvis_tick_overruns_total",
    "jarvis_actions_total",
    "jarvis_actions_blocked_total",
    "jarvis_escalations_total",
    "jarvis_killswitch_engaged",
    "jarvis_quarantined_resources",
    "jarvis_observe_errors_total",
    "jarvis_observe_duration_seconds",
    "jarvis_resources",
    "jarvis_last_tick_timestamp_seconds",
    "jarvis_events_written_total",
    "jarvis_events_spooled_total",
    "jarvis_admin_requests_total",
    "jarvis_build_info",
)


def samples(metrics: Metrics) -> list[Sample]:
    body, _ = metrics.render()
    return [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples]


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    for sample in samples(metrics):
        if sample.name == name and sample.labels == labels:
            return sample.value
    return None


def _exercise(metrics: Metrics) -> None:
    metrics.ticks.labels(outcome="ok").inc()
    metrics.tick_duration.observe(0.42)
    metrics.tick_overruns.inc()
    metrics.actions.labels(kind="scale", outcome="applied").inc()
    metrics.actions_blocked.labels(reason="killswitch").inc()
    metrics.escalations.inc()
    metrics.killswitch_engaged.set(1)
    metrics.quarantined_resources.set(2)
    metrics.observe_errors.labels(actuator="ecs").inc()
    metrics.observe_duration.labels(actuator="ecs").observe(1.5)
    metrics.set_resources({("sim", Health.HEALTHY): 5})
    metrics.last_tick_timestamp.set(1_700_000_000)
    metrics.events_written.inc(7)
    metrics.events_spooled.inc()
    metrics.admin_requests.labels(method="POST", result="ok").inc()


def test_exposition_parses_and_names_every_documented_metric() -> None:
    """The text exposition parses and contains every metric the brief documents."""
    metrics = Metrics()
    _exercise(metrics)
    body, content_type = metrics.render()
    families = list(text_string_to_metric_families(body.decode()))
    names = {fam.name for fam in families} | {s.name for fam in families for s in fam.samples}

    assert content_type.startswith("text/plain")
    missing = [name for name in EXPECTED_NAMES if name not in names]
    assert missing == []
    assert value(metrics, "jarvis_events_written_total") == 7
    assert value(metrics, "jarvis_tick_duration_seconds_count") == 1
    assert value(metrics, "jarvis_tick_duration_seconds_bucket", le="0.5") == 1
    assert value(metrics, "jarvis_tick_duration_seconds_bucket", le="0.25") == 0


def test_known_label_values_start_at_zero() -> None:
    """Tick outcomes, action outcomes, block reasons and admin results exist before use."""
    metrics = Metrics()
    assert value(metrics, "jarvis_ticks_total", outcome="timed_out") == 0
    assert value(metrics, "jarvis_actions_total", kind="rollback", outcome="unknown") == 0
    assert value(metrics, "jarvis_actions_total", kind="restart", outcome="gone") == 0
    assert value(metrics, "jarvis_actions_blocked_total", reason="retry_budget") == 0
    assert value(metrics, "jarvis_admin_requests_total", method="GET", result="forbidden") == 0
    metrics.known_actuators(["ecs", "k8s"])
    assert value(metrics, "jarvis_observe_errors_total", actuator="k8s") == 0


def test_two_metrics_objects_coexist_without_sharing_counts() -> None:
    """Two Metrics in one process register the same names and count independently."""
    first, second = Metrics(), Metrics()
    first.ticks.labels(outcome="failed").inc(3)
    second.ticks.labels(outcome="failed").inc()

    assert value(first, "jarvis_ticks_total", outcome="failed") == 3
    assert value(second, "jarvis_ticks_total", outcome="failed") == 1


def test_build_info_names_the_installed_version_and_python() -> None:
    """jarvis_build_info is 1 with the package version and Python version as labels."""
    metrics = Metrics()
    labels = {"version": version("jarvis"), "python": platform.python_version()}
    assert value(metrics, "jarvis_build_info", **labels) == 1


def test_set_resources_clears_series_that_vanished() -> None:
    """A provider/health pair absent from this tick's counts disappears from the gauge."""
    metrics = Metrics()
    metrics.set_resources({("sim", Health.HEALTHY): 4, ("ecs", Health.UNHEALTHY): 1})
    metrics.set_resources({("sim", Health.HEALTHY): 3, ("sim", "degraded"): 1})

    assert value(metrics, "jarvis_resources", provider="sim", health="healthy") == 3
    assert value(metrics, "jarvis_resources", provider="sim", health="degraded") == 1
    assert value(metrics, "jarvis_resources", provider="ecs", health="unhealthy") is None


def test_stepping_down_puts_the_leaders_gauges_back_and_keeps_the_counts() -> None:
    """Kill switch, quarantine, breakers, budgets, endpoints, SLOs and resources read as on
    a replica that never led; counters keep what they counted."""
    metrics = Metrics()
    _exercise(metrics)
    metrics.breaker_open.labels(scope="provider", provider="ecs").set(1)
    metrics.breaker_open.labels(scope="fleet", provider="all").set(0)
    metrics.budget_remaining.labels(kind="restart", provider="ecs", budget="b").set(0)
    metrics.budget_limit.labels(kind="restart", provider="ecs", budget="b").set(3)
    metrics.endpoint_up.labels(endpoint="api", region="eu", cloud="aws").set(1)
    metrics.slo_ok.labels(slo="api-p95").set(0)
    metrics.llm_unpriced_models.set(2)
    metrics.llm_unpriced_requests.set(30)

    metrics.stepped_down()

    names = {s.name for s in samples(metrics)}
    assert value(metrics, "jarvis_killswitch_engaged") == 0
    assert value(metrics, "jarvis_quarantined_resources") == 0
    assert value(metrics, "jarvis_llm_unpriced_models") == 0
    assert value(metrics, "jarvis_llm_unpriced_requests") == 0
    assert value(metrics, "jarvis_breaker_open", scope="provider", provider="ecs") == 0
    assert value(metrics, "jarvis_breaker_open", scope="fleet", provider="all") == 0
    gone = {
        "jarvis_resources",
        "jarvis_disruption_budget_remaining",
        "jarvis_disruption_budget_limit",
        "jarvis_endpoint_up",
        "jarvis_slo_ok",
    }
    assert names & gone == set()
    assert value(metrics, "jarvis_escalations_total") == 1
    assert value(metrics, "jarvis_ticks_total", outcome="ok") == 1


def _bucket_of(series: Callable[[Metrics], Histogram], seconds: float) -> float:
    """The smallest ``le`` of one histogram ``series`` counting one observation of ``seconds``."""
    metrics = Metrics()
    series(metrics).observe(seconds)
    return min(
        float(s.labels["le"])
        for s in samples(metrics)
        if s.name.endswith("_bucket") and s.value == 1
    )


def _tick(metrics: Metrics) -> Histogram:
    return metrics.tick_duration


def _observe(metrics: Metrics) -> Histogram:
    return metrics.observe_duration.labels(actuator="ecs")


def _probe(metrics: Metrics) -> Histogram:
    return metrics.endpoint_latency.labels(endpoint="api", region="eu", cloud="gcp")


def _largest_accepted(model: type[BaseModel], *names: str) -> float:
    """The largest value the settings ``model`` accept in any of the fields ``names``."""
    bounds = [
        m.le for name in names for m in model.model_fields[name].metadata if isinstance(m, Le)
    ]
    assert len(bounds) == len(names), bounds
    return max(float(b) for b in bounds if isinstance(b, int | float))


def test_the_tick_histogram_tells_long_ticks_apart_up_to_the_longest_allowed() -> None:
    """A tick as long as the longest interval or tick_timeout the settings accept lands
    in a finite bucket, and minutes-long ticks in different ones, so the p95 panel
    does not stop at a bucket below them."""
    longest = _largest_accepted(LoopSettings, "interval", "tick_timeout")

    buckets = [_bucket_of(_tick, s) for s in (110.0, 550.0, 3000.0, longest)]

    assert all(math.isfinite(b) for b in buckets), buckets
    assert len(set(buckets)) == len(buckets), buckets


def test_the_endpoint_histogram_tells_slow_probes_apart_up_to_the_longest_timeout() -> None:
    """A probe as slow as the longest timeout an endpoint accepts (a timed-out probe
    counts as its timeout) lands in a finite bucket, apart from one just over 10 s."""
    longest = _largest_accepted(EndpointSettings, "timeout_seconds")

    buckets = [_bucket_of(_probe, s) for s in (9.0, 11.0, longest)]

    assert all(math.isfinite(b) for b in buckets), buckets
    assert len(set(buckets)) == len(buckets), buckets


def test_the_observe_histogram_tells_slow_observes_apart_up_to_the_longest_timeout() -> None:
    """An observe() as long as the longest observe_timeout the settings accept (endpoint
    probes may need minutes of it) lands in a finite bucket, apart from a minute's."""
    longest = _largest_accepted(LoopSettings, "observe_timeout")

    buckets = [_bucket_of(_observe, s) for s in (50.0, 100.0, longest)]

    assert all(math.isfinite(b) for b in buckets), buckets
    assert len(set(buckets)) == len(buckets), buckets
