"""The Route 53 actuator: reads and writes the weights of weighted DNS records.

Built by the provider registry (`jarvis.providers`, the ``route53`` provider)
from ``[failover]``; the reconciler calls `observe` each tick and `apply` for the
``set_dns_weights`` actions the failover policy (`jarvis.policies.failover`)
proposes. Each group is one resource, ``route53://ZONE/NAME/TYPE`` of kind
``dns_record``, whose ``dns_weights`` facet holds its weighted records' weights
by set identifier (`ListResourceRecordSets`).

Idempotency: ChangeResourceRecordSets takes no client token (botocore's model
for the 2013-04-01 API has only ``HostedZoneId`` and ``ChangeBatch``), so the
apply is level-triggered instead. It reads the records first and UPSERTs only
those whose weight differs, copying everything else of each record (TTL,
values or alias, health check) as read; when none differs it answers "already
applied" without a write. A replay of the same action therefore changes
nothing, and a retry after a lost answer finds the change made. The action's
key goes into the change batch's ``Comment``, so CloudTrail ties the change
to the event record. A read and a write are not atomic: a change made by
someone else between them is overwritten for those records only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from jarvis.actuators.aws.clients import AwsClients, aws_call
from jarvis.actuators.base import ActuatorError, Scope
from jarvis.config.aws import AwsSettings
from jarvis.config.failover import SCHEME, FailoverSettings, record_name
from jarvis.model import (
    ActionKind,
    Clock,
    DnsWeights,
    ErrorKind,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
    SetDnsWeights,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.type_defs import ResourceRecordSetOutputTypeDef

    from jarvis.model import Action

KIND = "dns_record"
_PAGE = "100"
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def group_ref(zone: str, name: str, record_type: str) -> ResourceRef:
    return ResourceRef(SCHEME, f"{zone}/{record_name(name)}/{record_type}", KIND)


def listed_name(name: str) -> str:
    """``name`` as Route 53 stores and sorts it: bytes other than a-z, 0-9, "-", "_" and
    "." as octal escapes (``*.example.com`` is ``\\052.example.com``)."""
    return "".join(
        char if char in _PLAIN else "".join(f"\\{byte:03o}" for byte in char.encode())
        for char in name
    )


class Route53Actuator:
    """Observes and sets the weights of each configured group's weighted records."""

    name = "route53"
    provider = SCHEME
    action_kinds = frozenset({ActionKind.SET_DNS_WEIGHTS.value})

    def __init__(
        self,
        groups: Sequence[tuple[str, str, str]],
        client: Route53Client,
        *,
        clock: Clock,
        limiter: anyio.CapacityLimiter | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._groups = tuple((zone, record_name(name), kind) for zone, name, kind in groups)
        self._client = client
        self._clock = clock
        self._limiter = limiter or anyio.CapacityLimiter(2)
        self._close = close

    @classmethod
    def from_settings(
        cls, section: FailoverSettings, *, clock: Clock, session: boto3.Session | None = None
    ) -> Route53Actuator:
        clients = AwsClients.create(
            AwsSettings(
                endpoint_url=section.endpoint_url,
                max_attempts=section.max_attempts,
                connect_timeout=section.connect_timeout,
                read_timeout=section.read_timeout,
            ),
            session,
        )
        groups = [(g.zone_id, g.name, g.type) for g in section.groups]
        return cls(groups, clients.route53, clock=clock, close=clients.close)

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        states = []
        for zone, name, record_type in self._groups:
            records = await self._records(zone, name, record_type)
            weights = {r["SetIdentifier"]: int(r["Weight"]) for r in records}
            health, detail = Health.HEALTHY, ""
            if not weights:
                health, detail = Health.DEGRADED, "no weighted records"
            states.append(
                ResourceState(
                    ref=group_ref(zone, name, record_type),
                    health=health,
                    observed_at=self._clock.now(),
                    detail=detail,
                    dns_weights=DnsWeights(weights) if weights else None,
                )
            )
        return states

    async def _records(
        self, zone: str, name: str, record_type: str
    ) -> list[ResourceRecordSetOutputTypeDef]:
        """The weighted records of one name and type, every page of them."""
        found: dict[str, ResourceRecordSetOutputTypeDef] = {}
        # Where the listing starts: Route 53 sorts the escaped spelling, not the plain one.
        start_name, start_id = listed_name(name), None
        while True:
            kwargs: dict[str, Any] = {
                "HostedZoneId": zone,
                "StartRecordName": start_name,
                "StartRecordType": record_type,
                "MaxItems": _PAGE,
            }
            if start_id is not None:
                kwargs["StartRecordIdentifier"] = start_id
            page = await aws_call(
                "route53:ListResourceRecordSets",
                functools.partial(self._client.list_resource_record_sets, **kwargs),
                self._limiter,
            )
            sets = page["ResourceRecordSets"]
            ours = [r for r in sets if record_name(r["Name"]) == name and r["Type"] == record_type]
            fresh = [
                r
                for r in ours
                if "Weight" in r and "SetIdentifier" in r and r["SetIdentifier"] not in found
            ]
            found.update((r["SetIdentifier"], r) for r in fresh)
            # The list is sorted by name and type: past ours, nothing more is ours;
            # a page that adds nothing new would be read again forever.
            if len(ours) < len(sets) or not fresh or not page.get("IsTruncated"):
                return list(found.values())
            start_name = page.get("NextRecordName", start_name)
            start_id = page.get("NextRecordIdentifier")

    async def apply(self, action: Action, key: str) -> Outcome:
        params = action.params
        group = self._group(action)
        if not isinstance(params, SetDnsWeights) or group is None:
            return Outcome.failure(
                f"{action.target} with {action.kind} is not a configured Route 53 group's change",
                kind=ErrorKind.TERMINAL,
                code="NotManaged",
            )
        zone, name, record_type = group
        try:
            changes = _changes(action.target, await self._records(zone, name, record_type), params)
            if not changes:
                return Outcome.success(f"already applied (weights match; key {key})")
            batch: Any = {"Comment": f"jarvis {key}"[:256], "Changes": changes}
            answer = await aws_call(
                "route53:ChangeResourceRecordSets",
                lambda: self._client.change_resource_record_sets(
                    HostedZoneId=zone, ChangeBatch=batch
                ),
                self._limiter,
                change=True,
            )
        except ActuatorError as exc:
            return exc.outcome()
        info = answer["ChangeInfo"]
        moved = ", ".join(
            f"{c['SetIdentifier']}={c['Weight']}"
            for c in (change["ResourceRecordSet"] for change in changes)
        )
        return Outcome.success(f"set {moved} ({info['Id']}, {info['Status']})")

    def _group(self, action: Action) -> tuple[str, str, str] | None:
        if action.target.provider != SCHEME:
            return None
        zone, _, rest = action.target.name.partition("/")
        name, _, record_type = rest.rpartition("/")
        group = (zone, name, record_type)
        return group if group in self._groups else None

    async def aclose(self) -> None:
        if self._close is not None:
            self._close()


def _changes(
    target: ResourceRef,
    records: Sequence[ResourceRecordSetOutputTypeDef],
    params: SetDnsWeights,
) -> list[dict[str, Any]]:
    """UPSERTs of the records whose weight differs, each otherwise as read."""
    by_id = {r["SetIdentifier"]: r for r in records}
    unknown = sorted(set(params.record_weights) - set(by_id))
    if unknown:
        raise ActuatorError(
            f"{target} has no weighted record {', '.join(unknown)}",
            kind=ErrorKind.TERMINAL,
            code="NoSuchRecord",
        )
    return [
        {"Action": "UPSERT", "ResourceRecordSet": {**by_id[r], "Weight": weight}}
        for r, weight in sorted(params.record_weights.items())
        if int(by_id[r]["Weight"]) != weight
    ]
