"""Settings for the dependency probes (`jarvis.actuators.probes`): a ``[probes]`` table.

Probe URLs may carry database passwords, so they are secrets and are best given
through ``JARVIS_PROBES__…`` environment variables rather than the file. S3
probes reach AWS with the ``[aws]`` section's region and endpoint when there is
one, and boto3's default credential chain either way.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr

from jarvis.config.sections import Section


class S3ProbeSettings(Section):
    """One S3 bucket to probe: ``head_bucket``, then a presigned GET of a canary object."""

    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    canary_key: Annotated[str, Field(min_length=1)] = "jarvis/canary.txt"


class ProbeSettings(Section):
    """Dependency probes, observed as ``probe://postgres/NAME`` and the like."""

    postgres: dict[str, SecretStr] = Field(default_factory=dict)
    """Name to URL (``postgresql://`` or ``postgresql+asyncpg://``); probed with SELECT 1."""
    redis: dict[str, SecretStr] = Field(default_factory=dict)
    """Name to ``redis://`` URL; probed with PING."""
    s3: list[S3ProbeSettings] = Field(default_factory=list)
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 3.0
    """Per probe; a probe that takes longer is unhealthy."""

    @property
    def enabled(self) -> bool:
        return bool(self.postgres or self.redis or self.s3)
