"""Turning what the Kubernetes API returned into `ResourceState`s: pure functions.

Called by `jarvis.actuators.kubernetes.actuator.KubernetesActuator.observe` with the
SDK objects it read for one Deployment (the Deployment, its ReplicaSets, their
pods, the autoscaling/v2 HPA targeting it). No I/O here, so the health rules
are easy to read and to test.

Health: UNHEALTHY when a pod's container (init containers included) waits in
CrashLoopBackOff / ImagePullBackOff / ErrImagePull (and friends), when no
replica is available while some are desired (unless a rollout is under way
and no pod fails: its new pods are starting), or when the rollout passed its
progress deadline; DEGRADED when only partially available or a rollout is in
progress; else HEALTHY.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from jarvis.actuators.kubernetes.client import to_json
from jarvis.model import (
    JSON,
    Health,
    Metric,
    Replicas,
    ResourceRef,
    ResourceState,
    Rollout,
    RolloutState,
    Versions,
)

# Recorded as null when unknown, not left out (see `ResourceState.record_nulls`).
_NULLS = frozenset({"previous_version"})

REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
ACTION_KEY = "jarvis.io/action-key"
"""The idempotency key of the Jarvis action that last changed an object (or pod template)."""
HASH_LABEL = "pod-template-hash"
_INT64_DIGITS = 19
BAD_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True, slots=True)
class PodFacts:
    total: int
    ready: int
    restarts: int
    waiting: dict[str, int]

    @property
    def bad(self) -> dict[str, int]:
        return {reason: n for reason, n in self.waiting.items() if reason in BAD_WAITING}


def selector_string(selector: client.V1LabelSelector | None) -> str:
    """A Deployment's label selector written the way ``?labelSelector=`` wants it."""
    if selector is None:
        return ""
    parts = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(expr.values or [])
        match expr.operator:
            case "In":
                parts.append(f"{expr.key} in ({values})")
            case "NotIn":
                parts.append(f"{expr.key} notin ({values})")
            case "Exists":
                parts.append(expr.key)
            case "DoesNotExist":
                parts.append(f"!{expr.key}")
    return ",".join(parts)


def revision_of(meta: client.V1ObjectMeta | None) -> int | None:
    """The revision annotation as the controller writes it (an int64 in ASCII digits), else None."""
    return revision_number(((meta.annotations if meta else None) or {}).get(REVISION))


def revision_number(raw: str | None) -> int | None:
    """``raw`` as a revision number (an int64 in ASCII digits), else None.

    Anyone may overwrite an annotation or type a ``--to``: ``str.isdigit`` also
    takes "²", which `int` refuses, and `int` refuses more than 4300 digits too.
    """
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > _INT64_DIGITS:
        return None
    return int(raw)


def being_deleted(deployment: client.V1Deployment) -> str | None:
    """ "being deleted (since TIME)" when the Deployment has a ``deletionTimestamp``, else None.

    With foreground deletion (or a finalizer) it lingers while its pods go, and its
    controller only syncs its status: observed, it is UNKNOWN (no policy restarts
    what is being removed); changed, it rolls nothing out, so no change is made.
    """
    since = deployment.metadata.deletion_timestamp if deployment.metadata else None
    if since is None:
        return None
    return f"being deleted (since {since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})"


def owned_by(meta: client.V1ObjectMeta | None, uid: str | None) -> bool:
    refs = (meta.owner_references if meta else None) or []
    return uid is not None and any(ref.uid == uid for ref in refs)


def template_key(api: client.ApiClient, template: client.V1PodTemplateSpec | None) -> Any:
    """The pod template as JSON, without what a restart or the controller adds.

    Two revisions with equal keys differ only by the ``restartedAt`` and
    action-key annotations a restart writes, so rolling back from one to the
    other would undo nothing.
    """
    raw: dict[str, Any] = to_json(api, template) or {}
    meta = dict(raw.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    meta["annotations"] = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in {RESTARTED_AT, ACTION_KEY}
    }
    return {**raw, "metadata": meta}


