"""Settings for metric sources: the ``[metrics]`` table, with ``[metrics.prometheus]``
and ``[metrics.cloud_monitoring]``.

Read by the composition root through `jarvis.providers.build_metric_sources`.
A metric source supplies, per service, the numbers the scaling and rollback
policies read (requests per minute, p95 latency, error rate, CPU, memory,
concurrency), in place of what the service's own provider reports. This module
imports no HTTP client; it only says where to ask, what to ask, and for whom.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from jarvis.config.sections import Section
from jarvis.model import Metric, ResourceRef

#: The metrics a source may supply: the ones policies read.
SOURCED_METRICS = frozenset(
    {
        Metric.REQUESTS_PER_MINUTE,
        Metric.P95_LATENCY_MS,
        Metric.ERROR_RATE,
        Metric.CPU_UTILIZATION,
        Metric.MEMORY_UTILIZATION,
        Metric.CONCURRENCY,
        Metric.INSTANCES,
    }
)

#: Replaced in every query template by a regex matching every configured service label.
SERVICES_PLACEHOLDER = "$services"


def check_templates(value: dict[Metric, str]) -> dict[Metric, str]:
    """Every template names a metric a source supplies and selects ``$services``."""
    for metric, template in value.items():
        if metric not in SOURCED_METRICS:
            names = ", ".join(sorted(SOURCED_METRICS))
            raise ValueError(f"{metric}: not a metric a source supplies; expected {names}")
        if SERVICES_PLACEHOLDER not in template:
            raise ValueError(f"{metric}: the template must select {SERVICES_PLACEHOLDER}")
    return value


class PrometheusSettings(Section):
    """A Prometheus server (or anything serving its HTTP query API) and what to ask it.

    Each query template is one PromQL expression for every service at once: it
    must select ``service_label=~"$services"`` and keep that label in its result
    (``sum by (service) (…)``), so a tick costs one query per metric, not one
    per service.
    """

    url: HttpUrl
    """The server's base URL, e.g. http://prometheus:9090 (``/api/v1/query`` is appended)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Per query; a query that takes longer supplies nothing this tick."""
    service_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "service"
    """The label that names the service in every query's result."""
    queries: dict[Metric, str] = Field(min_length=1)
    """Metric name to PromQL template containing ``$services``."""
    services: dict[str, Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    """Resource URI (``k8s://default/web``) to its ``service_label`` value (``web``)."""

    @field_validator("queries")
    @classmethod
    def _known_templates(cls, value: dict[Metric, str]) -> dict[Metric, str]:
        return check_templates(value)

    @field_validator("services")
    @classmethod
    def _resource_uris(cls, value: dict[str, str]) -> dict[str, str]:
        for uri in value:
            ResourceRef.parse(uri)
        return value

    @model_validator(mode="after")
    def _labels_unique(self) -> PrometheusSettings:
        seen: dict[str, str] = {}
        for uri, label in self.services.items():
            other = seen.setdefault(label, uri)
            if other != uri:
                raise ValueError(f"services: {other} and {uri} share the label {label!r}")
        return self


#: Replaced in Cloud Monitoring templates by the window every rate and gauge reads.
WINDOW_PLACEHOLDER = "$window"


class CloudMonitoringSettings(Section):
    """Cloud Monitoring's PromQL endpoint, read for every service of ``[cloudrun]``.

    The project, region and services come from ``[cloudrun]``; the query
    templates are built in (`jarvis.actuators.cloudrun.monitoring`) and
    ``queries`` replaces some of them. Templates may use ``$services``,
    ``$window``, ``$project`` and ``$location``.
    """

    url: HttpUrl | None = None
    """Base of the Prometheus-compatible API; default
    https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus."""
    credentials: Literal["application-default", "anonymous"] = "application-default"
    """Google's application-default chain (an OAuth bearer token with the
    monitoring.read scope); "anonymous" sends none, only with ``url`` (a local Prometheus)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    """Per query, token refresh included; a query that takes longer supplies nothing this tick."""
    window: Annotated[str, Field(pattern=r"^[1-9][0-9]*[smh]$")] = "5m"
    """The range every template reads: Cloud Run samples every 60 s and a sample
    may take up to 180 s to show, and Cloud Monitoring has no staleness markers,
    so nothing older than this window counts."""
    queries: dict[Metric, str] = Field(default_factory=dict)
    """Metric name to a PromQL template replacing the built-in one."""

    @field_validator("queries")
    @classmethod
    def _known_templates(cls, value: dict[Metric, str]) -> dict[Metric, str]:
        return check_templates(value)

    @model_validator(mode="after")
    def _anonymous_only_locally(self) -> CloudMonitoringSettings:
        # Google answers every anonymous query with 401: refuse the combination at load.
        if self.credentials == "anonymous" and self.url is None:
            raise ValueError("credentials = 'anonymous' requires url")
        return self


class MetricSourceSettings(Section):
    """Where service metrics come from when not from the service's own provider."""

    prometheus: PrometheusSettings | None = None
    cloud_monitoring: CloudMonitoringSettings | None = None
