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
  max is the HPA's when one targets the Deployment; min is left unset then, since a
  SCALE sets the HPA's min (read back, every scale-up would be a floor for good).
- ``metrics``: ``pod_restarts``; ``cpu_utilization`` from the HPA's status when known.
- ``rollout`` (facet): in progress | completed | failed, as `kubectl rollout
  status` judges it, with its reason and ``crash_looping``; except that once the
  controller has called the rollout complete (``NewReplicaSetAvailable``), pods
  that stop being available do not make it "in progress" again (the heal
  policy leaves a DEGRADED rollout in progress alone).
- ``versions`` (facet): ``previous`` (the newest other version still in the
  ReplicaSet history) and ``available`` (every such version, newest first).
- ``attributes``: ``namespace``, ``deployment``, ``revision`` (int),
  ``revisions`` (``[{revision, version, images}]``, newest first), ``images``,
  ``generation``, ``observed_generation``, ``paused``,
  ``conditions`` (type -> status/reason), ``status_replicas``
  (total/updated/ready/available/unavailable), ``pods`` (total/ready/restarts/
  waiting reasons), ``autoscaler`` (HPA name/min/max/current/desired, or null)
  and ``min_replicas_owner`` ("hpa" | "deployment").

A Deployment being deleted (``deletionTimestamp`` set) is UNKNOWN instead, with
"being deleted (since TIME): not acted on" as its detail, and what it owns is
not read: no policy acts on it.

apply() handles:

- SCALE: ``spec.replicas`` of the Deployment; when an HPA targets the
  Deployment, its min/max instead (min = ``min_replicas`` or ``replicas``, max =
  ``max_replicas`` or at least min), since the HPA would undo a direct scale;
  refused (terminal, ``AutoscalingDisabled``) while the Deployment is at 0
  replicas, which deactivates the HPA (Kubernetes' maintenance mode), and
  (``AutoscalerManaged``) when another controller owns the HPA (KEDA's
  ScaledObject), which would undo the new bounds, and (``AmbiguousAutoscalers``)
  when several HPAs target it, which Kubernetes 1.26+ all stops.
- RESTART: a ``kubectl.kubernetes.io/restartedAt`` pod-template annotation, as
  ``kubectl rollout restart`` does.
- ROLLBACK: the pod template of the newest ReplicaSet of ``version`` (a
  fingerprint, or a bare revision number as in ``kubectl rollout undo
  --to-revision``; default: ``previous_version``), as ``kubectl rollout undo`` does.

RESTART and ROLLBACK refuse a paused Deployment (terminal, code ``Paused``);
every change refuses a Deployment being deleted (``deletionTimestamp`` set:
terminal, code ``Deleting``), whose controller only syncs its status.

Every change writes the action's idempotency key as a ``jarvis.io/action-key``
annotation in the same patch: on the pod template beside ``restartedAt`` for
a restart, on the Deployment's (or HPA's) metadata for a scale or rollback.
Each change first reads the object, and when it already carries the key (a
replay, or a 409 retry after a write that did land) succeeds without writing.
An object keeps only the key of its latest change: a replay that comes after
another change to the same object is not recognised. Since the key is written
with the change, recovery asks `confirm_applied` (`ConfirmsKeys`) whether an
orphaned intent's key is where its kind of change writes it, and closes the
intent as applied when it is.

After a restart or rollback, the new revision's pods are watched for up to
``verify_seconds`` (polling on the injected clock): crash-looping or
image-pull-failing new pods, or a passed progress deadline, make the outcome a
temporary ``RolloutFailed`` failure, so the retry budget can escalate a crash
a restart cannot fix. Every write carries the ``resourceVersion`` just read; a
409 Conflict re-reads and tries once more. A 429 (API Priority and Fairness
refused the request unserved) is sent again after its ``Retry-After`` (at most
2 s, waited on the clock), up to three requests in all. API errors map to
429/5xx/timeouts/connection errors -> temporary and 400/401/403/404/422 ->
terminal; a write whose answer was lost after it was sent (a read timeout, the
connection closed, a 504) may have landed and is timed out (recorded unknown), while a
read that fails before any write is an ordinary failure; an object the client
refuses to parse is terminal ``Unreadable`` (see
`jarvis.actuators.kubernetes.client`), and in observe makes only its
Deployment UNKNOWN. The RBAC this needs is in
deploy/kubernetes/base/rbac.yaml.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Self, TypeVar, cast

