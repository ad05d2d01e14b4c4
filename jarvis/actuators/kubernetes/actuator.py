"""The Kubernetes actuator: Deployments observed and changed through the official client.

Built by the composition root (`jarvis.app`) with `KubernetesActuator.from_settings`
from the ``[kubernetes]`` settings section; the reconciler calls `observe()`
every tick and `apply()` for actions whose target is ``k8s://NAMESPACE/DEPLOYMENT``
(kind ``"deployment"``). The blocking client runs in worker threads behind a
capacity limiter, every request with a timeout.

observe() reads, per namespace, the Deployments matching the label selector
and the autoscaling/v2 HPAs, then per Deployment its ReplicaSets and pods (by
the Deployment's own selector, kept only when owned). `jarvis.actuators.kubernetes.observe`
turns them into a `ResourceState`:

- ``version``: the pod template's fingerprint, ``IMAGES#HASH`` (``registry/app:v2#1a2b3c4d``):
  the images plus a hash of the rest of the template, ignoring the restart
  annotation. Revision numbers are not versions: a restart makes a new revision
  of the same code and a rollback renumbers an old one; the fingerprint stays.
- ``replicas``: desired = ``spec.replicas``, running = available, pending = the rest;
  min/max are the HPA's when one targets the Deployment.
- ``metrics``: ``pod_restarts``; ``cpu_utilization`` from the HPA's status when known.
- ``attributes``: ``namespace``, ``deployment``, ``rollout`` ("in_progress" |
  "completed" | "failed", as `kubectl rollout status` judges it), ``rollout_reason``,
  ``crash_looping`` (bool), ``revision`` (int), ``previous_version`` (the newest
  other version still in the ReplicaSet history), ``versions_available`` (every
  such version, newest first), ``revisions`` (``[{revision, version, images}]``,
  newest first), ``images``, ``generation``, ``observed_generation``, ``paused``,
  ``conditions`` (type -> status/reason), ``status_replicas``
  (total/updated/ready/available/unavailable), ``pods`` (total/ready/restarts/
  waiting reasons), ``autoscaler`` (HPA name/min/max/current/desired, or null)
  and ``min_replicas_owner`` ("hpa" | "deployment").

apply() handles:

- SCALE: ``spec.replicas`` of the Deployment; when an HPA targets the
  Deployment, its min/max instead (min = ``min_replicas`` or ``replicas``, max =
  ``max_replicas`` or at least min), since the HPA would undo a direct scale.
- RESTART: a ``kubectl.kubernetes.io/restartedAt`` pod-template annotation, as
  ``kubectl rollout restart`` does.
- ROLLBACK: the pod template of the newest ReplicaSet of ``version`` (a
  fingerprint, or a bare revision number as in ``kubectl rollout undo
  --to-revision``; default: ``previous_version``), as ``kubectl rollout undo`` does.

Every change writes the action's idempotency key as a ``jarvis.io/action-key``
annotation in the same patch: on the pod template beside ``restartedAt`` for
a restart, on the Deployment's (or HPA's) metadata for a scale or rollback.
Each change first reads the object, and when it already carries the key (a
replay, or a 409 retry after a write that did land) succeeds without writing.
An object keeps only the key of its latest change: a replay that comes after
another change to the same object is not recognised.

After a restart or rollback, the new revision's pods are watched for up to
``verify_seconds`` (polling on the injected clock): crash-looping or
image-pull-failing new pods, or a passed progress deadline, make the outcome a
temporary ``RolloutFailed`` failure, so the retry budget can escalate a crash
a restart cannot fix. Every write carries the ``resourceVersion`` just read; a
409 Conflict re-reads and tries once more. API errors map to 429/5xx/timeouts
-> temporary and 400/401/403/404/422 -> terminal. The RBAC this needs is in
deploy/kubernetes/rbac.yaml.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Self, TypeVar, cast

import anyio
from kubernetes import client

from jarvis.actuators.base import ActuatorError, run_blocking
from jarvis.actuators.kubernetes.client import TIMEOUT, build_api_client, to_actuator_error, to_json
from jarvis.actuators.kubernetes.observe import (
    ACTION_KEY,
    HASH_LABEL,
    RESTARTED_AT,
    deployment_state,
    fingerprint,
    newest_first,
    owned_by,
    revision_of,
    rollback_candidates,
    rollout_verdict,
    selector_string,
)
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.model import (
    Action,
    ActionKind,
    Clock,
    ErrorKind,
    Outcome,
    ResourceState,
    Restart,
    Rollback,
    Scale,
)

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
PROVIDER = "k8s"
SKIPPED = "skipped:"


@dataclass(frozen=True, slots=True)
class _Request:
    """One action on one Deployment, with the time it was asked for."""

    namespace: str
    name: str
    key: str
    """The action's idempotency key, written as the ``jarvis.io/action-key`` annotation."""
    now: datetime


