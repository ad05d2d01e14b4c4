"""The changes Jarvis makes to a Deployment: scale (or its HPA's bounds), restart, roll back.

Called by `jarvis.actuators.kubernetes.actuator.KubernetesActuator.apply` in a
worker thread, once more after a 409 Conflict; each change reads what it
changes, writes with the ``resourceVersion`` it read, and returns a detail
(``SKIPPED``-prefixed when nothing was written that a rollout check could
watch) or raises `ActuatorError`; `AnswerLostError` when a write was sent and its
answer lost, so it may have landed. Every write carries the action's key as the
``jarvis.io/action-key`` annotation, and an object already carrying it is left
alone (see the actuator's docstring); `DeploymentChanges.carrier` reads the same
annotation for recovery. The reads of Deployments, HPAs and
ReplicaSets live here too, shared with observing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from kubernetes import client

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.kubernetes.client import (
    AnswerLostError,
    Unreadable,
    answer_lost,
    list_items,
    readable,
    to_json,
)
from jarvis.actuators.kubernetes.observe import (
    ACTION_KEY,
    HASH_LABEL,
    RESTARTED_AT,
    being_deleted,
    fingerprint,
    newest_first,
    owned_by,
    revision_number,
    revision_of,
    rollback_candidates,
    selector_string,
)
from jarvis.model import ActionKind, ErrorKind, Scale

SKIPPED = "skipped:"


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """One action on one Deployment, with the time it was asked for."""

    namespace: str
    name: str
    key: str
    """The action's idempotency key, written as the ``jarvis.io/action-key`` annotation."""
    now: datetime


