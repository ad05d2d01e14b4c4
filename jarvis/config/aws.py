"""Settings for the AWS actuators (ECS services and cost).

Read by `jarvis.actuators.aws` (the ECS actuator and its siblings) when the composition
root builds them; a TOML ``[aws]`` table lands here. AWS credentials never live
in this section: boto3 finds them through its standard chain (environment,
shared config, container or instance role). Dependency probes have their own
section (`jarvis.config.probes`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from jarvis.config.sections import Section

# arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME, or service/[CLUSTER/]NAME.
_ECS_ARN = re.compile(r"^arn:[a-z-]+:ecs:(?P<region>[a-z0-9-]+):\d{12}:(?P<kind>cluster|service)/")


def _ecs_name(value: str, kind: str, region: str) -> str:
    """The name in an ECS ``kind`` ARN of ``region`` (the resource URIs use names), else as is."""
    match = _ECS_ARN.match(value)
    if match is None or match["kind"] != kind:
        return value
    if match["region"] != region:
        raise ValueError(
            f"{value} is in {match['region']}, but the AWS clients call region {region}"
        )
    return value.rsplit("/", 1)[-1]


class AwsSettings(Section):
    """Configured when present; absent means the provider is off."""

    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = "us-east-1"
    clusters: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    services: list[str] = Field(default_factory=list)
    """Service names to manage; empty means every service in the clusters (or the tag)."""
    service_tag: str | None = None
    """``KEY=VALUE``: manage only services carrying this tag (combined with ``services``)."""
    endpoint_url: Annotated[str | None, Field(pattern=r"^https?://[^/?#\s]+")] = None
    """A local stand-in (moto, LocalStack) for every AWS API; None means real AWS."""

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """Requests a call may make, the first included (botocore's standard mode); a change
    is sent again only when ECS refused it unread (`sent_unless_refused`)."""
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
    cost_refresh_seconds: Annotated[float, Field(ge=3600, le=7 * 86_400)] = 3600.0
    cost_retry_seconds: Annotated[float, Field(ge=60, le=86_400)] = 900.0
    """After a failed Cost Explorer call, wait this long before the next one."""

    @field_validator("service_tag")
    @classmethod
    def _tag_has_value(cls, value: str | None) -> str | None:
        if value is not None and ("=" not in value or value.startswith("=")):
            raise ValueError("must be KEY=VALUE")
        return value

    @field_validator("clusters", "services")
    @classmethod
    def _names_not_arns(cls, values: list[str], info: ValidationInfo) -> list[str]:
        # The clients call `region` only; resource URIs, scalable target IDs and
        # metric dimensions use the names, and apply refuses ``ecs://ARN/...``.
        kind = "cluster" if info.field_name == "clusters" else "service"
        region = info.data.get("region")
        if region is None:
            return values  # the region's own error is reported
        return list(dict.fromkeys(_ecs_name(value, kind, region) for value in values))

    @property
    def tag_filter(self) -> tuple[str, str] | None:
        if self.service_tag is None:
            return None
        key, _, value = self.service_tag.partition("=")
        return key, value
