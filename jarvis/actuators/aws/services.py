"""ECS service descriptions parsed into Jarvis's typed model, at the boundary.

Called by `jarvis.actuators.aws.ecs.EcsActuator.observe` with the raw
``describe_services`` entries and Application Auto Scaling answers; nothing
here does I/O. `service_state` decides health, parses the facets the rollback
policy reads (rollout, versions) and keeps the rest as attributes (listed in
`jarvis.actuators.aws.ecs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from jarvis.model import (
    JSON,
    Health,
    Replicas,
    ResourceRef,
    ResourceState,
    Rollout,
    RolloutState,
    Versions,
)

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling.type_defs import (
        ScalableTargetTypeDef,
        ScalingPolicyTypeDef,
    )
    from mypy_boto3_ecs.type_defs import DeploymentTypeDef, ServiceTypeDef

PROVIDER = "ecs"
DESIRED_COUNT: Final = "ecs:service:DesiredCount"
_ROLLOUT = {"COMPLETED": "completed", "IN_PROGRESS": "in_progress", "FAILED": "failed"}
# ECS records these facts as null when unknown (see `ResourceState.record_nulls`).
_NULLS = frozenset({"rollout_reason", "previous_version", "stable_version"})


def version_of(task_definition: str) -> str:
    """``family:revision`` from a task definition ARN (or the string itself)."""
    return task_definition.rsplit("/", 1)[-1]


def scaling_resource_id(cluster: str, service: str) -> str:
    return f"service/{cluster}/{service}"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One ECS deployment of a service (PRIMARY, ACTIVE or INACTIVE)."""

    id: str
    status: str
    task_definition: str
    rollout_state: str | None
    rollout_reason: str | None
    failed_tasks: int
    desired: int
    running: int
    pending: int
    created_at: datetime | None

    @classmethod
    def parse(cls, raw: DeploymentTypeDef) -> Deployment:
        return cls(
            id=raw.get("id", ""),
            status=raw.get("status", ""),
            task_definition=raw.get("taskDefinition", ""),
            rollout_state=raw.get("rolloutState"),
            rollout_reason=raw.get("rolloutStateReason"),
            failed_tasks=raw.get("failedTasks", 0),
            desired=raw.get("desiredCount", 0),
            running=raw.get("runningCount", 0),
            pending=raw.get("pendingCount", 0),
            created_at=raw.get("createdAt"),
        )

    def as_json(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "status": self.status,
            "task_definition": self.task_definition,
            "version": version_of(self.task_definition) if self.task_definition else None,
            "rollout_state": self.rollout_state,
            "completed": self.rollout_state == "COMPLETED",
            "failed_tasks": self.failed_tasks,
            "desired": self.desired,
            "running": self.running,
            "pending": self.pending,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True, slots=True)
class Service:
    """The facts Jarvis keeps from one ``describe_services`` entry."""

    cluster: str
    name: str
    arn: str
    status: str
    desired: int
    running: int
    pending: int
    task_definition: str
    launch_type: str | None
    deployments: tuple[Deployment, ...]
    circuit_breaker: dict[str, bool] | None
    target_groups: tuple[str, ...]
    tags: Mapping[str, str]

    @classmethod
    def parse(cls, raw: ServiceTypeDef, cluster: str) -> Service:
        breaker = raw.get("deploymentConfiguration", {}).get("deploymentCircuitBreaker")
        strategy = raw.get("capacityProviderStrategy", [])
        launch_type = raw.get("launchType") or (
            strategy[0]["capacityProvider"] if strategy else None
        )
        return cls(
            cluster=cluster,
            name=raw.get("serviceName", ""),
            arn=raw.get("serviceArn", ""),
            status=raw.get("status", ""),
            desired=raw.get("desiredCount", 0),
            running=raw.get("runningCount", 0),
            pending=raw.get("pendingCount", 0),
            task_definition=raw.get("taskDefinition", ""),
            launch_type=launch_type,
            deployments=tuple(Deployment.parse(d) for d in raw.get("deployments", [])),
            circuit_breaker=(
                None
                if breaker is None
                else {"enable": breaker["enable"], "rollback": breaker["rollback"]}
            ),
            target_groups=tuple(
                lb["targetGroupArn"]
                for lb in raw.get("loadBalancers", [])
                if "targetGroupArn" in lb
            ),
            tags={t["key"]: t.get("value", "") for t in raw.get("tags", []) if "key" in t},
        )

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(PROVIDER, f"{self.cluster}/{self.name}", "service")

    @property
    def primary(self) -> Deployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def rollout(self) -> str:
        primary = self.primary
        if primary is not None and primary.rollout_state in _ROLLOUT:
            return _ROLLOUT[primary.rollout_state]
        # Services without rollout states (external controllers, old API shapes).
        steady = len(self.deployments) <= 1 and self.running >= self.desired
        return "completed" if steady else "in_progress"


