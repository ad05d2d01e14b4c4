"""Settings for the dependency probes (`jarvis.actuators.probes`): a ``[probes]`` table,
which also holds the HTTP(S) endpoints and their SLOs (`jarvis.config.endpoints`).

Probe URLs may carry database passwords, so they are secrets and are best given
through ``JARVIS_PROBES__…`` environment variables rather than the file. S3
probes reach AWS with the ``[aws]`` section's region and endpoint when there is
one, and boto3's default credential chain either way.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, model_validator

from jarvis.config.endpoints import (
    NAME,
    EndpointSettings,
    SloSettings,
    check_endpoints,
    ports_ok,
)
from jarvis.config.sections import Section

SCHEMES = {
    "postgres": ("postgresql", "postgres", "postgresql+asyncpg"),
    "redis": ("redis", "rediss", "unix"),
}
"""The URL schemes each dependency's client takes."""


def dependency_url_problems(kind: str, urls: dict[str, SecretStr]) -> list[str]:
    """Each URL a probe's client could not use, naming its key, never its text."""
    schemes = SCHEMES[kind]
    problems: list[str] = []
    for name, secret in urls.items():
        url = secret.get_secret_value()
        scheme = url.partition("://")[0] if "://" in url else ""
        if scheme not in schemes:
            wanted = ", ".join(f"{s}://" for s in schemes)
            problems.append(f"probes.{kind}.{name}: must be a URL starting with {wanted}")
        elif not ports_ok(url):
            problems.append(f"probes.{kind}.{name}: a port must be a number from 1 to 65535")
    return problems


class S3ProbeSettings(Section):
    """One S3 bucket to probe: ``head_bucket``, then a presigned GET of a canary object."""

    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    canary_key: Annotated[str, Field(min_length=1)] = "jarvis/canary.txt"


ProbeName = Annotated[str, Field(pattern=NAME)]
"""A dependency probe's name, as an endpoint's: it is the path of ``probe://KIND/NAME``, so a
slash, a NUL (stored as U+FFFD) or another control character made a different resource."""


class ProbeSettings(Section):
    """Dependency probes, observed as ``probe://postgres/NAME`` and the like."""

    postgres: dict[ProbeName, SecretStr] = Field(default_factory=dict)
    """Name to URL (``postgresql://`` or ``postgresql+asyncpg://``); probed with SELECT 1."""
    redis: dict[ProbeName, SecretStr] = Field(default_factory=dict)
    """Name to ``redis://`` URL; probed with PING."""
    s3: list[S3ProbeSettings] = Field(default_factory=list)
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 3.0
    """Per probe; a probe that takes longer is unhealthy."""
    endpoints: list[EndpointSettings] = Field(default_factory=list)
    """HTTP(S) endpoints, observed as ``endpoint://NAME`` (`jarvis.config.endpoints`)."""
    slos: list[SloSettings] = Field(default_factory=list)
    """Latency objectives over endpoints; each raises one alert when broken."""
    endpoint_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    """At most this many endpoint probes in flight at once."""

    @model_validator(mode="after")
    def _endpoints_consistent(self) -> ProbeSettings:
        problems = [
            *dependency_url_problems("postgres", self.postgres),
            *dependency_url_problems("redis", self.redis),
            *check_endpoints(self.endpoints, self.slos),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def enabled(self) -> bool:
        """Dependency probes are configured (endpoints are their own provider)."""
        return bool(self.postgres or self.redis or self.s3)
