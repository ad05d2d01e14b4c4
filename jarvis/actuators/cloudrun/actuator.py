"""The Cloud Run actuator: observes and changes Cloud Run services through the v2 Admin API.

Built by the composition root (`jarvis.app`) with `CloudRunActuator.from_settings`;
the reconciler calls `observe()` every tick and `apply()` for actions whose target
provider is ``cloudrun``. The `google-cloud-run` REST client is blocking, so every
call runs in a worker thread (`run_blocking`) behind the actuator's capacity
limiter. Which revisions a tick reads (not every one, every tick) is decided in
`jarvis.actuators.cloudrun.revisions`; parsing and health judgement live in
`jarvis.actuators.cloudrun.state`; building the clients and classifying their
errors in `jarvis.actuators.cloudrun.client`.

Resources: ``cloudrun://PROJECT/REGION/SERVICE``, kind "service". ``version`` is
the short name of the revision the service is meant to run: the latest created
one while traffic follows LATEST (even before, or without, it becoming ready, as
a Kubernetes Deployment's revision is), else the pinned revision with the most
traffic. ``replicas.desired`` and ``min``/``max`` are the min/max instance
counts; ``running`` is that floor too, since the Admin API reports no live
instance count: ``[metrics.cloud_monitoring]`` (`jarvis.actuators.cloudrun.monitoring`)
replaces it with Cloud Monitoring's, and supplies the metrics. Facets:

- ``rollout``: in progress | completed | failed (latest created revision
  never became ready while traffic follows LATEST)
- ``versions``: ``previous`` (newest ready revision older than ``version``, or
  None), ``available`` (ready revisions other than ``version``, newest first)
  and ``image`` (the template's, what a new revision runs)

``attributes``:

- ``serving_version``: the revision actually carrying the most traffic
- ``latest_created_revision``, ``latest_ready_revision``, ``failed_revision``
- ``traffic`` (declared) and ``traffic_statuses`` (routed, LATEST resolved): lists
  of ``{"latest", "revision", "percent", "tag"}``; ``traffic_pinned``: no LATEST target
- ``terminal_condition`` and ``conditions``: ``{"type", "state", "reason", "message"}``
- ``serving_image``
- ``min_instances``, ``max_instances``, ``autoscaler`` ("cloudrun"),
  ``min_replicas_owner`` ("service.scaling" | "template.scaling"), ``scaling_mode``
  ("automatic" | "manual": min = max = the service's manual instance count)
- ``reconciling``, ``generation``, ``observed_generation``, ``uri``

Actions: SCALE sets min (``min_replicas``, else ``replicas``) and/or max
(``max_replicas``) instance counts, or on a manually scaled service its instance
count (``replicas``, else ``min_replicas``); ROLLBACK sends 100% of traffic to
``version`` or ``previous_version``; RESTART writes a new value of the restart
annotation on the template (a new revision, same spec); DEPLOY sets the serving
container's image and routes 100% to LATEST. Updates are long-running operations,
awaited up to ``operation_timeout``; once Cloud Run accepted one, an operation still
running, or whose polls fail (429, 5xx and dropped connections are polled again), is
TIMED_OUT: the change may have landed. So is an update whose answer was lost (a read
timeout, a connection dropped after sending). Updates carry the service's ``etag`` and
the action's key (`jarvis.actuators.cloudrun.changes`). Recovery asks `confirm_applied`
about an orphaned intent: applied only when the service carries its key and has
finished reconciling that update in success (`changes.confirmation` says why
accepted is not enough).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.api_core.future.polling import DEFAULT_POLLING, POLLING_PREDICATE
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from jarvis.actuators.base import ActuatorError, PartialObserveError, Scope, run_blocking
from jarvis.actuators.cloudrun.changes import Change, NoChange, confirmation, plan_change
from jarvis.actuators.cloudrun.client import (
    Clients,
    answer_lost,
    build_clients,
    classify,
    status_name,
    with_poll_timeout,
)
from jarvis.actuators.cloudrun.revisions import RevisionReader
from jarvis.actuators.cloudrun.state import (
    ServiceView,
    first_paragraph,
    parse_service,
    resource_state,
    short_name,
)
from jarvis.config.cloudrun import CloudRunSettings
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
)

PROVIDER = "cloudrun"
T = TypeVar("T")
_DENIED = "PERMISSION_DENIED"
_POLL_ONCE = retries.Retry(predicate=lambda _exc: False)
"""Each poll is one request: a failed one is polled again on the polling schedule
(`_poll_again`), within ``operation_timeout``, not retried for 10 s by the operations
client's own default."""