class DeploymentChanges:
    """The Kubernetes calls behind apply, and the reads observing shares."""

    def __init__(self, api: client.ApiClient, *, timeout: float) -> None:
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._autoscaling = client.AutoscalingV2Api(api)
        self._core = client.CoreV1Api(api)
        self._timeout = timeout

    def read(self, namespace: str, name: str) -> client.V1Deployment:
        return self._apps.read_namespaced_deployment(
            name, namespace, _request_timeout=self._timeout
        )

    def deployments(
        self, namespace: str, selector: str | None
    ) -> tuple[list[client.V1Deployment], list[Unreadable]]:
        """The Deployments matching ``selector``, and those the client cannot read."""
        return list_items(
            partial(
                self._apps.list_namespaced_deployment,
                namespace,
                label_selector=selector,
                _request_timeout=self._timeout,
            ),
            client.V1Deployment.from_dict,
        )

    def hpas(
        self, namespace: str
    ) -> tuple[list[client.V2HorizontalPodAutoscaler], list[Unreadable]]:
        """The namespace's HPAs, and those the client cannot read."""
        return list_items(
            partial(
                self._autoscaling.list_namespaced_horizontal_pod_autoscaler,
                namespace,
                _request_timeout=self._timeout,
            ),
            client.V2HorizontalPodAutoscaler.from_dict,
        )

    def replicasets(
        self, namespace: str, selector: str, owner_uid: str | None
    ) -> list[client.V1ReplicaSet]:
        """The ReplicaSets ``owner_uid`` owns; `ActuatorError` (``Unreadable``) on a refused one."""
        found = list_items(
            partial(
                self._apps.list_namespaced_replica_set,
                namespace,
                label_selector=selector,
                _request_timeout=self._timeout,
            ),
            client.V1ReplicaSet.from_dict,
            keep=lambda raw: _raw_owned(raw, owner_uid),
        )
        return [rs for rs in readable(found, "ReplicaSet") if owned_by(rs.metadata, owner_uid)]

    def pods(self, namespace: str, selector: str) -> list[client.V1Pod]:
        """The pods matching ``selector``; `ActuatorError` (``Unreadable``) if one is unreadable."""
        found = list_items(
            partial(
                self._core.list_namespaced_pod,
                namespace,
                label_selector=selector,
                _request_timeout=self._timeout,
            ),
            client.V1Pod.from_dict,
        )
        return readable(found, "pod")

    def carrier(self, kind: str, namespace: str, name: str, key: str) -> str | None:
        """What carries ``key`` where a change of ``kind`` writes it, or None (recovery's proof).

        Certain, since every change writes its key in the same patch as the change:
        a scale on the Deployment's metadata or on an HPA targeting it, a rollback
        on the Deployment's metadata, a restart on its pod template. A Deployment
        that is gone carries nothing; an HPA the client refuses proves nothing.
        """
        try:
            deployment = self.read(namespace, name)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        where = f"deployment {namespace}/{name}"
        places: list[tuple[str, client.V1ObjectMeta | None]] = []
        if kind == ActionKind.RESTART:
            template = deployment.spec.template if deployment.spec else None
            places.append((f"{where}'s pod template", template.metadata if template else None))
        if kind in {ActionKind.SCALE, ActionKind.ROLLBACK}:
            places.append((where, deployment.metadata))
        if kind == ActionKind.SCALE and not _carries(deployment.metadata, key):
            hpas, _ = self.hpas(namespace)
            places += [
                (f"HPA {namespace}/{h.metadata.name} of {where}", h.metadata)
                for h in hpas_for(name, hpas)
                if h.metadata is not None
            ]
        found = next((place for place, meta in places if _carries(meta, key)), None)
        return None if found is None else f"{found} carries {ACTION_KEY}={key}"

    def _patch_deployment(
        self, namespace: str, name: str, body: dict[str, Any] | list[dict[str, Any]]
    ) -> None:
        _sent(
            f"patching deployment {namespace}/{name}",
            lambda: self._apps.patch_namespaced_deployment(
                name, namespace, body, _request_timeout=self._timeout
            ),
        )

    def scale(self, params: Scale, request: ChangeRequest) -> str:
        namespace, name, key = request.namespace, request.name, request.key
        deployment = self.read(namespace, name)
        hpas, unreadable = self.hpas(namespace)
        mine = [hpa for hpa in unreadable if may_target(hpa, name)]
        targeting = hpas_for(name, readable((hpas, mine), "HorizontalPodAutoscaler"))
        _refuse_deleting(deployment, namespace, name)
        if targeting:
            _refuse_hpa_scale(deployment, targeting, namespace)
            return self._scale_hpa(namespace, targeting[0], params, key)
        wanted = params.replicas
        if wanted is None or wanted < 0:
            raise ActuatorError(f"scale needs replicas >= 0, got {wanted}", kind=ErrorKind.TERMINAL)
        if _carries(deployment.metadata, key):
            return f"{SKIPPED} already applied (key {key})"
        current = deployment.spec.replicas if deployment.spec else None
        if current == wanted:
            return f"already at {current} replicas"
        # The Deployment itself, not /scale: a Scale object cannot carry the
        # key, and one conditional patch writes the count and the key together.
        self._patch_deployment(
            namespace,
            name,
            {
                "metadata": {
                    "resourceVersion": _rv(deployment.metadata),
                    "annotations": {ACTION_KEY: key},
                },
                "spec": {"replicas": wanted},
            },
        )
        return f"scaled from {current} to {wanted} replicas"

    def _scale_hpa(
        self, namespace: str, hpa: client.V2HorizontalPodAutoscaler, params: Scale, key: str
    ) -> str:
        spec = hpa.spec or client.V2HorizontalPodAutoscalerSpec(
            max_replicas=1, scale_target_ref=client.V2CrossVersionObjectReference(kind="", name="")
        )
        old = (spec.min_replicas if spec.min_replicas is not None else 1, spec.max_replicas)
        low = next(v for v in (params.min_replicas, params.replicas, old[0]) if v is not None)
        high = params.max_replicas if params.max_replicas is not None else max(old[1], low)
        hpa_name = (hpa.metadata.name if hpa.metadata else None) or ""
        if _carries(hpa.metadata, key):
            return f"{SKIPPED} HPA {hpa_name} already applied (key {key})"
        if not 1 <= low <= high:
            raise ActuatorError(
                f"HPA {namespace}/{hpa_name} needs 1 <= min <= max, got min {low} max {high}",
                kind=ErrorKind.TERMINAL,
                code="Invalid",
            )
        if (low, high) == old:
            return f"HPA {hpa_name} already at min {low} max {high}"
        body = {
            "metadata": {"resourceVersion": _rv(hpa.metadata), "annotations": {ACTION_KEY: key}},
            "spec": {"minReplicas": low, "maxReplicas": high},
        }
        _sent(
            f"patching HPA {namespace}/{hpa_name}",
            lambda: self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                hpa_name, namespace, body, _request_timeout=self._timeout
            ),
        )
        return f"HPA {hpa_name}: min {old[0]}->{low}, max {old[1]}->{high}"

    def restart(self, request: ChangeRequest) -> str:
        namespace, name, key = request.namespace, request.name, request.key
        deployment = self.read(namespace, name)
        template = deployment.spec.template if deployment.spec else None
        if _carries(template.metadata if template else None, key):
            return f"{SKIPPED} already restarted (key {key})"
        _refuse_deleting(deployment, namespace, name)
        if deployment.spec is not None and deployment.spec.paused:
            raise ActuatorError(
                f"cannot restart paused deployment {namespace}/{name} (resume it first)",
                kind=ErrorKind.TERMINAL,
                code="Paused",
            )
        # RFC 3339 in UTC, exactly what `kubectl rollout restart` writes.
        stamp = request.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._patch_deployment(
            namespace,
            name,
            {
                "metadata": {"resourceVersion": _rv(deployment.metadata)},
                "spec": {
                    "template": {
                        "metadata": {"annotations": {RESTARTED_AT: stamp, ACTION_KEY: key}}
                    }
                },
            },
        )
        return f"restarted (restartedAt={stamp}) from revision {revision_of(deployment.metadata)}"

    def rollback(self, wanted: str | None, request: ChangeRequest) -> str:
        namespace, name, key = request.namespace, request.name, request.key
        deployment = self.read(namespace, name)
        meta = deployment.metadata or client.V1ObjectMeta()
        if _carries(meta, key):
            return f"{SKIPPED} already rolled back (key {key})"
        _refuse_deleting(deployment, namespace, name)
        spec = deployment.spec
        if spec is not None and spec.paused:
            # As `kubectl rollout undo`: the template of a paused Deployment holds
            # edits an operator is staging, and nothing would roll out anyway.
            raise ActuatorError(
                f"cannot roll back paused deployment {namespace}/{name} (resume it first)",
                kind=ErrorKind.TERMINAL,
                code="Paused",
            )
        replicasets = self.replicasets(
            namespace, selector_string(spec.selector if spec else None), meta.uid
        )
        current = revision_of(meta)
        target = _rollback_target(self._api, deployment, replicasets, wanted)
        if target is None or target.spec is None:
            missing = "an earlier version" if wanted is None else f"version {wanted}"
            raise ActuatorError(
                f"{namespace}/{name} has no ReplicaSet of {missing} to roll back to",
                kind=ErrorKind.TERMINAL,
                code="NoRevision" if wanted is None else "RevisionNotFound",
            )
        reached = f"revision {revision_of(target.metadata)}"
        template = _without_hash(to_json(self._api, target.spec.template))
        if template == _without_hash(to_json(self._api, spec.template if spec else None)):
            return f"{SKIPPED} the current template already matches {reached}"
        # JSON patch, like `kubectl rollout undo`; the resourceVersion makes it
        # conditional, so replacing the whole annotation map loses no one's write.
        annotations = {**(meta.annotations or {}), ACTION_KEY: key}
        self._patch_deployment(
            namespace,
            name,
            [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": _rv(meta)},
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "add", "path": "/metadata/annotations", "value": annotations},
            ],
        )
        return f"rolled back from revision {current} to the template of {reached}"


