"""Settings for the Cloud Run actuator (`jarvis.actuators.cloudrun.actuator`).

The ``[cloudrun]`` TOML table lands here; `jarvis.app` hands the section to
`CloudRunActuator.from_settings`. Absent means the provider is off. This module
imports no Google SDK: it only says which services to manage and how patiently.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from jarvis.config.sections import Section

# Cloud Run service ids: lowercase letters, digits and hyphens, starting with a
# letter, not ending with a hyphen, at most 49 characters.
_SERVICE_ID = r"^[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?$"
_PROJECT_ID = r"^[a-z][-a-z0-9.:]{4,61}[a-z0-9]$"
_REGION = r"^[a-z]+-[a-z]+[0-9]+$"
# Template annotations follow Kubernetes' key rules: an optional DNS-subdomain prefix
# (at most 253 characters) and a name of at most 63, alphanumeric at both ends.
_ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The v2 API rejects template annotations in these namespaces (RevisionTemplate.annotations
# in google/cloud/run/v2/revision_template.proto): every RESTART would fail with a 400.
_RESERVED_NAMESPACES = (
    "run.googleapis.com",
    "cloud.googleapis.com",
    "serving.knative.dev",
    "autoscaling.knative.dev",
)


class CloudRunSettings(Section):
    """Which Cloud Run services Jarvis manages, in one project and region.

    Resources are named ``cloudrun://PROJECT/REGION/SERVICE`` (kind "service").
    """

    project: Annotated[str, Field(pattern=_PROJECT_ID)]
    region: Annotated[str, Field(pattern=_REGION)]
    services: Annotated[list[Annotated[str, Field(pattern=_SERVICE_ID)]], Field(min_length=1)]
    """Service ids (the last segment of the resource name), not full names."""

    credentials: Literal["application-default", "anonymous"] = "application-default"
    """Google's application-default chain; "anonymous" only with ``api_endpoint`` (emulators)."""
    api_endpoint: str | None = None
    """Override of https://run.googleapis.com, e.g. ``http://127.0.0.1:8085`` for a fake."""

    request_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Seconds one HTTP call may take before it counts as a temporary failure."""
    operation_timeout: Annotated[float, Field(gt=0, le=3600)] = 15.0
    """Seconds an update's long-running operation is awaited; keep it below
    ``loop.apply_timeout`` (a new revision typically takes 20-60 s, so raise both
    for deploys and restarts in production)."""
    poll_initial: Annotated[float, Field(gt=0, le=60)] = 1.0
    """First delay between operation polls; grows by 1.5x up to ``poll_maximum``."""
    poll_maximum: Annotated[float, Field(gt=0, le=60)] = 5.0
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    """Worker threads the actuator may occupy at once (the SDK is blocking)."""

    scaling_level: Literal["service", "revision"] = "service"
    """Where SCALE writes min/max instance counts: service-level ``scaling``
    (no new revision) or the revision template's ``scaling`` (creates a revision)."""
    restart_annotation: str = "jarvis.dev/restarted-at"
    """Template annotation whose new value forces a new revision on RESTART."""

    @field_validator("services")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"service {name!r} is listed twice")
            seen.add(name)
        return value

    @field_validator("restart_annotation")
    @classmethod
    def _annotation_key(cls, value: str) -> str:
        """Refuse at load time a key Cloud Run would refuse on the first RESTART."""
        prefix, _, name = value.rpartition("/")
        if len(name) > 63:
            raise ValueError("an annotation key's name has at most 63 characters")
        if not _ANNOTATION_NAME.match(name) or (
            "/" in value and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))
        ):
            raise ValueError(
                f"{value!r} is not an annotation key ([dns.prefix/]name, alphanumeric at both ends)"
            )
        if any(prefix == ns or prefix.endswith(f".{ns}") for ns in _RESERVED_NAMESPACES):
            raise ValueError(f"the {prefix!r} annotation namespace is reserved by Cloud Run")
        return value

    @field_validator("api_endpoint")
    @classmethod
    def _endpoint_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _anonymous_only_locally(self) -> CloudRunSettings:
        # Anonymous calls to the real API fail with 401 on every tick; refuse the
        # combination at load time instead.
        if self.credentials == "anonymous" and self.api_endpoint is None:
            raise ValueError("credentials = 'anonymous' requires api_endpoint")
        if self.poll_maximum < self.poll_initial:
            raise ValueError("poll_maximum must be at least poll_initial")
        return self

    def resource_path(self, service: str) -> str:
        """The resource path of one service: ``PROJECT/REGION/SERVICE``."""
        return f"{self.project}/{self.region}/{service}"
