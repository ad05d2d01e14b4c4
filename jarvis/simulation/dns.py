"""Two simulated regions behind one weighted DNS name, for the ``region_dark`` fault.

Built by the harness (`jarvis.simulation.harness`) only when a run names
``region_dark``: the fault is opt-in, so the pinned seeds' records do not
change. `with_failover` adds what a real configuration would hold (an
endpoint per region, a ``[failover]`` group, an allow-list entry), so the real
composition root builds the real failover policy and guard bounds from it.

- `SimulatedRegions` is the truth: which region is dark, and the weights the
  zone holds. A dark region's endpoint fails every probe (as a stopped server
  would, with ``failure_threshold = 1``).
- `SimulatedEndpoints` (provider ``endpoint``) observes the regions' endpoints
  in place of `jarvis.actuators.probes.endpoints`.
- `SimulatedRoute53` (provider ``route53``, owns ``set_dns_weights``) in place
  of `jarvis.actuators.aws.route53`; its writes go through the simulated
  provider's API faults and witness log (`SimulatedProvider.call`), each
  witnessed with the regions that were dark and the weights the zone held when
  it arrived, for the ``failover`` invariant (`jarvis.simulation.invariants`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jarvis.actuators.base import Scope
from jarvis.config import AllowEntry, Settings
from jarvis.config.failover import FailoverSettings
from jarvis.config.probes import ProbeSettings
from jarvis.model import (
    Action,
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
from jarvis.simulation.provider import SimulatedProvider

REGIONS = ("region-a", "region-b")
ZONE = "ZSIMULATED"
NAME = "api.sim.example"
URI = f"route53://{ZONE}/{NAME}/A"
WEIGHT = 100
"""Each region's configured weight."""


def endpoint_name(region: str) -> str:
    return f"api-{region}"


def with_failover(settings: Settings) -> Settings:
    """``settings`` plus the simulated regions' endpoints, failover group and allow-list entry.

    A configuration that already has ``[failover]`` groups keeps its own
    thresholds; the group is the simulated one either way.
    """
    endpoints = [
        *[e.model_dump() for e in settings.probes.endpoints],
        *(
            {
                "name": endpoint_name(region),
                "url": f"http://{region}.sim.invalid/healthz",
                "failure_threshold": 1,
                "region": region,
            }
            for region in REGIONS
        ),
    ]
    probes = settings.probes.model_copy(
        update={"endpoints": ProbeSettings.model_validate({"endpoints": endpoints}).endpoints}
    )
    group: dict[str, Any] = {
        "zone_id": ZONE,
        "name": NAME,
        "targets": [
            {"set_identifier": r, "weight": WEIGHT, "endpoints": [endpoint_name(r)]}
            for r in REGIONS
        ],
    }
    failover = FailoverSettings.model_validate(
        {
            "fail_ticks": settings.failover.fail_ticks,
            "recover_ticks": settings.failover.recover_ticks,
            "groups": [group],
        }
    )
    allow = AllowEntry(provider="route53", actions=[ActionKind.SET_DNS_WEIGHTS.value])
    return settings.model_copy(
        update={
            "probes": probes,
            "failover": failover,
            "allowlist": [*settings.allowlist, allow],
        }
    )


class SimulatedRegions:
    """The truth: which regions are dark, and the weights the zone holds."""

    def __init__(self) -> None:
        self.dark: set[str] = set()
        self.weights: dict[str, int] = dict.fromkeys(REGIONS, WEIGHT)

    def set_dark(self, region: str, *, dark: bool) -> bool:
        """Darken or light ``region``; False when it already was."""
        if (region in self.dark) == dark:
            return False
        if dark:
            self.dark.add(region)
        else:
            self.dark.discard(region)
        return True

    def endpoint_states(self, now: datetime) -> list[ResourceState]:
        return [
            ResourceState(
                ref=ResourceRef("endpoint", endpoint_name(region), "endpoint"),
                health=Health.UNHEALTHY if region in self.dark else Health.HEALTHY,
                observed_at=now,
                detail="connection refused" if region in self.dark else "",
            )
            for region in REGIONS
        ]

    def record_state(self, now: datetime) -> ResourceState:
        return ResourceState(
            ref=ResourceRef.parse(URI, "dns_record"),
            health=Health.HEALTHY,
            observed_at=now,
            dns_weights=DnsWeights(dict(self.weights)),
        )

    def write(self, action: Action) -> Outcome:
        params = action.params
        if not isinstance(params, SetDnsWeights) or set(params.record_weights) != set(REGIONS):
            return Outcome.failure(
                f"not a write of {URI}'s records", kind=ErrorKind.TERMINAL, code="InvalidInput"
            )
        self.weights = dict(params.record_weights)
        return Outcome.success("INSYNC")


class SimulatedEndpoints:
    """``endpoint://api-REGION``: a dark region's probe fails, a lit one's answers."""

    provider = "endpoint"
    name = "simulated-endpoints"
    in_process = True

    def __init__(self, regions: SimulatedRegions, clock: Clock) -> None:
        self._regions = regions
        self._clock = clock

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        return self._regions.endpoint_states(self._clock.now())

    async def aclose(self) -> None:
        """Nothing to release."""


class SimulatedRoute53:
    """The weighted record group over the regions; writes through the provider's faulty API."""

    provider = "route53"
    name = "simulated-route53"
    in_process = True
    action_kinds = frozenset({ActionKind.SET_DNS_WEIGHTS.value})

    def __init__(self, regions: SimulatedRegions, clock: Clock, api: SimulatedProvider) -> None:
        self._regions = regions
        self._clock = clock
        self._api = api

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        return [self._regions.record_state(self._clock.now())]

    async def apply(self, action: Action, key: str) -> Outcome:
        regions = self._regions
        return await self._api.call(
            action,
            key,
            regions.write,
            weights_before=dict(regions.weights),
            dark=frozenset(regions.dark),
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def dns_actuators(
    regions: SimulatedRegions | None, clock: Clock, api: SimulatedProvider
) -> list[SimulatedEndpoints | SimulatedRoute53]:
    """The regions' endpoints and record group, when the run has regions."""
    if regions is None:
        return []
    return [SimulatedEndpoints(regions, clock), SimulatedRoute53(regions, clock, api)]