def _poll_again(exc: Exception) -> bool:
    """Whether the operation is polled again: still running, or this poll failed for a
    reason that may pass (429, 5xx, a dropped connection: `classify`'s temporary ones)."""
    if POLLING_PREDICATE(exc):
        return True
    transient = isinstance(exc, gexc.GoogleAPICallError | OSError)
    return transient and classify(exc).kind is ErrorKind.TEMPORARY


def _unread(exc: Exception) -> str:
    return f"but polling it failed ({classify(exc)}); the outcome is unknown"


def _last_poll_error(timeout: TimeoutError) -> ActuatorError | None:
    """The failed poll that ran out the operation timeout, or None when the operation
    was simply still running (api_core chains its RetryError to the TimeoutError)."""
    retry_error = timeout.__context__
    cause = getattr(retry_error, "cause", None)
    if isinstance(cause, gexc.GoogleAPICallError | OSError):
        return classify(cause)
    return None


#: The IAM permissions each operation needs (``roles/run.developer`` covers them;
#: updates also need ``iam.serviceAccounts.actAs`` on the runtime service account).
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "observe": ("run.services.get", "run.revisions.list", "run.revisions.get"),
    **{
        kind.value: ("run.services.get", "run.services.update", "run.operations.get")
        for kind in (ActionKind.SCALE, ActionKind.DEPLOY)
    },
    **{
        kind.value: (
            "run.services.get",
            "run.services.update",
            "run.revisions.list",
            "run.operations.get",
        )
        for kind in (ActionKind.RESTART, ActionKind.ROLLBACK)
    },
}