def _refuse_deleting(deployment: client.V1Deployment, namespace: str, name: str) -> None:
    """`ActuatorError` (gone, ``Deleting``) if the Deployment is `being_deleted`: a
    change would be written, roll nothing out, and read as a success."""
    deleting = being_deleted(deployment)
    if deleting is not None:
        raise ActuatorError(
            f"deployment {namespace}/{name} is {deleting}: not changed",
            kind=ErrorKind.GONE,
            code="Deleting",
        )


def _refuse_hpa_scale(
    deployment: client.V1Deployment,
    targeting: list[client.V2HorizontalPodAutoscaler],
    namespace: str,
) -> None:
    """`ActuatorError` (terminal) when new bounds on the HPA would scale nothing."""
    if len(targeting) > 1:
        # Kubernetes 1.26+ stands every one of them down (AmbiguousSelector).
        names = ", ".join(
            sorted((h.metadata.name if h.metadata else None) or "" for h in targeting)
        )
        name = (deployment.metadata.name if deployment.metadata else None) or ""
        raise ActuatorError(
            f"deployment {namespace}/{name} is the target of several HPAs ({names}), which "
            "Kubernetes all stops: not scaled; keep one",
            kind=ErrorKind.TERMINAL,
            code="AmbiguousAutoscalers",
        )
    _refuse_idle_hpa(deployment, targeting[0], namespace)
    _refuse_managed_hpa(targeting[0], namespace)


def _refuse_idle_hpa(
    deployment: client.V1Deployment, hpa: client.V2HorizontalPodAutoscaler, namespace: str
) -> None:
    """`ActuatorError` (terminal, ``AutoscalingDisabled``) if the HPA is deactivated.

    A target scaled to 0 under an HPA whose min is above 0 is Kubernetes' implicit
    maintenance mode: the HPA leaves it alone (``ScalingActive`` False) until someone
    scales the Deployment itself, so moving the HPA's bounds would scale nothing,
    and scaling the Deployment would end a maintenance an operator started.
    """
    replicas = deployment.spec.replicas if deployment.spec else None
    low = hpa.spec.min_replicas if hpa.spec and hpa.spec.min_replicas is not None else 1
    if replicas == 0 and low != 0:
        name = deployment.metadata.name if deployment.metadata else ""
        hpa_name = hpa.metadata.name if hpa.metadata else ""
        raise ActuatorError(
            f"deployment {namespace}/{name} is at 0 replicas, which deactivates HPA "
            f"{hpa_name} (maintenance mode): not scaled; scale the Deployment by hand to "
            "resume autoscaling",
            kind=ErrorKind.TERMINAL,
            code="AutoscalingDisabled",
        )


