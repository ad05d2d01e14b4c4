"""The changes Jarvis makes to ECS services: scale, restart, roll back, deploy.

Called by `jarvis.actuators.aws.ecs.EcsActuator.apply` after the guard allowed an
action; each function makes the AWS calls for one action kind and returns a
human-readable detail, or raises `ActuatorError`. Scaling respects
Application Auto Scaling: a desired count is never set outside a registered
min/max, and where a target-tracking policy owns the service Jarvis moves the
scalable target's bounds instead of fighting the autoscaler over desiredCount.

Idempotency: none of the calls a change makes (UpdateService,
RegisterTaskDefinition, RegisterScalableTarget) takes a ``clientToken`` in
the ECS and Application Auto Scaling API models, so the key is checked before
the change and written after it: `already_applied` reads the service's tags
(DescribeServices with ``include=["TAGS"]``) for ``jarvis:action-key``, and
`record_key` tags the service (TagResource) once the change succeeded; at
start, recovery reads the same tag to close an orphaned intent whose change
was made as applied (`EcsActuator.confirm_applied`). A
crash, timeout or failed tag write between the change and the tag leaves the
key unrecorded, so a replay in that window changes the service again. For the
same reason the changes themselves go through a client that never resends
(`AwsClients.ecs_changes`): a resend after a lost answer is such a replay.
A change whose answer was lost (a read timeout, a connection closed) is
reported timed out, recorded `action.unknown`: it may have been made; one
that never reached ECS (no connection made) fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from jarvis.actuators.aws.clients import aws_call, sent_unless_refused
from jarvis.actuators.aws.services import DESIRED_COUNT, Scaling, scaling_resource_id, version_of
from jarvis.actuators.base import ActuatorError
from jarvis.model import ErrorKind, Scale

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ServiceTypeDef


KEY_TAG = "jarvis:action-key"
# A service deleted since observe: DRAINING while its tasks stop, then INACTIVE.
_DELETED = frozenset({"DRAINING", "INACTIVE"})


def _terminal(message: str, code: str) -> ActuatorError:
    return ActuatorError(message, kind=ErrorKind.TERMINAL, code=code)


def _gone(message: str, code: str) -> ActuatorError:
    """The service is not there (deleted since observe): `ErrorKind.GONE`."""
    return ActuatorError(message, kind=ErrorKind.GONE, code=code)


def _task_definition(described: ServiceTypeDef, cluster: str, service: str) -> str:
    """The service's current task definition; terminal when it has none."""
    current = described.get("taskDefinition")
    if not current:
        raise _terminal(f"service {cluster}/{service} not found", "ServiceNotFoundException")
    return current


def _other_task_definition(version: str, current: str, ran: Sequence[str]) -> str:
    """Why ``version`` is not a revision the service may return to, or "".

    UpdateService takes any task definition the caller can read: a rollback
    named with another family (another service's, its task role with it) or
    another account's ARN would run that instead of an earlier self. The
    families of the service's deployments still present (``ran``) count as its
    own, so a rollback across a family rename still returns.
    """
    family = _family(version)
    own = {_family(t) for t in (current, *ran) if t}
    if family not in own:
        return f"family {family!r} is not the service's own ({', '.join(sorted(own))})"
    if version.startswith("arn:") and _arn_prefix(version) != _arn_prefix(current):
        return f"not in the service's partition, region and account ({_arn_prefix(current)})"
    return ""


def _family(task_definition: str) -> str:
    return version_of(task_definition).split(":", 1)[0]


def _arn_prefix(arn: str) -> str:
    """``arn:PARTITION:ecs:REGION:ACCOUNT`` of a task definition ARN."""
    return arn.split(":task-definition/", 1)[0]