class KubernetesActuator:
    """Observes and changes the Deployments selected by `KubernetesSettings`."""

    name = "kubernetes"
    provider = PROVIDER
    action_kinds = frozenset({ActionKind.SCALE, ActionKind.RESTART, ActionKind.ROLLBACK})

    def __init__(
        self,
        settings: KubernetesSettings,
        *,
        api_client: client.ApiClient,
        clock: Clock,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self._settings = settings
        self._api = api_client
        self._clock = clock
        self._limiter = limiter or anyio.CapacityLimiter(settings.max_concurrency)
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._autoscaling = client.AutoscalingV2Api(api_client)
        self._timeout = settings.request_timeout

    @classmethod
    def from_settings(
        cls,
        section: KubernetesSettings,
        *,
        clock: Clock,
        api_client: client.ApiClient | None = None,
    ) -> Self:
        """Build from settings; ``api_client`` (tests, or a shared client) skips config loading."""
        return cls(section, api_client=api_client or build_api_client(section), clock=clock)

    async def aclose(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]  # untyped in the SDK

    # -- observe ---------------------------------------------------------------

    async def observe(self) -> Sequence[ResourceState]:
        try:
            with anyio.fail_after(self._settings.observe_timeout):
                per_namespace = await _gather(
                    [partial(self._observe_namespace, ns) for ns in self._settings.namespaces]
                )
        except TimeoutError as exc:
            raise ActuatorError(
                f"observing Kubernetes took longer than {self._settings.observe_timeout}s",
                code=TIMEOUT,
            ) from exc
        states = [state for states in per_namespace for state in states]
        return sorted(states, key=lambda s: str(s.ref))

    async def _observe_namespace(self, namespace: str) -> list[ResourceState]:
        deployments, hpas = await _both(
            lambda: self._call(
                f"listing deployments in {namespace}",
                lambda: (
                    self._apps.list_namespaced_deployment(
                        namespace,
                        label_selector=self._settings.label_selector,
                        _request_timeout=self._timeout,
                    ).items
                ),
            ),
            lambda: self._call(f"listing HPAs in {namespace}", lambda: self._hpas(namespace)),
        )
        return await _gather([partial(self._observe_deployment, d, hpas) for d in deployments])

    async def _observe_deployment(
        self, deployment: client.V1Deployment, hpas: list[client.V2HorizontalPodAutoscaler]
    ) -> ResourceState:
        meta = deployment.metadata or client.V1ObjectMeta()
        namespace, name = meta.namespace or "", meta.name or ""
        selector = selector_string(deployment.spec.selector if deployment.spec else None)
        replicasets, pods = await _both(
            lambda: self._call(
                f"listing replicasets of {namespace}/{name}",
                lambda: self._replicasets(namespace, selector, meta.uid),
            ),
            lambda: self._call(
                f"listing pods of {namespace}/{name}",
                lambda: (
                    self._core.list_namespaced_pod(
                        namespace, label_selector=selector, _request_timeout=self._timeout
                    ).items
                ),
            ),
        )
        owners = {rs.metadata.uid for rs in replicasets if rs.metadata}
        mine = [p for p in pods if any(owned_by(p.metadata, uid) for uid in owners)]
        hpa = _hpa_for(name, hpas)
        return deployment_state(
            self._api,
            deployment,
            replicasets=replicasets,
            pods=mine,
            hpa=hpa,
            now=self._clock.now(),
        )

    def _hpas(self, namespace: str) -> list[client.V2HorizontalPodAutoscaler]:
        return self._autoscaling.list_namespaced_horizontal_pod_autoscaler(
            namespace, _request_timeout=self._timeout
        ).items

    def _replicasets(
        self, namespace: str, selector: str, owner_uid: str | None
    ) -> list[client.V1ReplicaSet]:
        found = self._apps.list_namespaced_replica_set(
            namespace, label_selector=selector, _request_timeout=self._timeout
        ).items
        return [rs for rs in found if owned_by(rs.metadata, owner_uid)]

    # -- apply -----------------------------------------------------------------

    async def apply(self, action: Action, key: str) -> Outcome:
        handler: Callable[[_Request], str] | None
        match action.params:
            case Scale() as scale:
                handler = partial(self._scale, scale)
            case Restart():
                handler = self._restart
            case Rollback(version=version):
                handler = partial(self._rollback, version or None)
            case _:
                handler = None
        namespace, _, name = action.target.name.partition("/")
        if action.target.provider != PROVIDER or handler is None:
            return Outcome.failure(
                f"{self.name} cannot {action.kind} {action.target}",
                kind=ErrorKind.TERMINAL,
                code="Unsupported",
            )
        if not name or "/" in name or namespace not in self._settings.namespaces:
            return Outcome.failure(
                f"{action.target} is not a Deployment in a managed namespace "
                f"({', '.join(self._settings.namespaces)})",
                kind=ErrorKind.TERMINAL,
                code="NotManaged",
            )
        request = _Request(namespace, name, key, self._clock.now())
        try:
            detail = await self._call(
                f"{action.kind} {action.target}",
                lambda: self._once_more_on_conflict(lambda: handler(request)),
            )
        except ActuatorError as exc:
            return Outcome.timed_out(str(exc)) if exc.code == TIMEOUT else exc.outcome()
        rolled = isinstance(action.params, Restart | Rollback)
        if rolled and not detail.startswith(SKIPPED) and self._settings.verify_seconds > 0:
            return await self._verify(namespace, name, detail)
        return Outcome.success(detail)

    async def _verify(self, namespace: str, name: str, detail: str) -> Outcome:
        """Watch the rollout an action started until it succeeds, fails or time is up."""
        deadline = self._clock.now() + timedelta(seconds=self._settings.verify_seconds)
        while True:
            try:
                verdict = await self._call(
                    f"verifying the rollout of {namespace}/{name}",
                    lambda: self._rollout_verdict(namespace, name),
                )
            except ActuatorError as exc:
                # The change was made; an unreadable rollout is left to the next observe.
                return Outcome.success(f"{detail}; not verified: {exc}")
            if verdict is not None:
                ok, why = verdict
                if ok:
                    return Outcome.success(f"{detail}; {why}")
                return Outcome.failure(f"{detail}, but {why}", code="RolloutFailed")
            if self._clock.now() >= deadline:
                return Outcome.success(
                    f"{detail}; rollout still in progress after {self._settings.verify_seconds:g}s"
                )
            await self._clock.sleep(self._settings.verify_poll_seconds)

    def _rollout_verdict(self, namespace: str, name: str) -> tuple[bool, str] | None:
        deployment = self._read(namespace, name)
        meta = deployment.metadata or client.V1ObjectMeta()
        selector = selector_string(deployment.spec.selector if deployment.spec else None)
        replicasets = self._replicasets(namespace, selector, meta.uid)
        pods = self._core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=self._timeout
        ).items
        return rollout_verdict(deployment, replicasets, pods)

    @staticmethod
    def _once_more_on_conflict(op: Callable[[], str]) -> str:
        # Each op reads before it writes, so running it again is the re-read.
        try:
            return op()
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        return op()

    def _read(self, namespace: str, name: str) -> client.V1Deployment:
        return self._apps.read_namespaced_deployment(
            name, namespace, _request_timeout=self._timeout
        )

    def _scale(self, params: Scale, request: _Request) -> str:
        namespace, name, key = request.namespace, request.name, request.key
        deployment = self._read(namespace, name)
        hpa = _hpa_for(name, self._hpas(namespace))
        if hpa is not None:
            return self._scale_hpa(namespace, hpa, params, key)
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
        self._apps.patch_namespaced_deployment(
            name,
            namespace,
            {
                "metadata": {
                    "resourceVersion": _rv(deployment.metadata),
                    "annotations": {ACTION_KEY: key},
                },
                "spec": {"replicas": wanted},
            },
            _request_timeout=self._timeout,
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
        self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            hpa_name,
            namespace,
            {
                "metadata": {
                    "resourceVersion": _rv(hpa.metadata),
                    "annotations": {ACTION_KEY: key},
                },
                "spec": {"minReplicas": low, "maxReplicas": high},
            },
            _request_timeout=self._timeout,
        )
        return f"HPA {hpa_name}: min {old[0]}->{low}, max {old[1]}->{high}"

    def _restart(self, request: _Request) -> str:
        namespace, name, key = request.namespace, request.name, request.key
        deployment = self._read(namespace, name)
        template = deployment.spec.template if deployment.spec else None
        if _carries(template.metadata if template else None, key):
            return f"{SKIPPED} already restarted (key {key})"
        if deployment.spec is not None and deployment.spec.paused:
            raise ActuatorError(
                f"cannot restart paused deployment {namespace}/{name} (resume it first)",
                kind=ErrorKind.TERMINAL,
                code="Paused",
            )
        # RFC 3339 in UTC, exactly what `kubectl rollout restart` writes.
        stamp = request.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._apps.patch_namespaced_deployment(
            name,
            namespace,
            {
                "metadata": {"resourceVersion": _rv(deployment.metadata)},
                "spec": {
                    "template": {
                        "metadata": {"annotations": {RESTARTED_AT: stamp, ACTION_KEY: key}}
                    }
                },
            },
            _request_timeout=self._timeout,
        )
        return f"restarted (restartedAt={stamp}) from revision {revision_of(deployment.metadata)}"

    def _rollback(self, wanted: str | None, request: _Request) -> str:
        namespace, name, key = request.namespace, request.name, request.key
        deployment = self._read(namespace, name)
        meta = deployment.metadata or client.V1ObjectMeta()
        if _carries(meta, key):
            return f"{SKIPPED} already rolled back (key {key})"
        spec = deployment.spec
        replicasets = self._replicasets(
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
        self._apps.patch_namespaced_deployment(
            name,
            namespace,
            [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": _rv(meta)},
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "add", "path": "/metadata/annotations", "value": annotations},
            ],
            _request_timeout=self._timeout,
        )
        return f"rolled back from revision {current} to the template of revision {reached}"

    # -- plumbing --------------------------------------------------------------

    async def _call(self, what: str, func: Callable[[], T]) -> T:
        try:
            return await run_blocking(func, self._limiter)
        except Exception as exc:  # every SDK failure is classified; none escapes raw
            raise to_actuator_error(exc, what) from exc