def _refuse_managed_hpa(hpa: client.V2HorizontalPodAutoscaler, namespace: str) -> None:
    """`ActuatorError` (terminal, ``AutoscalerManaged``) if another controller owns the HPA.

    KEDA makes an HPA for each ScaledObject and rewrites its spec from it: bounds
    Jarvis set there would be undone, and the next tick would set them again.
    """
    refs = (hpa.metadata.owner_references if hpa.metadata else None) or []
    owner = next((ref for ref in refs if ref.controller), None)
    if owner is not None:
        hpa_name = hpa.metadata.name if hpa.metadata else ""
        raise ActuatorError(
            f"HPA {namespace}/{hpa_name} is managed by {owner.kind} {owner.name} "
            f"({owner.api_version}), which rewrites its bounds: not scaled; change them there",
            kind=ErrorKind.TERMINAL,
            code="AutoscalerManaged",
        )


def _sent(what: str, write: Callable[[], object]) -> None:
    """Make ``write``; `AnswerLostError` if it was sent and may have been made unanswered."""
    try:
        write()
    except Exception as exc:
        why = answer_lost(exc)
        if why is not None:
            raise AnswerLostError(what, why) from exc
        raise


def _rollback_target(
    api: client.ApiClient,
    deployment: client.V1Deployment,
    replicasets: list[client.V1ReplicaSet],
    wanted: str | None,
) -> client.V1ReplicaSet | None:
    """The ReplicaSet whose template to restore: by version, by revision number, or the last."""
    if wanted is not None and wanted.isdigit():
        number = revision_number(wanted)
        if number is None:  # digits no revision can have ("²", 5000 of them)
            return None
        return next((rs for rs in replicasets if revision_of(rs.metadata) == number), None)
    if wanted is None:
        candidates = rollback_candidates(api, deployment, replicasets)
        return candidates[0][1] if candidates else None
    for _, rs in newest_first(replicasets):
        if fingerprint(api, rs.spec.template if rs.spec else None) == wanted:
            return rs
    return None


def _without_hash(template: dict[str, Any] | None) -> dict[str, Any]:
    # The controller adds pod-template-hash; kubectl strips it before rolling back.
    out = dict(template or {})
    meta = dict(out.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    return {**out, "metadata": meta}


def _rv(meta: client.V1ObjectMeta | None) -> str | None:
    return meta.resource_version if meta else None


def _raw_owned(raw: Mapping[str, Any], uid: str | None) -> bool:
    """`owned_by` on an object's raw JSON, before the client parses it."""
    meta = raw.get("metadata")
    refs = (meta.get("ownerReferences") if isinstance(meta, dict) else None) or []
    return uid is not None and any(isinstance(r, dict) and r.get("uid") == uid for r in refs)


def _carries(meta: client.V1ObjectMeta | None, key: str) -> bool:
    """Whether the object (or template) was last changed by the action with ``key``."""
    return bool(meta and meta.annotations and meta.annotations.get(ACTION_KEY) == key)


def hpas_for(
    deployment: str, hpas: list[client.V2HorizontalPodAutoscaler]
) -> list[client.V2HorizontalPodAutoscaler]:
    """The HPAs whose scale target is ``deployment``."""
    found = []
    for hpa in hpas:
        ref = hpa.spec.scale_target_ref if hpa.spec else None
        if ref is not None and ref.kind == "Deployment" and ref.name == deployment:
            found.append(hpa)
    return found


def hpa_for(
    deployment: str, hpas: list[client.V2HorizontalPodAutoscaler]
) -> client.V2HorizontalPodAutoscaler | None:
    """The first of `hpas_for` (observe reports one autoscaler), or None."""
    return next(iter(hpas_for(deployment, hpas)), None)


def may_target(hpa: Unreadable, deployment: str) -> bool:
    """Whether an HPA the client refused targets ``deployment``, or may (its raw JSON does not
    say which Deployment it targets)."""
    spec = hpa.raw.get("spec")
    ref = spec.get("scaleTargetRef") if isinstance(spec, dict) else None
    name = ref.get("name") if isinstance(ref, dict) else None
    return not (isinstance(name, str) and name) or name == deployment
