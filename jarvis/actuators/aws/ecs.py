"""The AWS ECS actuator: observes and changes the fleet's ECS services.

Built by the composition root through `aws_actuators` (the ECS actuator plus,
as configured, the observe-only `CostActuator`, which shares its boto3
clients); the reconciler calls `observe` every tick and `apply` for actions on
``ecs://CLUSTER/SERVICE``, and recovery `confirm_applied` for an intent a
stopped process left open. boto3 is blocking, so every call runs in a worker
thread behind this actuator's capacity limiter.

One tick of observe costs, per cluster, ``ceil(services/100)`` ListServices
and ``ceil(services/10)`` DescribeServices calls; region-wide, one page of
DescribeScalableTargets and DescribeScalingPolicies per 50 targets/policies,
and ``ceil(2..5 x services / 500)`` GetMetricData calls (plus a ListMetrics
every 10 minutes when services sit behind load balancers).

Resources: kind ``service``. ``version`` is the task definition's
``family:revision``; ``replicas`` carry the registered scalable target's
min/max (only its max under target tracking, where a SCALE moves the min).
Metrics: ``cpu_utilization``, ``memory_utilization`` (percent) and,
behind an ALB target group, ``requests_per_minute``, ``error_rate`` (target
5xx / requests) and ``p95_latency_ms``. The facets ``rollout`` and ``versions``
hold the facts marked (facet) below; the rest are attributes (record detail):

- ``cluster``, ``service``, ``arn``, ``status``, ``launch_type``;
- ``task_definition_arn``: what the service runs now (moto: the string given);
- ``rollout`` (facet): ``in_progress`` | ``completed`` | ``failed`` (the
  primary deployment's rolloutState), and its reason;
- ``deployments``: every deployment, newest ECS order, each with ``id``,
  ``status`` (PRIMARY/ACTIVE), ``task_definition`` (ARN), ``version``,
  ``rollout_state``, ``completed`` (rolloutState is COMPLETED),
  ``failed_tasks``, ``desired``/``running``/``pending``, ``created_at``;
- ``stable_version`` (facet ``versions.stable``): the version when a single
  deployment has COMPLETED —
  what a rollback policy remembers from history as "last stable", since ECS
  forgets old deployments;
- ``previous_version`` and ``versions_available`` (facet ``versions``): task definitions of the
  non-primary deployments still present, newest first;
- ``circuit_breaker``: ``{"enable", "rollback"}`` or None (with rollback on,
  ECS reverts failed deployments itself);
- ``target_groups``: ALB target group ARNs;
- ``autoscaling``: ``{"min", "max", "suspended", "policies", "target_tracking"}``
  or None, and ``min_replicas_owner``: ``"application-autoscaling"`` when a
  target-tracking policy owns the desired count (a SCALE then moves its bounds);
- ``metrics_error``: the CloudWatch error code when metrics could not be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import anyio
import boto3

from jarvis.actuators.aws.apply import KEY_TAG, EcsApplier
from jarvis.actuators.aws.clients import AwsClients, CallLog, aws_call, gather
from jarvis.actuators.aws.cost import CostActuator
from jarvis.actuators.aws.metrics import MetricsReader
from jarvis.actuators.aws.services import (
    DESIRED_COUNT,
    PROVIDER,
    Scaling,
    Service,
    scaling_resource_id,
    service_state,
)
from jarvis.actuators.base import ActuatorError, PartialObserveError, Scope, Sensor
from jarvis.config.aws import AwsSettings
from jarvis.model import (
    Action,
    ActionKind,
    Clock,
    Deploy,
    ErrorKind,
    Outcome,
    ResourceRef,
    ResourceState,
    Restart,
    Rollback,
    Scale,
)

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling.type_defs import (
        ScalableTargetTypeDef,
        ScalingPolicyTypeDef,
    )
    from mypy_boto3_ecs.type_defs import ServiceTypeDef

DESCRIBE_BATCH = 10  # the DescribeServices limit per request
CLUSTER_NOT_FOUND = "ClusterNotFoundException"


class EcsActuator:
    """Observes ECS services and applies scale, restart, rollback and deploy."""

    name = "ecs"
    provider = PROVIDER
    action_kinds = frozenset(
        {ActionKind.SCALE, ActionKind.RESTART, ActionKind.ROLLBACK, ActionKind.DEPLOY}
    )

    def __init__(self, settings: AwsSettings, *, clock: Clock, clients: AwsClients) -> None:
        self._settings = settings
        self._clock = clock
        self._clients = clients
        self._limiter = anyio.CapacityLimiter(settings.max_concurrency)
        # Built on first use, with the clients they need (`AwsClients` builds
        # each on first use): an observe with metrics off needs neither.
        self._metrics_reader: MetricsReader | None = None
        self._ecs_applier: EcsApplier | None = None

    @property
    def _metrics(self) -> MetricsReader:
        if self._metrics_reader is None:
            settings = self._settings
            self._metrics_reader = MetricsReader(
                self._clients.cloudwatch,
                self._limiter,
                period=settings.metrics_period_seconds,
                window=settings.metrics_window_seconds,
                latency_stat=settings.latency_stat,
            )
        return self._metrics_reader

    @property
    def _applier(self) -> EcsApplier:
        if self._ecs_applier is None:
            clients = self._clients
            self._ecs_applier = EcsApplier(
                clients.ecs,
                clients.autoscaling,
                self._limiter,
                clients.ecs_changes,
                change_attempts=clients.max_attempts,
            )
        return self._ecs_applier

    @classmethod
    def from_settings(
        cls,
        section: AwsSettings,
        *,
        clock: Clock,
        session: boto3.Session | None = None,
        clients: AwsClients | None = None,
    ) -> EcsActuator:
        """Build from settings; credentials come from ``session`` or boto3's default chain."""
        return cls(section, clock=clock, clients=clients or AwsClients.create(section, session))

    @property
    def clients(self) -> AwsClients:
        return self._clients

    @property
    def calls(self) -> CallLog:
        """API calls made so far by ``prefix:Operation`` (shared with probes and cost)."""
        return self._clients.calls

    async def observe(self, scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self._clock.now()
        missing: dict[str, ActuatorError] = {}
        per_cluster = await gather(
            [
                partial(self._cluster_or_missing, name, scope, missing)
                for name in self._settings.clusters
            ]
        )
        services = sorted((s for found in per_cluster for s in found), key=lambda s: s.ref)
        states = await self._states(services, now)
        if missing:
            raise PartialObserveError(
                "; ".join(f"cluster {name}: {exc}" for name, exc in sorted(missing.items())),
                states,
                code=CLUSTER_NOT_FOUND,
                gone=[f"{ResourceRef(PROVIDER, name)}/" for name in sorted(missing)],
            )
        return states

    async def _cluster_or_missing(
        self, cluster: str, scope: Scope | None, missing: dict[str, ActuatorError]
    ) -> list[Service]:
        """The cluster's services; none, noted in ``missing``, for a cluster that is gone.

        A cluster named in ``[aws] clusters`` and deleted since failed the whole
        observe: every other cluster's services went unobserved (and unhealed),
        and the breaker counted a provider that had answered.
        """
        try:
            return await self._describe_cluster(cluster, scope)
        except ActuatorError as exc:
            if exc.code != CLUSTER_NOT_FOUND:
                raise
            missing[cluster] = exc
            return []

    async def _states(self, services: list[Service], now: datetime) -> list[ResourceState]:
        """``services`` as states, with their auto scaling bounds and (if on) metrics."""
        scaling = await self._scaling_map()
        metrics: dict[str, dict[str, float]] = {}
        metrics_error: str | None = None
        if self._settings.metrics:
            try:
                metrics = await self._metrics.read(services, now)
            except ActuatorError as exc:
                # Metrics feed scaling; losing them must not hide health and rollouts.
                metrics_error = exc.code or "Error"
        states = []
        for service in services:
            state = service_state(
                service,
                scaling=scaling.get(scaling_resource_id(service.cluster, service.name)),
                metrics=metrics.get(str(service.ref), {}),
                observed_at=now,
            )
            if metrics_error is not None:
                attributes = dict(state.attributes) | {"metrics_error": metrics_error}
                state = replace(state, attributes=attributes)
            states.append(state)
        return states

    async def _describe_cluster(self, cluster: str, scope: Scope | None) -> list[Service]:
        def list_arns() -> list[str]:
            pages = self._clients.ecs.get_paginator("list_services").paginate(
                cluster=cluster, PaginationConfig={"PageSize": 100}
            )
            return [arn for page in pages for arn in page.get("serviceArns", [])]

        arns = await aws_call("ecs:ListServices", list_arns, self._limiter)
        wanted = set(self._settings.services)
        if wanted:
            arns = [arn for arn in arns if arn.rsplit("/", 1)[-1] in wanted]
        if scope is not None:
            arns = _in_scope(arns, cluster, scope, tagged=self._settings.tag_filter is not None)

        async def describe(batch: list[str]) -> list[ServiceTypeDef]:
            answer = await aws_call(
                "ecs:DescribeServices",
                lambda: self._clients.ecs.describe_services(
                    cluster=cluster,
                    services=batch,
                    include=["TAGS"] if self._settings.tag_filter else [],
                ),
                self._limiter,
            )
            return answer.get("services", [])

        batches = [arns[i : i + DESCRIBE_BATCH] for i in range(0, len(arns), DESCRIBE_BATCH)]
        described = await gather([partial(describe, batch) for batch in batches])
        services = [Service.parse(entry, cluster) for found in described for entry in found]
        tag = self._settings.tag_filter
        if tag is not None:
            services = [s for s in services if s.tags.get(tag[0]) == tag[1]]
        return [s for s in services if s.status != "INACTIVE"]

    async def _scaling_map(self) -> dict[str, Scaling]:
        client = self._clients.autoscaling

        def targets() -> list[ScalableTargetTypeDef]:
            pages = client.get_paginator("describe_scalable_targets").paginate(
                ServiceNamespace="ecs", ScalableDimension=DESIRED_COUNT
            )
            return [t for page in pages for t in page.get("ScalableTargets", [])]

        def policies() -> list[ScalingPolicyTypeDef]:
            pages = client.get_paginator("describe_scaling_policies").paginate(
                ServiceNamespace="ecs", ScalableDimension=DESIRED_COUNT
            )
            return [p for page in pages for p in page.get("ScalingPolicies", [])]

        found = await aws_call(
            "application-autoscaling:DescribeScalableTargets", targets, self._limiter
        )
        if not found:
            return {}
        by_resource: dict[str, list[ScalingPolicyTypeDef]] = {}
        for policy in await aws_call(
            "application-autoscaling:DescribeScalingPolicies", policies, self._limiter
        ):
            by_resource.setdefault(policy["ResourceId"], []).append(policy)
        return {
            t["ResourceId"]: Scaling.parse(t, by_resource.get(t["ResourceId"], [])) for t in found
        }

    async def apply(self, action: Action, key: str) -> Outcome:
        cluster, _, service = action.target.name.partition("/")
        refusal = self._refusal(action, cluster, service)
        if refusal:
            return _refuse(refusal)
        try:
            described = await self._applier.already_applied(cluster, service, key)
            if described is None:
                return Outcome.success(f"already applied (key {key})")
            detail = await self._change(cluster, service, action, described)
        except ActuatorError as exc:
            return exc.outcome()
        try:
            await self._applier.record_key(described["serviceArn"], key)
        except ActuatorError as exc:
            # The change was made: reporting a failure would have it made again.
            return Outcome.success(f"{detail}; idempotency key not recorded: {exc}")
        return Outcome.success(detail)

    async def confirm_applied(self, target: ResourceRef, kind: str, key: str) -> str | None:
        """Whether the service carries ``key`` in its key tag: `ConfirmsKeys` for recovery.

        Certain: `apply` tags the service only after the change succeeded. The
        tag holds the latest change's key alone, so an older change, or one
        whose tag was never written, is not confirmed. One DescribeServices.
        """
        cluster, _, service = target.name.partition("/")
        if target.provider != PROVIDER or not cluster or not service or "/" in service:
            return None
        if kind not in self.action_kinds:
            return None
        if await self._applier.already_applied(cluster, service, key) is not None:
            return None
        return f"service {cluster}/{service} carries {KEY_TAG}={key}"

    def _refusal(self, action: Action, cluster: str, service: str) -> str:
        """Why the action is not this actuator's to apply, or ""."""
        if action.target.provider != PROVIDER or not cluster or not service or "/" in service:
            return f"{action.target} is not an ecs://CLUSTER/SERVICE resource"
        if action.kind not in self.action_kinds:
            return f"the ECS actuator cannot {action.kind}"
        if cluster not in self._settings.clusters or (
            self._settings.services and service not in self._settings.services
        ):
            return f"{action.target} is not managed by this configuration"
        return ""

    async def _change(
        self, cluster: str, service: str, action: Action, described: ServiceTypeDef
    ) -> str:
        applier = self._applier
        match action.params:
            case Scale() as params:
                return await applier.scale(cluster, service, params)
            case Restart():
                return await applier.restart(cluster, service)
            case Rollback(version=version):
                return await applier.rollback(cluster, service, version, described)
            case Deploy(image=image):
                return await applier.deploy(cluster, service, image, described)
        raise ActuatorError(
            f"the ECS actuator cannot {action.kind}", kind=ErrorKind.TERMINAL, code="InvalidAction"
        )

    async def aclose(self) -> None:
        self._clients.close()


def _refuse(detail: str) -> Outcome:
    return Outcome.failure(detail, kind=ErrorKind.TERMINAL, code="InvalidAction")


def aws_actuators(
    section: AwsSettings,
    *,
    clock: Clock,
    session: boto3.Session | None = None,
    clients: AwsClients | None = None,
) -> list[Sensor]:
    """Every AWS actuator the section configures: ECS, then cost if set."""
    ecs = EcsActuator.from_settings(section, clock=clock, session=session, clients=clients)
    built: list[Sensor] = [ecs]
    if section.cost:
        built.append(
            CostActuator(
                ecs.clients.ce,
                clock=clock,
                limiter=anyio.CapacityLimiter(1),
                refresh_seconds=section.cost_refresh_seconds,
                retry_seconds=section.cost_retry_seconds,
            )
        )
    return built


def _in_scope(arns: list[str], cluster: str, scope: Scope, *, tagged: bool) -> list[str]:
    """The ARNs of the services in ``scope``: only those are described and queried.

    Listing is one cheap paginated call; DescribeServices and the metric
    queries are per service. Under a tag filter, which services carry the tag
    is known only from a describe, so the others are not counted as the fleet:
    the fleet-wide percentages then shrink to this replica's part (stricter).
    """
    kept = []
    for arn in arns:
        ref = ResourceRef(PROVIDER, f"{cluster}/{arn.rsplit('/', 1)[-1]}", "service")
        if scope.owns(str(ref)) if tagged else scope.keeps(ref):
            kept.append(arn)
    return kept
