"""The provider table, `PROVIDERS`, and building what the settings enable from it.

Each entry names a provider, the settings section that switches it on, the
resource schemes its sensors and actuators report under, the action kinds it
applies on each, and how to build it. Builders import their SDKs lazily, so a
provider that is not configured costs no start-up time; the customer
providers' builders live in `jarvis.providers.customers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jarvis.actuators.base import Actuator, ActuatorError, MetricSource, Sensor, route_table
from jarvis.config import ConfigError, Settings
from jarvis.model import CUSTOMER_SCHEME, ActionKind, Clock
from jarvis.providers.customers import CUSTOMER_ACTIONS, build_access, build_email, build_stripe

if TYPE_CHECKING:
    from jarvis.actuators.probes.dependencies import Probe
    from jarvis.config.probes import ProbeSettings

Build = Callable[[Settings, Clock], Sequence[Sensor]]

CLOUD_ACTIONS = frozenset(
    {ActionKind.SCALE, ActionKind.RESTART, ActionKind.ROLLBACK, ActionKind.DEPLOY}
)


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider: what switches it on, what it owns, and how it is built."""

    name: str
    section: str | None
    """The `Settings` field that configures it; None for one that needs no settings."""
    owns: Mapping[str, frozenset[str]]
    """Resource scheme (``ecs`` in ``ecs://…``) to the action kinds applied there;
    an empty set for a scheme that is only observed."""
    enabled: Callable[[Settings], bool]
    build: Build
    segments: Mapping[str, int] = field(default_factory=dict)
    """Resource scheme to how many ``/``-separated segments its paths have (``ecs``:
    CLUSTER/SERVICE, 2); 1 when not named. `jarvis config check` warns, from it, of a
    resource glob whose ``*`` spans segments (`jarvis.model.globs.spans_segments`)."""