def _rollback_target(
    api: client.ApiClient,
    deployment: client.V1Deployment,
    replicasets: list[client.V1ReplicaSet],
    wanted: str | None,
) -> client.V1ReplicaSet | None:
    """The ReplicaSet whose template to restore: by version, by revision number, or the last."""
    if wanted is not None and wanted.isdigit():
        return next((rs for rs in replicasets if revision_of(rs.metadata) == int(wanted)), None)
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


def _carries(meta: client.V1ObjectMeta | None, key: str) -> bool:
    """Whether the object (or template) was last changed by the action with ``key``."""
    return bool(meta and meta.annotations and meta.annotations.get(ACTION_KEY) == key)


def _hpa_for(
    deployment: str, hpas: list[client.V2HorizontalPodAutoscaler]
) -> client.V2HorizontalPodAutoscaler | None:
    for hpa in hpas:
        ref = hpa.spec.scale_target_ref if hpa.spec else None
        if ref is not None and ref.kind == "Deployment" and ref.name == deployment:
            return hpa
    return None


async def _gather(funcs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run coroutines concurrently; results in order, or the first ActuatorError raised.

    Errors are collected rather than left to the task group, so the caller sees
    one ActuatorError instead of an ExceptionGroup.
    """
    results: list[T | None] = [None] * len(funcs)
    errors: list[ActuatorError] = []

    async def run(index: int, func: Callable[[], Awaitable[T]]) -> None:
        try:
            results[index] = await func()
        except ActuatorError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        for index, func in enumerate(funcs):
            group.start_soon(run, index, func)
    if errors:
        raise errors[0]
    return cast(list[T], results)  # every slot is filled when nothing failed


async def _both(
    first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]
) -> tuple[A, B]:
    """Two differently typed calls at once, with `_gather`'s error handling."""
    out: list[object] = await _gather([first, second])
    return cast(A, out[0]), cast(B, out[1])
