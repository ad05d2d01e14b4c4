"""Cloud Run's metrics under Cloud Monitoring's PromQL names, served by a real Prometheus.

Cloud Monitoring serves ``run.googleapis.com/…`` metrics to PromQL as
``run_googleapis_com:…`` with the ``cloud_run_revision`` resource labels
(``project_id``, ``location``, ``service_name``, ``revision_name``,
``configuration_name``), distributions as histograms (``_bucket``, ``_sum``,
``_count``, the latencies in milliseconds). `CloudRunExporter` exposes those
series as ``cloud_run_…`` (a scrape turns ``:`` into ``_``: colons are for
recording rules) from counters a background thread moves at the rates the
test sets; `RULES` records them under Cloud Monitoring's names, so
/usr/bin/prometheus evaluates the built-in templates of
`jarvis.actuators.cloudrun.monitoring` unchanged on real samples.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

STEP = 0.05

#: Recording rules renaming the exporter's series to Cloud Monitoring's PromQL names.
RULES = "groups:\n  - name: cloud-monitoring-names\n    rules:\n" + "".join(
    f"      - record: run_googleapis_com:{name}\n        expr: cloud_run_{name}\n"
    for name in (
        "request_count",
        "request_latencies_bucket",
        "container_cpu_utilizations_sum",
        "container_cpu_utilizations_count",
        "container_instance_count",
    )
)
LATENCY_BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)


@dataclass
class Traffic:
    """One Cloud Run service as Cloud Monitoring would see it this second."""

    per_second: float = 0.0
    error_share: float = 0.0
    latency_ms: float = 40.0
    instances: int = 1
    """Live instances; negative: the series is not reported at all."""
    cpu: float = 0.2
    """Mean CPU utilization of an instance, 0..1."""
    revision: str = "api-00001-abc"


@dataclass
class _Totals:
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    """(revision, response code class) → requests served."""
    latency: dict[str, list[float]] = field(default_factory=dict)
    """revision → cumulative bucket counts (last: +Inf)."""
    latency_sum: dict[str, float] = field(default_factory=dict)
    cpu_sum: dict[str, float] = field(default_factory=dict)
    cpu_count: dict[str, float] = field(default_factory=dict)


class CloudRunExporter(Collector):
    """The Cloud Run series of some services in one project and region, on a loopback port."""

    def __init__(self, project: str, region: str, services: list[str]) -> None:
        self.project = project
        self.region = region
        self.traffic_of = {
            service: Traffic(revision=f"{service}-00001-abc") for service in services
        }
        self._totals = {service: _Totals() for service in services}
        self.silent: set[str] = set()
        """Services whose series are not exposed at all (Cloud Run stopped reporting them)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        registry = CollectorRegistry()
        registry.register(self)
        self.server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.port: int = self.server.server_port
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def traffic(self, service: str, traffic: Traffic) -> None:
        with self._lock:
            self.traffic_of[service] = traffic

    def silence(self, service: str) -> None:
        with self._lock:
            self.silent.add(service)

    def _feed(self) -> None:
        while not self._stop.wait(STEP):
            with self._lock:
                for service, now in self.traffic_of.items():
                    self._add(self._totals[service], now)

    @staticmethod
    def _add(totals: _Totals, now: Traffic) -> None:
        revision = now.revision
        count = now.per_second * STEP
        for code, share in (("5xx", now.error_share), ("2xx", 1 - now.error_share)):
            key = (revision, code)
            totals.requests[key] = totals.requests.get(key, 0.0) + count * share
        buckets = totals.latency.setdefault(revision, [0.0] * (len(LATENCY_BOUNDS_MS) + 1))
        for index, bound in enumerate((*LATENCY_BOUNDS_MS, float("inf"))):
            if now.latency_ms <= bound:
                buckets[index] += count
        totals.latency_sum[revision] = (
            totals.latency_sum.get(revision, 0.0) + count * now.latency_ms
        )
        # One utilization sample per instance per step, as Cloud Run reports per instance.
        live = max(now.instances, 0)
        totals.cpu_sum[revision] = totals.cpu_sum.get(revision, 0.0) + live * now.cpu
        totals.cpu_count[revision] = totals.cpu_count.get(revision, 0.0) + live

    def collect(self) -> Iterator[Metric]:
        resource = ["project_id", "location", "service_name", "revision_name", "configuration_name"]
        requests = GaugeMetricFamily(
            "cloud_run_request_count",
            "Requests reaching the revision (a DELTA counter in Cloud Monitoring).",
            labels=[*resource, "response_code_class"],
        )
        latencies = HistogramMetricFamily(
            "cloud_run_request_latencies",
            "Request latency in milliseconds.",
            labels=resource,
        )
        cpu = HistogramMetricFamily(
            "cloud_run_container_cpu_utilizations",
            "CPU utilization of the container instances, 0..1.",
            labels=resource,
        )
        instances = GaugeMetricFamily(
            "cloud_run_container_instance_count",
            "Container instances by state.",
            labels=[*resource, "state"],
        )
        with self._lock:
            for service, totals in self._totals.items():
                if service in self.silent:
                    continue
                now = self.traffic_of[service]

                def labels(revision: str, service: str = service) -> list[str]:
                    return [self.project, self.region, service, revision, service]

                for (revision, code), value in totals.requests.items():
                    requests.add_metric([*labels(revision), code], value)
                for revision, counts in totals.latency.items():
                    bounds = [str(b) for b in LATENCY_BOUNDS_MS] + ["+Inf"]
                    latencies.add_metric(
                        labels(revision),
                        list(zip(bounds, counts, strict=True)),
                        totals.latency_sum[revision],
                    )
                for revision, total in totals.cpu_sum.items():
                    count = totals.cpu_count[revision]
                    cpu.add_metric(labels(revision), [("+Inf", count)], total)
                if now.instances >= 0:
                    instances.add_metric([*labels(now.revision), "active"], now.instances)
        yield from (requests, latencies, cpu, instances)

    def close(self) -> None:
        self._stop.set()
        self._feeder.join(timeout=10)
        self.server.shutdown()
        self.server.server_close()