def _simulated(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.sim import SimulatedActuator, SimulatedFleet

    sim = settings.simulated
    fleet = SimulatedFleet(
        seed=sim.seed,
        services=sim.services,
        script=sim.script,
        fail_rate=sim.fail_rate,
        start=clock.now(),
    )
    return [SimulatedActuator(fleet, clock)]


def _aws(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.aws.ecs import aws_actuators

    assert settings.aws is not None  # noqa: S101 - `enabled` checked it
    return aws_actuators(settings.aws, clock=clock)


def _kubernetes(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.kubernetes.actuator import KubernetesActuator

    assert settings.kubernetes is not None  # noqa: S101 - `enabled` checked it
    return [KubernetesActuator.from_settings(settings.kubernetes, clock=clock)]


def _cloudrun(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.cloudrun.actuator import CloudRunActuator

    assert settings.cloudrun is not None  # noqa: S101 - `enabled` checked it
    return [CloudRunActuator.from_settings(settings.cloudrun, clock=clock)]


def _local(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.local.actuator import LocalActuator
    from jarvis.config.secrets import secret_variables

    assert settings.local is not None  # noqa: S101 - `enabled` checked it
    # The variables Jarvis reads secrets from are its own, not its services'.
    return [LocalActuator(settings.local, clock, withheld=secret_variables(settings))]


def _routing(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.llm.routing import RoutingActuator

    return [
        RoutingActuator.from_settings(settings.routing, clock=clock, redis_url=settings.redis_url)
    ]


def _route53(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.aws.route53 import Route53Actuator

    return [Route53Actuator.from_settings(settings.failover, clock=clock)]


def _llm_usage(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.llm.usage import LlmUsageActuator

    return [
        LlmUsageActuator.from_settings(
            settings.cost, clock=clock, database_url=settings.database_url
        )
    ]


def _probes(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.probes.dependencies import ProbeSensor, dependency_probes

    section = settings.probes
    probes = dependency_probes(section)
    close = None
    if section.s3:
        buckets, close = _s3_probes(settings, section)
        probes.extend(buckets)
    return [ProbeSensor(probes, clock=clock, timeout=section.timeout_seconds, close=close)]


def _s3_probes(
    settings: Settings, section: ProbeSettings
) -> tuple[list[Probe], Callable[[], None]]:
    import anyio

    from jarvis.actuators.aws.clients import AwsClients
    from jarvis.actuators.aws.s3probe import s3_probes
    from jarvis.config.aws import AwsSettings

    # The [aws] section's region and endpoint when there is one; boto3's
    # credential chain either way.
    clients = AwsClients.create(settings.aws or AwsSettings())
    limiter = anyio.CapacityLimiter(4)
    return s3_probes(section, s3=clients.s3, calls=clients.calls, limiter=limiter), clients.close


def _endpoints(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.probes.endpoints import EndpointSensor

    section = settings.probes
    return [
        EndpointSensor(section.endpoints, clock=clock, concurrency=section.endpoint_concurrency)
    ]


#: Every provider Jarvis knows, in the order their resources are observed.
PROVIDERS: tuple[Provider, ...] = (
    Provider(
        name="simulated",
        section="simulated",
        owns={"sim": CLOUD_ACTIONS},
        enabled=lambda s: (
            s.simulated.enabled
            if s.simulated.enabled is not None
            else s.aws is None and s.kubernetes is None and s.cloudrun is None and s.local is None
        ),
        build=_simulated,
    ),
    Provider(
        name="aws",
        section="aws",
        owns={"ecs": CLOUD_ACTIONS, "cost": frozenset()},
        enabled=lambda s: s.aws is not None,
        build=_aws,
        segments={"ecs": 2},  # CLUSTER/SERVICE
    ),
    Provider(
        name="kubernetes",
        section="kubernetes",
        owns={"k8s": CLOUD_ACTIONS - {ActionKind.DEPLOY}},
        enabled=lambda s: s.kubernetes is not None,
        build=_kubernetes,
        segments={"k8s": 2},  # NAMESPACE/DEPLOYMENT
    ),
    Provider(
        name="cloudrun",
        section="cloudrun",
        owns={"cloudrun": CLOUD_ACTIONS},
        enabled=lambda s: s.cloudrun is not None,
        build=_cloudrun,
        segments={"cloudrun": 3},  # PROJECT/REGION/SERVICE
    ),
    Provider(
        name="local",
        section="local",
        owns={
            "local": frozenset({ActionKind.RESTART, ActionKind.START, ActionKind.STOP}),
        },
        enabled=lambda s: s.local is not None,
        build=_local,
    ),
    Provider(
        name="routing",
        section="routing",
        owns={"route": frozenset({ActionKind.SET_WEIGHTS})},
        enabled=lambda s: s.routing.enabled,
        build=_routing,
    ),
    Provider(
        # DNS failover: the records' weights on route53://ZONE/NAME/TYPE, moved
        # by the failover policy from what the endpoint probes say.
        name="route53",
        section="failover",
        owns={"route53": frozenset({ActionKind.SET_DNS_WEIGHTS})},
        enabled=lambda s: s.failover.enabled,
        build=_route53,
        segments={"route53": 3},  # ZONE/NAME/TYPE
    ),
    Provider(
        name="llm_usage",
        section="cost",
        owns={"cost": frozenset()},
        enabled=lambda s: s.cost.enabled,
        build=_llm_usage,
    ),
    Provider(
        name="access",
        section="customers",
        owns={CUSTOMER_SCHEME: CUSTOMER_ACTIONS["access"]},
        enabled=lambda s: s.customers.enabled,
        build=build_access,
    ),
    Provider(
        name="stripe",
        section="customers",
        owns={CUSTOMER_SCHEME: CUSTOMER_ACTIONS["stripe"]},
        enabled=lambda s: s.customers.enabled and s.customers.stripe is not None,
        build=build_stripe,
    ),
    Provider(
        name="email",
        section="customers",
        owns={CUSTOMER_SCHEME: CUSTOMER_ACTIONS["email"]},
        enabled=lambda s: s.customers.enabled and s.customers.email is not None,
        build=build_email,
    ),
    Provider(
        name="probes",
        section="probes",
        owns={"probe": frozenset()},
        enabled=lambda s: s.probes.enabled,
        build=_probes,
    ),
    Provider(
        # Observe-only: no kind is applied on endpoint://, so no allow-list entry
        # can name it; heal and rollback act on the service an endpoint serves.
        name="endpoints",
        section="probes",
        owns={"endpoint": frozenset()},
        enabled=lambda s: bool(s.probes.endpoints),
        build=_endpoints,
    ),
)


def enabled(settings: Settings, table: Sequence[Provider] = PROVIDERS) -> list[Provider]:
    return [provider for provider in table if provider.enabled(settings)]


def acting_schemes(table: Sequence[Provider] = PROVIDERS) -> dict[str, frozenset[str]]:
    """Every resource scheme some provider acts on, with the union of its action kinds."""
    schemes: dict[str, frozenset[str]] = {}
    for provider in table:
        for scheme, kinds in provider.owns.items():
            if kinds:
                schemes[scheme] = schemes.get(scheme, frozenset()) | kinds
    return schemes


def check_table(table: Sequence[Provider]) -> None:
    """Provider names are unique and no two providers apply one kind on one scheme."""
    names: set[str] = set()
    claimed: dict[tuple[str, str], str] = {}
    for provider in table:
        if provider.name in names:
            raise ConfigError(f"two providers are named {provider.name!r}")
        names.add(provider.name)
        for scheme, kinds in provider.owns.items():
            for kind in kinds:
                other = claimed.setdefault((scheme, kind), provider.name)
                if other != provider.name:
                    raise ConfigError(
                        f"providers {other} and {provider.name} both apply {kind} on {scheme}://"
                    )


def build_sensors(
    settings: Settings, clock: Clock, table: Sequence[Provider] = PROVIDERS
) -> list[Sensor]:
    """Build every enabled provider's sensors and actuators, checked against the table."""
    check_table(table)
    built: list[Sensor] = []
    try:
        for provider in enabled(settings, table):
            for observer in _build(provider, settings, clock):
                built.append(observer)
                _check_owned(provider, observer)
        route_table(built)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return built


def _build(provider: Provider, settings: Settings, clock: Clock) -> Sequence[Sensor]:
    try:
        return provider.build(settings, clock)
    except ActuatorError as exc:
        # A client its settings cannot configure (no kubeconfig file, no service
        # account outside a pod): `jarvis run` stopped with a traceback.
        where = f"{provider.section or provider.name}: "
        text = str(exc)
        raise ConfigError(text if text.startswith(where) else where + text) from None


def build_metric_sources(settings: Settings) -> list[MetricSource]:
    """The metric sources ``[metrics]`` configures, read beside the observe each tick.

    `check_allowlist` has checked that their services belong to enabled providers.
    """
    sources: list[MetricSource] = []
    prometheus = settings.metrics.prometheus
    if prometheus is not None:
        from jarvis.actuators.prometheus.source import PrometheusSource

        sources.append(PrometheusSource(prometheus))
    cloud_monitoring = settings.metrics.cloud_monitoring
    if cloud_monitoring is not None and settings.cloudrun is not None:
        from jarvis.actuators.cloudrun.monitoring import build_source

        sources.append(build_source(cloud_monitoring, settings.cloudrun))
    _check_apart(sources)
    return sources


def _check_apart(sources: Sequence[MetricSource]) -> None:
    """No two sources supply one metric of one service, or ConfigError naming each such pair.

    Both read beside the observe and are merged in the order they answer, each replacing
    the metrics it supplies (one it has no answer for removed): which one a policy
    decided on would change from tick to tick. Nothing connects before a read, so
    there is nothing to close.
    """
    first: dict[tuple[str, str], str] = {}
    clashes: list[str] = []
    for source in sources:
        for uri in sorted(source.services):
            for metric in sorted(source.metrics):
                other = first.setdefault((uri, metric), source.name)
                if other != source.name:
                    clashes.append(f"  {uri}: {metric} from both {other} and {source.name}")
    if clashes:
        raise ConfigError(
            "\n".join(
                [
                    "invalid configuration: two metric sources supply the same metric of a "
                    "service; keep it in one (metrics.prometheus.services or .queries):",
                    *clashes,
                ]
            )
        )


def _check_owned(provider: Provider, observer: Sensor) -> None:
    if observer.provider not in provider.owns:
        raise ValueError(
            f"{provider.name} built {observer.name} for {observer.provider}://, "
            f"which its registry entry does not own"
        )
    kinds = (
        frozenset(str(k) for k in observer.action_kinds)
        if isinstance(observer, Actuator)
        else frozenset()
    )
    declared = provider.owns[observer.provider]
    if not kinds <= declared:
        raise ValueError(
            f"{observer.name} applies {', '.join(sorted(kinds - declared))} on "
            f"{observer.provider}://, which the {provider.name} registry entry does not declare"
        )