import anyio
from kubernetes import client

from jarvis.actuators.base import ActuatorError, PartialObserveError, Scope, run_blocking
from jarvis.actuators.kubernetes.changes import (
    SKIPPED,
    ChangeRequest,
    DeploymentChanges,
    hpa_for,
    may_target,
)
from jarvis.actuators.kubernetes.client import (
    THROTTLED_ATTEMPTS,
    TIMEOUT,
    UNREADABLE,
    Unreadable,
    build_api_client,
    throttled_wait,
    to_actuator_error,
)
from jarvis.actuators.kubernetes.observe import (
    being_deleted,
    deployment_ref,
    deployment_state,
    owned_by,
    rollout_verdict,
    selector_string,
)
from jarvis.config.kubernetes import KubernetesSettings
from jarvis.model import (
    Action,
    ActionKind,
    Clock,
    ErrorKind,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
    Restart,
    Rollback,
    Scale,
)

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
PROVIDER = "k8s"
FORBIDDEN = "Forbidden"
"""The reason of a 403: RBAC refused the call."""


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
        self._timeout = settings.request_timeout
        self._changes = DeploymentChanges(api_client, timeout=settings.request_timeout)

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

    async def observe(self, scope: Scope | None = None) -> Sequence[ResourceState]:
        """Every selected Deployment of every namespace; `ActuatorError` if any cannot be read.

        RBAC is per namespace (a Role and RoleBinding in each): a namespace that
        forbids Jarvis while others answer is the namespace's problem, not the
        cluster's. Its Deployments are left out (Jarvis cannot know them) and
        `PartialObserveError` carries the others, so the tick records the 403 and
        still acts on what it saw. Forbidden everywhere, the observe fails.

        An object the client cannot read (``Unreadable``: a field it refuses) is
        its Deployment's problem too: that Deployment is UNKNOWN with the reason
        in its detail (the Deployment itself, one of its ReplicaSets or pods, or
        the HPA targeting it), the others are observed, and `PartialObserveError`
        carries them all.
        """
        namespaces = self._settings.namespaces
        found: dict[str, list[ResourceState]] = {}
        problems: dict[str, list[str]] = {}
        errors: dict[str, ActuatorError] = {}

        async def read(namespace: str) -> None:
            try:
                found[namespace], problems[namespace] = await self._observe_namespace(
                    namespace, scope
                )
            except ActuatorError as exc:
                errors[namespace] = exc

        try:
            with anyio.fail_after(self._settings.observe_timeout):
                async with anyio.create_task_group() as group:
                    for namespace in namespaces:
                        group.start_soon(read, namespace)
        except TimeoutError as exc:
            raise ActuatorError(
                f"observing Kubernetes took longer than {self._settings.observe_timeout}s",
                code=TIMEOUT,
            ) from exc
        states = sorted(
            (state for ns in namespaces for state in found.get(ns, ())), key=lambda s: str(s.ref)
        )
        forbidden_only = all(exc.code == FORBIDDEN for exc in errors.values())
        if errors and not (found and forbidden_only):
            raise next(errors[ns] for ns in namespaces if ns in errors)
        unread = [problem for ns in namespaces for problem in problems.get(ns, ())]
        if errors or unread:
            summary = "; ".join([*(str(errors[ns]) for ns in namespaces if ns in errors), *unread])
            code = FORBIDDEN if errors else UNREADABLE
            raise PartialObserveError(summary, states, kind=ErrorKind.TERMINAL, code=code)
        return states

    async def _observe_namespace(
        self, namespace: str, scope: Scope | None
    ) -> tuple[list[ResourceState], list[str]]:
        """The namespace's Deployments as states, and what could not be read, one line each."""
        (deployments, bad_deployments), (hpas, bad_hpas) = await _both(
            lambda: self._call(
                f"listing deployments in {namespace}",
                lambda: self._changes.deployments(namespace, self._settings.label_selector),
            ),
            lambda: self._call(
                f"listing HPAs in {namespace}", lambda: self._changes.hpas(namespace)
            ),
        )
        if scope is not None:
            # The list is one call; each Deployment kept costs two (its ReplicaSets, its pods).
            deployments = [d for d in deployments if scope.keeps(deployment_ref(d))]
        unknown, nameless = _unreadable(namespace, deployments, bad_deployments, bad_hpas, scope)
        # Not unreadable, so no problem to report: just nothing to act on.
        deleting = {
            deployment_ref(d): f"{why}: not acted on"
            for d in deployments
            if (why := being_deleted(d)) is not None and deployment_ref(d) not in unknown
        }
        observed = await _gather(
            [
                partial(self._observe_deployment, d, hpas)
                for d in deployments
                if deployment_ref(d) not in unknown and deployment_ref(d) not in deleting
            ]
        )
        now = self._clock.now()
        lines = [
            *nameless,
            *(why for _, why in sorted(unknown.items(), key=lambda item: str(item[0]))),
        ]
        states = [
            ResourceState(ref, Health.UNKNOWN, now, detail=why)
            for ref, why in [*unknown.items(), *deleting.items()]
        ]
        for state, why in observed:
            states.append(state)
            if why is not None:
                lines.append(why)
        return states, lines

    async def _observe_deployment(
        self, deployment: client.V1Deployment, hpas: list[client.V2HorizontalPodAutoscaler]
    ) -> tuple[ResourceState, str | None]:
        """The Deployment's state; UNKNOWN, with the reason, if what it owns cannot be read."""
        meta = deployment.metadata or client.V1ObjectMeta()
        namespace, name = meta.namespace or "", meta.name or ""
        selector = selector_string(deployment.spec.selector if deployment.spec else None)
        try:
            replicasets, pods = await _both(
                lambda: self._call(
                    f"listing replicasets of {namespace}/{name}",
                    lambda: self._changes.replicasets(namespace, selector, meta.uid),
                ),
                lambda: self._call(
                    f"listing pods of {namespace}/{name}",
                    lambda: self._changes.pods(namespace, selector),
                ),
            )
        except ActuatorError as exc:
            if exc.code != UNREADABLE:
                raise
            why = f"{namespace}/{name}: {exc}"
            return ResourceState(
                deployment_ref(deployment), Health.UNKNOWN, self._clock.now(), detail=why
            ), why
        owners = {rs.metadata.uid for rs in replicasets if rs.metadata}
        mine = [p for p in pods if any(owned_by(p.metadata, uid) for uid in owners)]
        hpa = hpa_for(name, hpas)
        state = deployment_state(
            self._api,
            deployment,
            replicasets=replicasets,
            pods=mine,
            hpa=hpa,
            now=self._clock.now(),
        )
        return state, None

    # -- apply -----------------------------------------------------------------

    async def apply(self, action: Action, key: str) -> Outcome:
        handler: Callable[[ChangeRequest], str] | None
        match action.params:
            case Scale() as scale:
                handler = partial(self._changes.scale, scale)
            case Restart():
                handler = self._changes.restart
            case Rollback(version=version):
                handler = partial(self._changes.rollback, version or None)
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
        request = ChangeRequest(namespace, name, key, self._clock.now())
        try:
            detail = await self._call(
                f"{action.kind} {action.target}",
                lambda: self._once_more_on_conflict(lambda: handler(request)),
            )
        except ActuatorError as exc:  # `AnswerLostError` among them: timed out (unknown)
            return exc.outcome()
        rolled = isinstance(action.params, Restart | Rollback)
        if rolled and not detail.startswith(SKIPPED) and self._settings.verify_seconds > 0:
            return await self._verify(namespace, name, detail)
        return Outcome.success(detail)

    async def confirm_applied(self, target: ResourceRef, kind: str, key: str) -> str | None:
        """Where ``key`` is written for a ``kind`` change (`DeploymentChanges.carrier`), or
        None: `ConfirmsKeys` for recovery. A read that fails raises `ActuatorError`."""
        namespace, _, name = target.name.partition("/")
        if target.provider != PROVIDER or kind not in self.action_kinds:
            return None
        if not name or "/" in name or namespace not in self._settings.namespaces:
            return None
        return await self._call(
            f"confirming {kind} {target}",
            lambda: self._changes.carrier(kind, namespace, name, key),
        )

    async def _verify(self, namespace: str, name: str, detail: str) -> Outcome:
        """Watch the rollout an action started until it succeeds, fails or time is up (on the
        monotonic clock: a step back of the wall clock would have the loop's apply timeout
        cut a change that was made, and leave its outcome unknown)."""
        deadline = self._clock.monotonic() + self._settings.verify_seconds
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
            if self._clock.monotonic() >= deadline:
                return Outcome.success(
                    f"{detail}; rollout still in progress after {self._settings.verify_seconds:g}s"
                )
            await self._clock.sleep(self._settings.verify_poll_seconds)

    def _rollout_verdict(self, namespace: str, name: str) -> tuple[bool, str] | None:
        deployment = self._changes.read(namespace, name)
        meta = deployment.metadata or client.V1ObjectMeta()
        selector = selector_string(deployment.spec.selector if deployment.spec else None)
        replicasets = self._changes.replicasets(namespace, selector, meta.uid)
        pods = self._changes.pods(namespace, selector)
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

    # -- plumbing --------------------------------------------------------------

    async def _call(self, what: str, func: Callable[[], T]) -> T:
        """``func`` in a worker thread, sent again after a throttle's Retry-After
        (`throttled_wait`), up to `THROTTLED_ATTEMPTS` times in all; else classified."""
        attempt = 1
        while True:
            try:
                return await run_blocking(func, self._limiter)
            except Exception as exc:  # every SDK failure is classified; none escapes raw
                wait = throttled_wait(exc)
                if wait is None or attempt >= THROTTLED_ATTEMPTS:
                    raise to_actuator_error(exc, what) from exc
            attempt += 1
            await self._clock.sleep(wait)


def _unreadable(
    namespace: str,
    deployments: list[client.V1Deployment],
    bad_deployments: list[Unreadable],
    bad_hpas: list[Unreadable],
    scope: Scope | None,
) -> tuple[dict[ResourceRef, str], list[str]]:
    """The Deployments to report UNKNOWN (why, by ref), and the refused items naming none.

    A refused Deployment is known by the name in its raw JSON; a readable one is
    unknown when an HPA that may target it was refused, since its min/max are
    the Deployment's bounds. A refused item naming no Deployment has no state
    to carry, but is still reported.
    """
    unknown: dict[ResourceRef, str] = {}
    nameless: list[str] = []
    for bad in bad_deployments:
        ref = ResourceRef(PROVIDER, f"{namespace}/{bad.name}", kind="deployment")
        if not bad.name:
            nameless.append(f"a Deployment in {namespace} cannot be read: {bad.error}")
        elif scope is None or scope.keeps(ref):
            unknown[ref] = bad.message("Deployment")
    for bad in bad_hpas:
        for deployment in deployments:
            if may_target(bad, (deployment.metadata.name if deployment.metadata else "") or ""):
                unknown.setdefault(deployment_ref(deployment), bad.message("HPA"))
    return unknown, nameless


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