class CloudRunActuator:
    """Observes the configured services and applies SCALE, RESTART, ROLLBACK and DEPLOY."""

    def __init__(
        self,
        settings: CloudRunSettings,
        *,
        clock: Clock,
        clients: Clients,
        owns_clients: bool = False,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._clients = clients
        self._owns_clients = owns_clients
        self._limiter = anyio.CapacityLimiter(settings.max_concurrency)
        self._revisions = RevisionReader(clients, timeout=settings.request_timeout)
        self._polling = (
            DEFAULT_POLLING.with_delay(
                initial=settings.poll_initial, maximum=settings.poll_maximum, multiplier=1.5
            )
            .with_timeout(settings.operation_timeout)
            .with_predicate(_poll_again)
        )

    @classmethod
    def from_settings(
        cls,
        section: CloudRunSettings,
        *,
        clock: Clock,
        clients: Clients | None = None,
    ) -> CloudRunActuator:
        """Build from the ``[cloudrun]`` section; tests pass ``clients`` aimed at a fake."""
        if clients is not None:
            return cls(section, clock=clock, clients=clients)
        return cls(section, clock=clock, clients=build_clients(section), owns_clients=True)

    @property
    def name(self) -> str:
        return PROVIDER

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset(
            {ActionKind.SCALE, ActionKind.RESTART, ActionKind.ROLLBACK, ActionKind.DEPLOY}
        )

    def ref(self, service: str) -> ResourceRef:
        return ResourceRef(PROVIDER, self._settings.resource_path(service), "service")

    # -- observe -----------------------------------------------------------------

    async def observe(self, scope: Scope | None = None) -> Sequence[ResourceState]:
        """Read every configured service in ``scope``; `ActuatorError` if any cannot be read.

        Each service is read on its own (one GET, and what `RevisionReader.for_observe`
        reads of its revisions), so a replica reads only the services of its shards.
        A permission denied on some services but not all (an IAM condition scoped
        per service) is theirs, not the provider's: they read UNKNOWN with the
        error in their detail, the others as usual, and `PartialObserveError` carries
        them all so the tick records the denial. Denied everywhere, it is a lost
        permission and the observe fails.
        """
        services = [s for s in self._settings.services if scope is None or scope.keeps(self.ref(s))]
        states: dict[str, ResourceState] = {}
        errors: dict[str, ActuatorError] = {}

        async def read_one(service: str) -> None:
            try:
                states[service] = await self._observe_one(service)
            except ActuatorError as exc:
                errors[service] = exc

        async with anyio.create_task_group() as group:
            for service in services:
                group.start_soon(read_one, service)
        summary = "; ".join(f"{name}: {exc}" for name, exc in sorted(errors.items()))
        denied = all(exc.code == _DENIED for exc in errors.values())
        if errors and denied and states:
            for service, exc in errors.items():
                states[service] = ResourceState(
                    self.ref(service), Health.UNKNOWN, self._clock.now(), detail=str(exc)
                )
            observed = [states[name] for name in services]
            raise PartialObserveError(summary, observed, kind=ErrorKind.TERMINAL, code=_DENIED)
        if errors:
            # Temporary wins: if any service may answer next tick, so may the provider.
            kinds = sorted(errors.values(), key=lambda e: e.kind is not ErrorKind.TEMPORARY)
            first = kinds[0]
            raise ActuatorError(summary, kind=first.kind, code=first.code)
        return [states[name] for name in services]

    async def _observe_one(self, service: str) -> ResourceState:
        ref = self.ref(service)
        try:
            view = await self._blocking(
                lambda: self._read_for_observe(self._full_name(service)),
                deadline=3 * self._settings.request_timeout,
            )
        except ActuatorError as exc:
            if exc.code != "NOT_FOUND":
                raise
            # One missing service must not blind Jarvis to the others.
            return ResourceState(
                ref, Health.UNKNOWN, self._clock.now(), detail="service not found", missing=True
            )
        return resource_state(
            ref, view, observed_at=self._clock.now(), scaling_level=self._settings.scaling_level
        )

    def _read_for_observe(self, name: str) -> ServiceView:
        """The service, and of its revisions what a tick needs (`RevisionReader.for_observe`)."""
        level = self._settings.scaling_level
        service = self._get_service(name)
        bare = parse_service(service, (), scaling_level=level)
        revisions = self._revisions.for_observe(name, bare, now=self._clock.now())
        return parse_service(service, revisions, scaling_level=level)

    # -- apply -------------------------------------------------------------------

    async def apply(self, action: Action, key: str) -> Outcome:
        """Apply one action; provider failures become a failed or timed-out `Outcome`."""
        if action.kind not in self.action_kinds:
            return Outcome.failure(
                f"cloudrun cannot {action.kind}", kind=ErrorKind.TERMINAL, code="UNSUPPORTED"
            )
        service = self._managed_service(action.target)
        if service is None:
            return Outcome.failure(
                f"{action.target} is not a Cloud Run service Jarvis manages",
                kind=ErrorKind.TERMINAL,
                code="NOT_MANAGED",
            )
        deadline = self._settings.operation_timeout + 6 * self._settings.request_timeout
        try:
            return await self._blocking(
                lambda: self._apply_sync(service, action, key), deadline=deadline
            )
        except ActuatorError as exc:
            if exc.code == "DEADLINE":
                return Outcome.timed_out(str(exc))
            return exc.outcome()

    async def confirm_applied(self, target: ResourceRef, kind: str, key: str) -> str | None:
        """`changes.confirmation` of the service as read now: `ConfirmsKeys` for recovery.

        One GET; a service that is gone confirms nothing, another failure raises
        `ActuatorError`.
        """
        service = self._managed_service(target)
        if service is None or kind not in self.action_kinds:
            return None
        name = self._full_name(service)
        try:
            read = await self._blocking(
                lambda: self._get_service(name), deadline=2 * self._settings.request_timeout
            )
        except ActuatorError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
        return confirmation(read, key)

    def _apply_sync(self, service: str, action: Action, key: str) -> Outcome:
        name = self._full_name(service)
        try:
            return self._update_once(name, action, key)
        except gexc.Conflict as exc:
            if status_name(exc) != "ABORTED":
                raise  # e.g. ALREADY_EXISTS: a revision name taken, the same on a re-read
            # Someone else wrote the service between our read and our write (stale
            # etag): re-read and try once more, like a Kubernetes 409. The re-read
            # finds the key if it was our own write that landed.
            return self._update_once(name, action, key)

    def _update_once(self, name: str, action: Action, key: str) -> Outcome:
        # A rollback picks a ready revision; a restart checks the pinned ones are ready.
        needs_revisions = isinstance(action.params, (Rollback, Restart))
        service = self._get_service(name)
        revisions = (
            self._revisions.listed(
                name,
                now=self._clock.now(),
                uid=service.uid,
                latest_created=short_name(service.latest_created_revision),
            )
            if needs_revisions
            else []
        )
        view = parse_service(service, revisions, scaling_level=self._settings.scaling_level)
        change = plan_change(
            action,
            service,
            view,
            scaling_level=self._settings.scaling_level,
            annotation=self._settings.restart_annotation,
            now=self._clock.now(),
            key=key,
        )
        if isinstance(change, NoChange):
            return Outcome.success(change.detail)
        if isinstance(change, ActuatorError):
            return change.outcome()
        return self._write(change)

    def _write(self, change: Change) -> Outcome:
        request = run_v2.UpdateServiceRequest(
            service=change.service, update_mask=field_mask_pb2.FieldMask(paths=list(change.paths))
        )
        try:
            operation = self._clients.services.update_service(
                request=request, timeout=self._settings.request_timeout, retry=None
            )
        except OSError as exc:  # requests' network errors
            if not answer_lost(exc):
                raise  # nothing was sent: classified like any call
            return Outcome.timed_out(
                f"{change.summary}: sent, but its answer was lost ({classify(exc)}); "
                "the outcome is unknown"
            )
        timeout = self._settings.request_timeout
        return self._await(change, with_poll_timeout(operation, self._clients, timeout))

    def _await(self, change: Change, operation: Any) -> Outcome:
        """The end of the update Cloud Run accepted as ``operation`` (an api_core
        `Operation`, untyped), or TIMED_OUT: from here on the change may land whatever
        the polls say, so a poll that cannot be read leaves the outcome unknown."""
        accepted = f"{change.summary}: accepted as operation {operation.operation.name}"
        try:
            result = operation.result(polling=self._polling, retry=_POLL_ONCE)
        except TimeoutError as exc:
            last = _last_poll_error(exc)
            if last is None:
                return Outcome.timed_out(
                    f"{change.summary}: operation {operation.operation.name} still running after "
                    f"{self._settings.operation_timeout:g}s"
                )
            return Outcome.timed_out(
                f"{accepted}, but its polls kept failing for "
                f"{self._settings.operation_timeout:g}s ({last}); the outcome is unknown"
            )
        except gexc.GoogleAPICallError as exc:
            if not isinstance(exc.response, operations_pb2.Operation):
                return Outcome.timed_out(f"{accepted}, {_unread(exc)}")
            # The operation finished with an error: accepted, and the rollout failed
            # (typically: the new revision never became ready). Another attempt may
            # succeed, so the retry budget, not this actuator, decides when to give up.
            return Outcome.failure(
                f"{change.summary}: operation failed: {first_paragraph(exc.message)}",
                kind=ErrorKind.TEMPORARY,
                code=f"OPERATION_{status_name(exc)}",
            )
        except OSError as exc:  # requests' ConnectionError and ReadTimeout: the network
            return Outcome.timed_out(f"{accepted}, {_unread(exc)}")
        ready = short_name(result.latest_ready_revision)
        return Outcome.success(f"{change.summary}; latest ready revision {ready}")

    # -- plumbing ----------------------------------------------------------------

    def _get_service(self, name: str) -> run_v2.Service:
        return self._clients.services.get_service(
            name=name, timeout=self._settings.request_timeout, retry=None
        )

    async def _blocking(self, func: Callable[[], T], *, deadline: float) -> T:
        """Run ``func`` in a worker thread; classify its failure; give up after ``deadline``."""

        def guarded() -> T:
            try:
                return func()
            except Exception as exc:
                raise classify(exc) from exc

        with anyio.move_on_after(deadline):
            return await run_blocking(guarded, self._limiter)
        raise ActuatorError(
            f"cloudrun: no answer within {deadline:g}s", kind=ErrorKind.TEMPORARY, code="DEADLINE"
        )

    def _full_name(self, service: str) -> str:
        s = self._settings
        return f"projects/{s.project}/locations/{s.region}/services/{service}"

    def _managed_service(self, target: ResourceRef) -> str | None:
        if target.provider != PROVIDER:
            return None
        project, _, rest = target.name.partition("/")
        region, _, service = rest.partition("/")
        s = self._settings
        if project == s.project and region == s.region and service in s.services:
            return service
        return None

    async def aclose(self) -> None:
        if self._owns_clients:
            self._clients.close()
