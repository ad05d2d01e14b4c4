"""What /metrics carries beyond Jarvis's own series: process_*, and no _created."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jarvis.telemetry.metrics import Metrics


def exposed_names(metrics: Metrics) -> set[str]:
    body, _ = metrics.render()
    return {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def test_the_exposition_carries_the_standard_process_metrics() -> None:
    """process_cpu_seconds_total, memory, file descriptors, the collector and python_info."""
    names = exposed_names(Metrics())

    assert {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "python_gc_collections_total",
        "python_info",
    } <= names


def test_no_created_series_is_exported() -> None:
    """Counters and histograms export no _created sample, labelled or not."""
    metrics = Metrics()
    metrics.known_actuators(["ecs", "k8s"])
    metrics.ticks.labels(outcome="ok").inc()
    metrics.tick_duration.observe(0.1)

    body, _ = metrics.render()

    assert "_created" not in body.decode()
    assert metrics.registry.get_sample_value("jarvis_ticks_total", {"outcome": "ok"}) == 1


def test_dropping_created_series_leaves_other_registries_alone() -> None:
    """A registry outside Metrics still exports _created: no process-wide switch was flipped."""
    Metrics().render()
    registry = CollectorRegistry()
    Counter("other_total", "A counter of some other library.", registry=registry)

    assert "other_created" in generate_latest(registry).decode()
