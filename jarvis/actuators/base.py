"""The `Sensor` and `Actuator` protocols: the only way Jarvis reads or changes resources.

The reconciler calls `observe()` on every sensor and actuator concurrently each
tick (with shards, passing the `Scope` of the shards this replica holds; a
sensor that only reads process memory says so with `in_process` and is read in
the tick's own task), and `apply()` on the one actuator that owns an action's
(provider, kind), found through `route_table`; at start, recovery asks that
actuator, if it `ConfirmsKeys`, whether an orphaned intent's change was made.
A `Sensor` only observes (probes, cost, usage); an `Actuator` also applies.
Neither decides; they translate between a provider's API and `jarvis.model`.
Blocking SDKs run in worker threads through `run_blocking`, behind a capacity
limiter the actuator owns; a call the loop cut off is left to its thread, which
no exit waits for (`abandonable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast, runtime_checkable

import anyio

from jarvis.model import Action, ErrorKind, Outcome, ResourceRef, ResourceState

T = TypeVar("T")


class ActuatorError(Exception):
    """A provider call failed. ``kind`` says whether retrying can help; ``unanswered``
    that a change was sent and no answer came, so it may have been made."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = ErrorKind.TEMPORARY,
        code: str | None = None,
        unanswered: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.unanswered = unanswered

    def outcome(self) -> Outcome:
        """Failed; or timed out (recorded unknown) when the change may have been made."""
        if self.unanswered:
            return Outcome.timed_out(str(self), code=self.code)
        return Outcome.failure(str(self), kind=self.kind, code=self.code)


class PartialObserveError(ActuatorError):
    """Some resources could not be read, the rest were: ``states`` holds them all.

    Raised by an observe whose failures are the resources' own (a permission
    denied on one service by an IAM condition scoped to it, or on one
    Kubernetes namespace), not the provider's. An unread resource the observer
    knows of is in ``states`` as UNKNOWN, with the error in its detail; one it
    cannot know of (in a namespace it may not list) is absent. Either way
    nothing acts on it. The reconciler records the error as a failed observe,
    as it does any other, but does not count it against the provider's
    breaker: the provider answered.
    """

    def __init__(
        self,
        message: str,
        states: Sequence[ResourceState],
        *,
        kind: ErrorKind = ErrorKind.TERMINAL,
        code: str | None = None,
        gone: Sequence[str] = (),
    ) -> None:
        super().__init__(message, kind=kind, code=code)
        self.states = states
        self.gone = tuple(gone)
        """URI prefixes the provider answered are not there (`Snapshot.gone`)."""


class Scope:
    """The resources one replica observes in full: those of the shards it holds.

    With shards (`jarvis.loop.shards`) each replica ticks only its part of the
    fleet, so the costly per-resource reads (a describe call, a metric query,
    the pods of a Deployment) are wasted on the rest. A sensor that learns a
    resource's URI before that work asks `keeps`: an owned resource is observed
    as usual, any other is only named in `others`, which the fleet-wide bounds
    count (a budget's percentage, the fleet breaker's threshold are of the whole
    fleet). A sensor that cannot tell early returns everything, and the
    reconciler keeps the owned part; the outcome is the same, only dearer.
    """

    __slots__ = ("others", "owns")

    def __init__(self, owns: Callable[[str], bool]) -> None:
        self.owns = owns
        self.others: list[ResourceRef] = []

    def keeps(self, ref: ResourceRef) -> bool:
        """Whether to observe ``ref`` in full; if not, it is counted among `others`."""
        if self.owns(str(ref)):
            return True
        self.others.append(ref)
        return False


class Sensor(Protocol):
    """Observes resources of one provider. ``provider`` is their URI scheme."""

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    async def observe(self, scope: Scope | None = None, /) -> Sequence[ResourceState]:
        """Read the current state of every managed resource (in ``scope``, if given).

        Raises ActuatorError (or any exception) when the provider cannot be
        read; the reconciler records it as `observe.failed` and goes on.
        """
        ...

    async def aclose(self) -> None:
        """Release clients and connections."""
        ...


def in_process(sensor: Sensor) -> bool:
    """Whether ``sensor`` only reads process memory (its class sets ``in_process = True``).

    The reconciler reads such a sensor in the tick's own task, not in a task of
    its own: there is no I/O for the other reads to overlap, and spawning the
    task costs more than the read. A sensor that awaits a network, a disk or a
    worker thread must not say so, or the reads that could overlap it wait.
    Its time limit still holds (at its awaits, as for any sensor).
    """
    return getattr(sensor, "in_process", False) is True


