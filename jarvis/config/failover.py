"""Settings for DNS failover: ``[failover]``, its Route 53 weighted-record groups and their targets.

Read by the composition root: the Route 53 actuator (`jarvis.actuators.aws.route53`)
observes and writes each group's records as ``route53://ZONE/NAME/TYPE``, and the
failover policy (`jarvis.policies.failover`) judges each target from the endpoint
probes it names (``[[probes.endpoints]]``, checked by `Settings`) and moves weight.
Credentials never live here: boto3 finds them through its standard chain.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from jarvis.config.sections import Section

SCHEME = "route53"
"""The resource scheme of a failover group's records: ``route53://ZONE/NAME/TYPE``."""


def zone_id(value: str) -> str:
    """A hosted zone ID without the ``/hostedzone/`` prefix the API sometimes adds."""
    return value.removeprefix("/hostedzone/")


# Route 53 answers a name's characters other than a-z, 0-9, "-" and "_" as octal
# escapes of their bytes (``*`` as ``\052``), and takes either spelling.
_ESCAPE = re.compile(r"\\([0-3][0-7]{2}|.)", re.DOTALL)


def record_name(value: str) -> str:
    """A DNS name as the group's URI spells it: unescaped, lower case, no trailing dot."""
    plain = value.rstrip(".")
    if "\\" in plain:
        out, done = bytearray(), 0
        for match in _ESCAPE.finditer(plain):
            code = match.group(1)
            out += plain[done : match.start()].encode()
            out += bytes([int(code, 8)]) if len(code) == 3 else code.encode()
            done = match.end()
        out += plain[done:].encode()
        plain = out.decode(errors="backslashreplace")
    return plain.lower()


class FailoverTarget(Section):
    """One weighted record of a group: where its share of answers goes, and how it is judged."""

    set_identifier: Annotated[str, Field(min_length=1, max_length=128)]
    """The record's ``SetIdentifier`` in the zone (often a region or a cloud)."""
    weight: Annotated[int, Field(ge=0, le=255)]
    """Its weight when every target is healthy; 0 for a standby that takes over."""
    endpoints: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    """Names of ``[[probes.endpoints]]`` serving this target; any one unhealthy fails it."""
    sensor: str | None = None
    """A second signal: the sensor (``ecs``, ``kubernetes``, ``cloudrun``) whose
    failed observe counts against this target while its endpoints are not healthy."""


class FailoverGroup(Section):
    """One DNS name and type whose weighted records Jarvis moves between targets."""

    zone_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=255)]
    type: Literal["A", "AAAA", "CNAME"] = "A"
    targets: Annotated[list[FailoverTarget], Field(min_length=2)]

    @field_validator("zone_id")
    @classmethod
    def _bare_zone(cls, value: str) -> str:
        return zone_id(value)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return record_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> FailoverGroup:
        ids = [t.set_identifier for t in self.targets]
        if len(set(ids)) != len(ids):
            raise ValueError(f"targets repeat a set_identifier: {sorted(ids)}")
        if not any(t.weight for t in self.targets):
            raise ValueError("every target's weight is 0: Route 53 would answer them equally")
        return self

    @property
    def uri(self) -> str:
        return f"{SCHEME}://{self.zone_id}/{self.name}/{self.type}"


class FailoverSettings(Section):
    """DNS failover between regions or clouds; off while no group is configured."""

    groups: list[FailoverGroup] = Field(default_factory=list)
    fail_ticks: Annotated[int, Field(ge=1, le=100)] = 3
    """Consecutive ticks a target must fail before its weight moves away."""
    recover_ticks: Annotated[int, Field(ge=1, le=1000)] = 5
    """Consecutive healthy ticks before a failed-over target gets its weight back."""
    endpoint_url: Annotated[str | None, Field(pattern=r"^https?://[^/?#\s]+")] = None
    """A local stand-in (moto) for the Route 53 API; None means real AWS."""
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 3.0
    read_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0

    @model_validator(mode="after")
    def _one_group_per_record(self) -> FailoverSettings:
        uris = [g.uri for g in self.groups]
        twice = sorted({u for u in uris if uris.count(u) > 1})
        if twice:
            raise ValueError(f"groups repeat a record: {', '.join(twice)}")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.groups)

    def endpoint_names(self) -> set[str]:
        return {name for g in self.groups for t in g.targets for name in t.endpoints}
