"""Settings for the AWS actuators (ECS services and cost).

Read by `jarvis.actuators.aws` (the ECS actuator and its siblings) when the composition
root builds them; a TOML ``[aws]`` table lands here. AWS credentials never live
in this section: boto3 finds them through its standard chain (environment,
shared config, container or instance role). Dependency probes have their own
section (`jarvis.config.probes`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from jarvis.config.sections import Section


class AwsSettings(Section):
    """Configured when present; absent means the provider is off."""

    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = "us-east-1"
    clusters: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    services: list[str] = Field(default_factory=list)
    """Service names to manage; empty means every service in the clusters (or the tag)."""
    service_tag: str | None = None
    """``KEY=VALUE``: manage only services carrying this tag (combined with ``services``)."""
    endpoint_url: str | None = None
    """A local stand-in (moto, LocalStack) for every AWS API; None means real AWS."""

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """botocore standard-mode retries, first attempt included."""
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 3.0
    read_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    """Worker threads (and HTTP connections) the ECS actuator uses at once."""

    metrics: bool = True
    """Read CloudWatch metrics (CPU, memory, load balancer) for each service."""
    metrics_period_seconds: Annotated[int, Field(ge=60, le=3600)] = 60
    metrics_window_seconds: Annotated[int, Field(ge=120, le=86400)] = 600
    latency_stat: str = "p95"
    """CloudWatch statistic for TargetResponseTime, reported as ``p95_latency_ms``."""

    cost: bool = False
    """Read month-to-date spend from Cost Explorer (charged per request)."""
    cost_refresh_seconds: Annotated[float, Field(ge=3600)] = 3600.0
    cost_retry_seconds: Annotated[float, Field(ge=60)] = 900.0
    """After a failed Cost Explorer call, wait this long before the next one."""

    @field_validator("service_tag")
    @classmethod
    def _tag_has_value(cls, value: str | None) -> str | None:
        if value is not None and ("=" not in value or value.startswith("=")):
            raise ValueError("must be KEY=VALUE")
        return value

    @property
    def tag_filter(self) -> tuple[str, str] | None:
        if self.service_tag is None:
            return None
        key, _, value = self.service_tag.partition("=")
        return key, value