class EcsApplier:
    """Applies actions to ``ecs://CLUSTER/SERVICE`` targets."""

    def __init__(
        self,
        ecs: ECSClient,
        autoscaling: ApplicationAutoScalingClient,
        limiter: anyio.CapacityLimiter,
        changes: ECSClient | None = None,
        change_attempts: int = 1,
    ) -> None:
        self._ecs = ecs
        self._changes = changes or ecs
        """Sends UpdateService and RegisterTaskDefinition once (`AwsClients.ecs_changes`)."""
        self._attempts = change_attempts
        """Requests a change may make when ECS refuses it unread (`sent_unless_refused`)."""
        self._autoscaling = autoscaling
        self._limiter = limiter

    async def already_applied(self, cluster: str, service: str, key: str) -> ServiceTypeDef | None:
        """The service as DescribeServices describes it (tags included), or None when its
        tags say the change with ``key`` was made: a rollback and a deploy read its task
        definitions from it, and `record_key` its ARN.

        Raises `ErrorKind.GONE` when the service is gone or no longer ACTIVE.
        """
        answer = await aws_call(
            "ecs:DescribeServices",
            lambda: self._ecs.describe_services(
                cluster=cluster, services=[service], include=["TAGS"]
            ),
            self._limiter,
        )
        services = answer.get("services", [])
        if not services:
            raise _gone(f"service {cluster}/{service} not found", "ServiceNotFoundException")
        found = services[0]
        if any(t.get("key") == KEY_TAG and t.get("value") == key for t in found.get("tags", [])):
            return None
        status = found.get("status", "ACTIVE")
        if status in _DELETED:
            # ECS refuses UpdateService with this code, but a deploy would
            # register a task definition first.
            raise _gone(
                f"service {cluster}/{service} is {status.lower()} (deleted): not changed",
                "ServiceNotActiveException",
            )
        return found

    async def record_key(self, arn: str, key: str) -> None:
        """Tag the service with the key of the change just made."""
        await aws_call(
            "ecs:TagResource",
            lambda: self._ecs.tag_resource(resourceArn=arn, tags=[{"key": KEY_TAG, "value": key}]),
            self._limiter,
        )

    async def scale(self, cluster: str, service: str, params: Scale) -> str:
        wanted = params.replicas
        if wanted is None or wanted < 0:
            raise _terminal("scale needs a non-negative replica count", "InvalidAction")
        scaling = await self.scaling(cluster, service)
        if scaling is not None and scaling.target_tracking:
            low = params.min_replicas if params.min_replicas is not None else wanted
            high = params.max_replicas if params.max_replicas is not None else scaling.max
            if low > high:
                raise _terminal(
                    f"min capacity {low} would exceed max capacity {high}", "OutOfBounds"
                )
            await aws_call(
                "application-autoscaling:RegisterScalableTarget",
                lambda: self._autoscaling.register_scalable_target(
                    ServiceNamespace="ecs",
                    ResourceId=scaling_resource_id(cluster, service),
                    ScalableDimension=DESIRED_COUNT,
                    MinCapacity=low,
                    MaxCapacity=high,
                ),
                self._limiter,
                change=True,
            )
            return (
                f"target tracking owns {cluster}/{service}: scalable target bounds set to "
                f"{low}..{high} (were {scaling.min}..{scaling.max})"
            )
        if scaling is not None and not scaling.min <= wanted <= scaling.max:
            raise _terminal(
                f"{wanted} tasks is outside the registered scalable target "
                f"{scaling.min}..{scaling.max}",
                "OutOfBounds",
            )
        await self._update(cluster, service, desiredCount=wanted)
        return f"desired count set to {wanted}"

    async def restart(self, cluster: str, service: str) -> str:
        await self._update(cluster, service, forceNewDeployment=True)
        return "new deployment forced"

    async def rollback(
        self, cluster: str, service: str, version: str, described: ServiceTypeDef
    ) -> str:
        """Return ``service`` (as `already_applied` described it) to task definition ``version``."""
        if not version:
            raise _terminal(
                "rollback needs a task definition (ARN or family:revision)", "InvalidAction"
            )
        current = _task_definition(described, cluster, service)
        ran = [d.get("taskDefinition", "") for d in described.get("deployments", [])]
        stranger = _other_task_definition(version, current, ran)
        if stranger:
            raise _terminal(
                f"rollback of {cluster}/{service} to {version}: {stranger}",
                "OtherTaskDefinitionFamily",
            )
        await self._update(cluster, service, taskDefinition=version)
        return f"task definition set to {version_of(version)}"

    async def deploy(
        self, cluster: str, service: str, image: str, described: ServiceTypeDef
    ) -> str:
        """Run ``image`` in a new revision of ``service``'s task definition (as `already_applied`
        described the service)."""
        if not image:
            raise _terminal("deploy needs an image", "InvalidAction")
        current = _task_definition(described, cluster, service)
        definition = await aws_call(
            "ecs:DescribeTaskDefinition",
            lambda: self._ecs.describe_task_definition(taskDefinition=current, include=["TAGS"]),
            self._limiter,
        )
        request = self._clone(definition["taskDefinition"], definition.get("tags", []), image)
        # Not a change of the service: a revision registered without an answer leaves the
        # service as it was, since UpdateService is not sent, so the deploy failed.
        registered = await aws_call(
            "ecs:RegisterTaskDefinition",
            lambda: sent_unless_refused(
                lambda: self._changes.register_task_definition(**request), self._attempts
            ),
            self._limiter,
        )
        arn = registered["taskDefinition"]["taskDefinitionArn"]
        await self._update(cluster, service, taskDefinition=arn)
        return f"registered {version_of(arn)} with image {image}; was {version_of(current)}"

    async def scaling(self, cluster: str, service: str) -> Scaling | None:
        """The registered scalable target of one service, with its policies, if any."""
        resource_id = scaling_resource_id(cluster, service)
        targets = await aws_call(
            "application-autoscaling:DescribeScalableTargets",
            lambda: self._autoscaling.describe_scalable_targets(
                ServiceNamespace="ecs", ResourceIds=[resource_id], ScalableDimension=DESIRED_COUNT
            ),
            self._limiter,
        )
        if not targets.get("ScalableTargets"):
            return None
        policies = await aws_call(
            "application-autoscaling:DescribeScalingPolicies",
            lambda: self._autoscaling.describe_scaling_policies(
                ServiceNamespace="ecs", ResourceId=resource_id, ScalableDimension=DESIRED_COUNT
            ),
            self._limiter,
        )
        return Scaling.parse(targets["ScalableTargets"][0], policies.get("ScalingPolicies", []))

    def _clone(self, current: Any, tags: Any, image: str) -> dict[str, Any]:
        # Copy exactly the fields RegisterTaskDefinition accepts, as the API model says.
        shape = self._ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape
        accepted = shape.members if shape is not None else {}
        request = {k: v for k, v in current.items() if k in accepted}
        containers = [dict(c) for c in request.get("containerDefinitions", [])]
        index = _container_for(containers, image)
        containers[index]["image"] = image
        request["containerDefinitions"] = containers
        # AWS reserves the "aws:" prefix (any case) of tag keys and values, sets such
        # tags itself (CloudFormation's aws:cloudformation:*) and refuses them here.
        kept = [
            t for t in tags if not _reserved(t.get("key", "")) and not _reserved(t.get("value", ""))
        ]
        if kept:
            request["tags"] = kept
        return request

    async def _update(self, cluster: str, service: str, **change: Any) -> None:
        await aws_call(
            "ecs:UpdateService",
            lambda: sent_unless_refused(
                lambda: self._changes.update_service(cluster=cluster, service=service, **change),
                self._attempts,
            ),
            self._limiter,
            change=True,
        )


def _reserved(text: str) -> bool:
    return text[:4].lower() == "aws:"


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    # A colon before the last slash belongs to a registry port, not a tag.
    return head if sep and "/" not in tail else name


def _container_for(containers: list[dict[str, Any]], image: str) -> int:
    """The container whose image the new one replaces: same repository, or the only one."""
    wanted = _repository(image)
    matches = [
        i for i, c in enumerate(containers) if _repository(str(c.get("image", ""))) == wanted
    ]
    if len(matches) == 1:
        return matches[0]
    if len(containers) == 1:
        return 0
    raise _terminal(
        f"cannot tell which of {len(containers)} containers runs {wanted}", "AmbiguousContainer"
    )