@runtime_checkable
class Actuator(Sensor, Protocol):
    """A sensor that also applies the action kinds it owns on its provider's resources."""

    @property
    def action_kinds(self) -> frozenset[str]:
        """The names of the action kinds this actuator applies (``Action.kind``)."""
        ...

    async def apply(self, action: Action, key: str) -> Outcome:
        """Apply one action and report the outcome; never raises for provider errors.

        ``key`` is the action's idempotency key (`jarvis.loop.events.idempotency_key`):
        the same for every attempt of one action id, retries inside this call
        and replays alike. Where the provider can, the actuator sends it or
        records it with the change, and answers success without changing
        anything when the change with this key was already made.
        """
        ...


@runtime_checkable
class ConfirmsKeys(Protocol):
    """An actuator that can tell, cheaply and for certain, that a change was made.

    Optional: recovery (`jarvis.loop.recovery`) asks it about an intent a
    stopped process left open, and closes the intent as applied when the
    answer proves it; anything else stays unknown. Only a provider whose own
    record ties the key to a change that was made (written with the change, or
    only after it succeeded) may implement it.
    """

    async def confirm_applied(self, target: ResourceRef, kind: str, key: str) -> str | None:
        """What proves the change with ``key`` (of ``kind``, on ``target``) was made, or None.

        None whenever it is not certain: not made, made but its key never
        recorded or since overwritten, or the resource gone. It may raise when
        the provider cannot be read; the caller takes that as not certain either.
        """
        ...


@dataclass(frozen=True, slots=True)
class MetricReading:
    """What a metric source found this tick: values by resource URI, and what it could not."""

    values: Mapping[str, Mapping[str, float]]
    """Resource URI to metric name to value; a metric with no usable answer is absent."""
    problems: Sequence[str] = ()
    """One line per query that failed or answered something unusable."""


class MetricSource(Protocol):
    """Supplies some metrics of some services, read once per tick beside the observe.

    Once both are done the reconciler merges a reading into the observed states
    (`jarvis.loop.observe.enrich`): for every service the source names, the
    metrics it supplies replace whatever the service's provider reported, and
    one it has no answer for is absent, so a policy decides nothing on it.
    """

    @property
    def name(self) -> str: ...

    @property
    def services(self) -> Collection[str]:
        """The resource URIs this source supplies metrics for."""
        ...

    @property
    def metrics(self) -> frozenset[str]:
        """The metric names (`jarvis.model.Metric`) it supplies."""
        ...

    async def read(self) -> MetricReading:
        """One batch of queries for every service; raises when the source cannot be read."""
        ...

    async def aclose(self) -> None: ...


def route_table(observers: Iterable[Sensor]) -> Mapping[tuple[str, str], Actuator]:
    """Which actuator applies each (provider, action kind): exactly one, or an error.

    Raises ValueError naming the clash when two observers share a name or two
    actuators claim the same kind on the same provider, instead of letting the
    last one silently win.
    """
    names: set[str] = set()
    routes: dict[tuple[str, str], Actuator] = {}
    for observer in observers:
        if observer.name in names:
            raise ValueError(f"two actuators are named {observer.name!r}")
        names.add(observer.name)
        if not isinstance(observer, Actuator):
            continue
        for kind in observer.action_kinds:
            key = (observer.provider, str(kind))
            if key in routes:
                raise ValueError(
                    f"{routes[key].name} and {observer.name} both apply {kind} "
                    f"on {observer.provider}://"
                )
            routes[key] = observer
    return routes


async def run_blocking(func: Callable[[], T], limiter: anyio.CapacityLimiter) -> T:
    """Run a blocking SDK call in a worker thread, within the actuator's limit.

    The thread is abandoned (not killed) when the caller is cancelled, so a
    timeout around an observe or apply returns promptly (`abandonable`).
    """
    async with limiter:
        return await abandonable(func)


async def abandonable(func: Callable[[], T]) -> T:
    """``func()`` in a daemon thread of its own; a cancelled caller returns at once and
    leaves it running, its answer dropped.

    Not anyio's worker threads: the interpreter joins those at exit, so a provider that
    took the connection and never answered held `jarvis tick`, an override, or a daemon
    stopped by SIGTERM until the SDK's own timeout ended the call (boto3 retrying a read
    timeout: minutes), long after the loop had cut it and recorded it timed out. Nothing
    reads an abandoned call's answer, and a change it may have made is recorded unknown
    for a later tick to ask about (`jarvis.loop.unknowns`), so the process may end under
    it. The store's threads are not these: what they write is awaited before exit.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()  # structlog's bound tick id, as anyio passes it

    def settle(result: T | None, error: BaseException | None) -> None:
        if answer.done():  # the caller was cancelled: abandoned
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(cast("T", result))

    def call() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = context.run(func)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task as is
            error = exc
        # RuntimeError: the event loop has closed, and nobody waits for this answer.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=call, name="jarvis provider call", daemon=True).start()
    return await answer
