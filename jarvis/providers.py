"""The provider registry: the one table of every provider Jarvis can run.

Each entry names a provider, the settings section that switches it on, the
resource schemes its sensors and actuators report under, the action kinds it
applies on each, and how to build it. The composition root (`jarvis.app`)
builds what the settings enable from this table; the CLI and `build_app`
check the allow-list against it. Adding a provider is one entry here and its
actuator classes: no other table names providers. Builders import their SDKs
lazily, so a provider that is not configured costs no start-up time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jarvis.actuators.base import Actuator, MetricSource, Sensor, route_table
from jarvis.config import ConfigError, Settings
from jarvis.model import (
    CUSTOMER_SCHEME,
    ActionKind,
    Clock,
    CreateBillingCustomer,
    CreateDiscount,
    GrantAccess,
    RevokeAccess,
    SendEmail,
)

if TYPE_CHECKING:
    from datetime import timedelta

    from jarvis.actuators.customers.activity import UsageActivity
    from jarvis.actuators.customers.source import ProductSource
    from jarvis.actuators.customers.table import CustomerTable
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

    assert settings.local is not None  # noqa: S101 - `enabled` checked it
    return [LocalActuator(settings.local, clock)]


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


def _customer_table(settings: Settings) -> CustomerTable:
    from jarvis.actuators.customers.table import CustomerTable

    return CustomerTable.connect(settings.customers.database_url or settings.database_url)


def _access(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from datetime import timedelta

    from jarvis.actuators.customers.sensor import CustomersActuator

    section = settings.customers
    lag = timedelta(seconds=section.lag_seconds)
    table = _customer_table(settings)
    return [
        CustomersActuator(
            table,
            clock=clock,
            lag=lag,
            batch=section.read_batch,
            activity=_activity(settings, lag),
            source=_source(settings, table, lag),
        )
    ]


def _activity(settings: Settings, lag: timedelta) -> UsageActivity | None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from jarvis.actuators.customers.activity import UsageActivity

    section = settings.customers.activity
    if not section.enabled:
        return None
    url = section.database_url or settings.customers.database_url or settings.database_url
    return UsageActivity(
        create_async_engine(url),
        table=section.table,
        customer_column=section.customer_column,
        time_column=section.time_column,
        weeks=section.weeks,
        lag=lag,
    )


def _source(settings: Settings, table: CustomerTable, lag: timedelta) -> ProductSource | None:
    from jarvis.actuators.customers.source import ProductSource

    section = settings.customers.source
    if section is None:
        return None
    return ProductSource.connect(
        section.url,
        table.engine,
        table=section.table,
        columns=section.columns,
        lag=lag,
        batch=settings.customers.read_batch,
    )


def _stripe(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.customers.discounts import StripeDiscounts
    from jarvis.actuators.customers.stripe_billing import StripeBilling, stripe_client
    from jarvis.config.notify import secret

    section = settings.customers.stripe
    assert section is not None  # noqa: S101 - `enabled` checked it
    key = secret(section.secret_key_env)
    if key is None:
        raise ConfigError(
            f"customers.stripe: environment variable {section.secret_key_env} is not set"
        )
    client = stripe_client(
        api_key=key.get_secret_value(), api_base=section.api_base, timeout=section.timeout
    )
    return [
        StripeBilling(client, _customer_table(settings), clock=clock),
        StripeDiscounts(client, _customer_table(settings), clock=clock),
    ]


def _email(settings: Settings, clock: Clock) -> Sequence[Sensor]:
    from jarvis.actuators.customers.mailer import CustomerMailer, Letterhead
    from jarvis.config.notify import secret
    from jarvis.mail import SmtpServer

    mail = settings.customers.email
    assert mail is not None  # noqa: S101 - `enabled` checked it
    password = secret(mail.password_env)
    signing = secret(mail.unsubscribe_secret_env)
    if signing is None and "{token}" in mail.unsubscribe_url:
        raise ConfigError(
            "customers.email.unsubscribe_url: {token} needs the environment variable "
            f"{mail.unsubscribe_secret_env} (customers.email.unsubscribe_secret_env)"
        )
    server = SmtpServer(
        host=mail.host,
        port=mail.port,
        username=mail.username,
        password=None if password is None else password.get_secret_value(),
        starttls=mail.starttls,
        use_tls=mail.use_tls,
        timeout=mail.timeout,
    )
    head = Letterhead(
        sender=mail.sender,
        product=mail.product,
        dashboard_url=mail.dashboard_url,
        unsubscribe_url=mail.unsubscribe_url,
        secret=None if signing is None else signing.get_secret_value().encode(),
    )
    return [CustomerMailer(server, head, _customer_table(settings), clock=clock)]


CUSTOMER_ACTIONS = {
    "access": frozenset({GrantAccess.kind, RevokeAccess.kind}),
    "stripe": frozenset({CreateBillingCustomer.kind, CreateDiscount.kind}),
    "email": frozenset({SendEmail.kind}),
}
"""What each customer provider applies on ``customer://``."""


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
    ),
    Provider(
        name="kubernetes",
        section="kubernetes",
        owns={"k8s": CLOUD_ACTIONS - {ActionKind.DEPLOY}},
        enabled=lambda s: s.kubernetes is not None,
        build=_kubernetes,
    ),
    Provider(
        name="cloudrun",
        section="cloudrun",
        owns={"cloudrun": CLOUD_ACTIONS},
        enabled=lambda s: s.cloudrun is not None,
        build=_cloudrun,
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
        build=_access,
    ),
    Provider(
        name="stripe",
        section="customers",
        owns={CUSTOMER_SCHEME: CUSTOMER_ACTIONS["stripe"]},
        enabled=lambda s: s.customers.enabled and s.customers.stripe is not None,
        build=_stripe,
    ),
    Provider(
        name="email",
        section="customers",
        owns={CUSTOMER_SCHEME: CUSTOMER_ACTIONS["email"]},
        enabled=lambda s: s.customers.enabled and s.customers.email is not None,
        build=_email,
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


def check_allowlist(settings: Settings, table: Sequence[Provider] = PROVIDERS) -> None:
    """Every allow-list entry and disruption budget names a scheme some provider acts
    on, and kinds it applies; every metric source's service, an enabled provider's scheme.

    An entry that can never match is a configuration error, not a silent deny:
    ``provider = "kubernetes"`` (for ``k8s``) would otherwise block everything,
    and a budget naming it would limit nothing.
    """
    schemes = acting_schemes(table)
    problems: list[str] = []
    for index, entry in enumerate(settings.allowlist):
        kinds = schemes.get(entry.provider)
        if kinds is None:
            problems.append(
                f"  allowlist.{index}.provider: unknown provider {entry.provider!r}; "
                f"expected one of {', '.join(sorted(schemes))}"
            )
            continue
        unknown = sorted(a for a in entry.actions if a != "*" and a not in kinds)
        if unknown:
            problems.append(
                f"  allowlist.{index}.actions: {entry.provider} cannot {', '.join(unknown)}; "
                f"expected '*' or some of {', '.join(sorted(kinds))}"
            )
    problems.extend(_budget_problems(settings, schemes))
    problems.extend(_metric_source_problems(settings, table))
    if problems:
        raise ConfigError("\n".join(["invalid configuration:", *problems]))


def _budget_problems(settings: Settings, schemes: dict[str, frozenset[str]]) -> list[str]:
    problems: list[str] = []
    for index, entry in enumerate(settings.budgets):
        if entry.provider == "*":
            kinds = frozenset().union(*schemes.values())
        elif entry.provider in schemes:
            kinds = schemes[entry.provider]
        else:
            problems.append(
                f"  budgets.{index}.provider: unknown provider {entry.provider!r}; "
                f"expected '*' or one of {', '.join(sorted(schemes))}"
            )
            continue
        unknown = sorted(a for a in entry.actions if a != "*" and a not in kinds)
        if unknown:
            problems.append(
                f"  budgets.{index}.actions: {entry.provider} cannot {', '.join(unknown)}; "
                f"expected '*' or some of {', '.join(sorted(kinds))}"
            )
    return problems


def _metric_source_problems(settings: Settings, table: Sequence[Provider]) -> list[str]:
    # A service whose scheme no enabled provider observes is never enriched:
    # its metrics would be read every tick and silently thrown away.
    problems: list[str] = []
    if settings.metrics.cloud_monitoring is not None and settings.cloudrun is None:
        problems.append(
            "  metrics.cloud_monitoring: reads the services of [cloudrun], which is not configured"
        )
    prometheus = settings.metrics.prometheus
    if prometheus is None:
        return problems
    observed = {scheme for provider in enabled(settings, table) for scheme in provider.owns}
    return problems + [
        f"  metrics.prometheus.services: {uri} is not a resource of an enabled provider "
        f"(observed: {', '.join(sorted(observed))})"
        for uri in sorted(prometheus.services)
        if uri.partition("://")[0] not in observed
    ]


def build_sensors(
    settings: Settings, clock: Clock, table: Sequence[Provider] = PROVIDERS
) -> list[Sensor]:
    """Build every enabled provider's sensors and actuators, checked against the table."""
    check_table(table)
    built: list[Sensor] = []
    try:
        for provider in enabled(settings, table):
            for observer in provider.build(settings, clock):
                built.append(observer)
                _check_owned(provider, observer)
        route_table(built)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return built


def build_metric_sources(settings: Settings) -> list[MetricSource]:
    """The metric sources ``[metrics]`` configures, read after observe each tick.

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
    return sources


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