def pod_facts(pods: list[client.V1Pod]) -> PodFacts:
    waiting: Counter[str] = Counter()
    ready = restarts = 0
    for pod in pods:
        statuses = (pod.status.container_statuses if pod.status else None) or []
        ready += bool(statuses) and all(s.ready for s in statuses)
        # A crash-looping init container holds the others in PodInitializing.
        inits = (pod.status.init_container_statuses if pod.status else None) or []
        for status in [*inits, *statuses]:
            restarts += status.restart_count or 0
            reason = status.state.waiting.reason if status.state and status.state.waiting else None
            if reason:
                waiting[reason] += 1
    return PodFacts(total=len(pods), ready=ready, restarts=restarts, waiting=dict(waiting))


def rollout_status(deployment: client.V1Deployment) -> tuple[str, str]:
    """("completed" | "in_progress" | "failed", why), following `kubectl rollout status`."""
    spec, status = deployment.spec, deployment.status
    if status is None or not _observed(deployment):
        return "in_progress", "waiting for the deployment spec update to be observed"
    progressing = _condition(deployment, "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return "failed", "rollout exceeded its progress deadline"
    desired = spec.replicas if spec and spec.replicas is not None else 1
    updated, total = status.updated_replicas or 0, status.replicas or 0
    available = status.available_replicas or 0
    if updated < desired:
        return "in_progress", f"{updated} of {desired} new replicas updated"
    if total > updated:
        return "in_progress", f"{total - updated} old replicas pending termination"
    if available < updated:
        return "in_progress", f"{available} of {updated} updated replicas available"
    return "completed", "successfully rolled out"


def rollout_verdict(
    deployment: client.V1Deployment,
    replicasets: list[client.V1ReplicaSet],
    pods: list[client.V1Pod],
) -> tuple[bool, str] | None:
    """Whether the current revision's rollout succeeded (True), failed (False), or None yet.

    Only the pods of the current revision's ReplicaSet count: old pods that
    are still crashing while they are replaced say nothing about the new ones.
    """
    status, why = rollout_status(deployment)
    if status == "failed":
        return False, why
    if not _observed(deployment):
        # Read right after the change: the revision and the pods are still the old
        # ones (crash-looping, maybe: the reason for a restart), not the new ones.
        return None
    revision = revision_of(deployment.metadata)
    current = next((rs for rs in replicasets if revision_of(rs.metadata) == revision), None)
    uid = current.metadata.uid if current and current.metadata else None
    facts = pod_facts([pod for pod in pods if owned_by(pod.metadata, uid)])
    if facts.bad:
        found = ", ".join(f"{n} pod(s) {reason}" for reason, n in sorted(facts.bad.items()))
        return False, f"the new pods are failing: {found}"
    if status == "completed":
        return True, "rollout complete"
    return None


def _condition(deployment: client.V1Deployment, kind: str) -> client.V1DeploymentCondition | None:
    conditions = (deployment.status.conditions if deployment.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def _settling(deployment: client.V1Deployment, rollout: str) -> bool:
    """Whether a rollout is under way: the controller has not yet reported it complete.

    Once it has (``NewReplicaSetAvailable``) the controller keeps that reason
    until the next rollout, even when every pod stops being ready: that is an
    outage, not a rollout.
    """
    if rollout != "in_progress":
        return False
    progressing = _condition(deployment, "Progressing")
    return (
        not _observed(deployment)
        or progressing is None
        or progressing.reason != "NewReplicaSetAvailable"
    )


def _observed(deployment: client.V1Deployment) -> bool:
    """Whether the controller has seen the current spec (its status is about it)."""
    meta, status = deployment.metadata, deployment.status
    generation = (meta.generation if meta else None) or 0
    return status is not None and (status.observed_generation or 0) >= generation


def _health(
    desired: int, available: int, rollout: str, pods: PodFacts, *, settling: bool
) -> tuple[Health, str]:
    if pods.bad:
        found = ", ".join(f"{n} pod(s) {reason}" for reason, n in sorted(pods.bad.items()))
        return Health.UNHEALTHY, found
    if desired > 0 and available == 0:
        # New pods still starting (pulling, creating) while a rollout is under way:
        # the progress deadline, not this tick, says when that has taken too long.
        if settling:
            return Health.DEGRADED, f"rollout in progress: 0/{desired} replicas available yet"
        return Health.UNHEALTHY, f"no replica available of {desired} desired"
    return _by_availability(desired, available, rollout)


def _by_availability(desired: int, available: int, rollout: str) -> tuple[Health, str]:
    """Health once no pod fails and some replica is available (or none is desired)."""
    if rollout == "failed":
        return Health.UNHEALTHY, "rollout exceeded its progress deadline"
    if available < desired:
        return Health.DEGRADED, f"{available}/{desired} replicas available"
    if rollout == "in_progress":
        return Health.DEGRADED, "rollout in progress"
    return Health.HEALTHY, f"{available}/{desired} replicas available"


def _hpa_facts(hpa: client.V2HorizontalPodAutoscaler | None) -> dict[str, JSON] | None:
    if hpa is None or hpa.spec is None:
        return None
    status = hpa.status
    return {
        "name": hpa.metadata.name if hpa.metadata else None,
        "min_replicas": hpa.spec.min_replicas if hpa.spec.min_replicas is not None else 1,
        "max_replicas": hpa.spec.max_replicas,
        "current_replicas": status.current_replicas if status else None,
        "desired_replicas": status.desired_replicas if status else None,
    }


def _cpu_utilization(hpa: client.V2HorizontalPodAutoscaler | None) -> float | None:
    metrics = (hpa.status.current_metrics if hpa and hpa.status else None) or []
    for metric in metrics:
        resource = metric.resource
        if metric.type == "Resource" and resource and resource.name == "cpu" and resource.current:
            value = resource.current.average_utilization
            if value is not None:
                return float(value)
    return None


def _images(template: client.V1PodTemplateSpec | None) -> list[str]:
    containers = (template.spec.containers if template and template.spec else None) or []
    return [c.image or "" for c in containers]


def fingerprint(api: client.ApiClient, template: client.V1PodTemplateSpec | None) -> str:
    """The version of a pod template: its images and a hash of the rest, restarts aside.

    Revision numbers are not versions: a restart makes a new revision of the
    same code, and a rollback renumbers an old one. The fingerprint stays put.
    """
    blob = json.dumps(template_key(api, template), sort_keys=True, default=str).encode()
    return f"{','.join(_images(template))}#{hashlib.sha256(blob).hexdigest()[:8]}"


def rollback_candidates(
    api: client.ApiClient,
    deployment: client.V1Deployment,
    replicasets: list[client.V1ReplicaSet],
) -> list[tuple[str, client.V1ReplicaSet]]:
    """(version, newest ReplicaSet of it) one can roll back to, newest first.

    Versions other than the current one, each once: rolling back to a
    revision that only a restart created would undo nothing.
    """
    seen = {fingerprint(api, deployment.spec.template if deployment.spec else None)}
    found: list[tuple[str, client.V1ReplicaSet]] = []
    for _, rs in newest_first(replicasets):
        version = fingerprint(api, rs.spec.template if rs.spec else None)
        if version not in seen:
            seen.add(version)
            found.append((version, rs))
    return found


def newest_first(
    replicasets: list[client.V1ReplicaSet],
) -> list[tuple[int | None, client.V1ReplicaSet]]:
    pairs = [(revision_of(rs.metadata), rs) for rs in replicasets]
    return sorted(pairs, key=lambda pair: -(pair[0] or 0))


def deployment_ref(deployment: client.V1Deployment) -> ResourceRef:
    """A Deployment's URI, known from the list alone (before its pods are read)."""
    meta = deployment.metadata or client.V1ObjectMeta()
    return ResourceRef("k8s", f"{meta.namespace}/{meta.name}", kind="deployment")


def deployment_state(
    api: client.ApiClient,
    deployment: client.V1Deployment,
    *,
    replicasets: list[client.V1ReplicaSet],
    pods: list[client.V1Pod],
    hpa: client.V2HorizontalPodAutoscaler | None,
    now: datetime,
) -> ResourceState:
    """One Deployment and what it owns, as the model's `ResourceState`."""
    meta = deployment.metadata or client.V1ObjectMeta()
    spec, status = deployment.spec, deployment.status
    desired = spec.replicas if spec and spec.replicas is not None else 1
    available = (status.available_replicas if status else None) or 0
    rollout, rollout_detail = rollout_status(deployment)
    facts = pod_facts(pods)
    settling = _settling(deployment, rollout)
    health, detail = _health(desired, available, rollout, facts, settling=settling)
    if rollout == "in_progress" and not settling:
        # `kubectl rollout status` would wait, but the controller called this rollout
        # complete: pods lost since are for health to judge, not a rollout to wait for.
        rollout, rollout_detail = "completed", f"rolled out; since then {rollout_detail}"
    current = revision_of(meta)
    versions = [version for version, _ in rollback_candidates(api, deployment, replicasets)]
    revisions = [
        {
            "revision": rev,
            "version": fingerprint(api, rs.spec.template if rs.spec else None),
            "images": _images(rs.spec.template if rs.spec else None),
        }
        for rev, rs in newest_first(replicasets)
    ]
    autoscaler = _hpa_facts(hpa)
    metrics: dict[str, float] = {"pod_restarts": float(facts.restarts)}
    if (cpu := _cpu_utilization(hpa)) is not None:
        metrics[Metric.CPU_UTILIZATION] = cpu
    conditions = {
        c.type: {"status": c.status, "reason": c.reason}
        for c in ((status.conditions if status else None) or [])
    }
    attributes: dict[str, JSON] = {
        "namespace": meta.namespace,
        "deployment": meta.name,
        "revision": current,
        "revisions": revisions,
        "images": _images(spec.template if spec else None),
        "generation": meta.generation,
        "observed_generation": status.observed_generation if status else None,
        "paused": bool(spec.paused) if spec else False,
        "conditions": conditions,
        "status_replicas": {
            "total": (status.replicas if status else None) or 0,
            "updated": (status.updated_replicas if status else None) or 0,
            "ready": (status.ready_replicas if status else None) or 0,
            "available": available,
            "unavailable": (status.unavailable_replicas if status else None) or 0,
        },
        "pods": {
            "total": facts.total,
            "ready": facts.ready,
            "restarts": facts.restarts,
            "waiting": facts.waiting,
        },
        "autoscaler": autoscaler,
        "min_replicas_owner": "hpa" if autoscaler else "deployment",
    }
    return ResourceState(
        ref=deployment_ref(deployment),
        health=health,
        observed_at=now,
        replicas=Replicas(
            desired=desired,
            running=available,
            pending=max(0, desired - available),
            # With an HPA, a SCALE sets its minReplicas (`DeploymentChanges.scale`): it
            # bounds the autoscaler, not Jarvis, and read back as a floor it would hold
            # every scale-up for good. Still in the record (``autoscaler``).
            min=None,
            max=autoscaler["max_replicas"] if autoscaler else None,
        ),
        version=fingerprint(api, spec.template if spec else None),
        detail=detail,
        metrics=metrics,
        attributes=attributes,
        rollout=Rollout(
            RolloutState(rollout),
            reason=rollout_detail,
            crash_looping="CrashLoopBackOff" in facts.waiting,
        ),
        versions=Versions(previous=versions[0] if versions else None, available=tuple(versions)),
        record_nulls=_NULLS,
    )