@dataclass(frozen=True, slots=True)
class Scaling:
    """The Application Auto Scaling facts for one service's desired count."""

    min: int
    max: int
    suspended: bool
    policies: tuple[str, ...]
    target_tracking: bool

    @classmethod
    def parse(
        cls, target: ScalableTargetTypeDef, policies: Sequence[ScalingPolicyTypeDef]
    ) -> Scaling:
        suspended = target.get("SuspendedState", {})
        return cls(
            min=target["MinCapacity"],
            max=target["MaxCapacity"],
            suspended=bool(suspended.get("DynamicScalingInSuspended"))
            or bool(suspended.get("DynamicScalingOutSuspended")),
            policies=tuple(p["PolicyName"] for p in policies),
            target_tracking=any(p["PolicyType"] == "TargetTrackingScaling" for p in policies),
        )

    def as_json(self) -> dict[str, JSON]:
        return {
            "min": self.min,
            "max": self.max,
            "suspended": self.suspended,
            "policies": list(self.policies),
            "target_tracking": self.target_tracking,
        }


def _health(service: Service) -> tuple[Health, str]:
    primary = service.primary
    counts = f"{service.running} of {service.desired} tasks running"
    if service.status != "ACTIVE":
        return Health.DEGRADED, f"service is {service.status.lower()}"
    if primary is not None and primary.rollout_state == "FAILED":
        return Health.UNHEALTHY, f"deployment {primary.id} failed; {counts}"
    if service.desired > 0 and service.running == 0:
        return Health.UNHEALTHY, counts
    if service.running < service.desired:
        return Health.DEGRADED, counts
    return Health.HEALTHY, ""


def service_state(
    service: Service,
    *,
    scaling: Scaling | None,
    metrics: Mapping[str, float],
    observed_at: datetime,
) -> ResourceState:
    """One ECS service as a `ResourceState`, with the attributes policies read."""
    health, detail = _health(service)
    primary = service.primary
    others = [d for d in service.deployments if d is not primary and d.task_definition]
    others.sort(key=lambda d: d.created_at or observed_at, reverse=True)
    previous = [version_of(d.task_definition) for d in others]
    version = version_of(service.task_definition) if service.task_definition else None
    rollout = service.rollout()
    attributes: dict[str, JSON] = {
        "cluster": service.cluster,
        "service": service.name,
        "arn": service.arn,
        "status": service.status,
        "launch_type": service.launch_type,
        "task_definition_arn": service.task_definition,
        "deployments": [d.as_json() for d in service.deployments],
        "circuit_breaker": service.circuit_breaker,
        "target_groups": list(service.target_groups),
        "autoscaling": None if scaling is None else scaling.as_json(),
        "min_replicas_owner": (
            "application-autoscaling" if scaling is not None and scaling.target_tracking else None
        ),
    }
    return ResourceState(
        ref=service.ref,
        health=health,
        observed_at=observed_at,
        replicas=Replicas(
            desired=service.desired,
            running=service.running,
            pending=service.pending,
            # Under target tracking a SCALE moves the min capacity itself
            # (`EcsApplier.scale`): it bounds the autoscaler, not Jarvis. As a
            # floor it would hold every scale-up for good.
            min=None if scaling is None or scaling.target_tracking else scaling.min,
            max=None if scaling is None else scaling.max,
        ),
        version=version,
        detail=detail,
        metrics=dict(metrics),
        attributes=attributes,
        rollout=Rollout(
            RolloutState(rollout), reason=None if primary is None else primary.rollout_reason
        ),
        versions=Versions(
            previous=previous[0] if previous else None,
            available=tuple(dict.fromkeys(previous)),
            # The version to remember as "last stable": only a single COMPLETED deployment.
            stable=version if rollout == "completed" and not others else None,
        ),
        record_nulls=_NULLS,
    )
