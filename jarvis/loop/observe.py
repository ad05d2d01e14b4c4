"""Observe: every actuator read at once, merged into one view of the fleet.

Called by the reconciler (`jarvis.loop.reconciler`) at the start of each tick.
Each actuator's `observe()` runs concurrently under its own timeout (those
`in_process`, reading memory only, one after another in the tick's task); one that
fails or hangs becomes an error string, never a failed tick. The metric sources
are read beside it (`read_source`) and merged into what it saw (`enrich`), and the
open unknown outcomes are asked about at the same time (`Observer.look`).
`transitions` turns what changed since the last tick into `resource.changed` events.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio

from jarvis.actuators.base import (
    ActuatorError,
    MetricReading,
    MetricSource,
    PartialObserveError,
    Scope,
    Sensor,
    in_process,
)
from jarvis.loop import events as ev
from jarvis.loop.unknowns import Confirmed, OpenUnknowns
from jarvis.model import (
    MAX_URI_BYTES,
    Event,
    Health,
    Metric,
    Replicas,
    ResourceRef,
    ResourceState,
    uri_too_long,
)
from jarvis.telemetry.metrics import Metrics

Seen = tuple[dict[str, ResourceState], dict[str, str], dict[str, tuple[str, ...]], frozenset[str]]
"""What one observe read, before it is recorded: resources by URI, errors by sensor, the
sensors whose error is partial (with the URI prefixes gone), the providers that did not
answer. A plain tuple: one is built every tick."""


async def observe_all(
    actuators: Sequence[Sensor],
    time_limit: float,
    metrics: Metrics,
    owns: Callable[[str], bool] | None = None,
) -> tuple[dict[str, ResourceState], dict[str, str], list[ResourceRef], dict[str, tuple[str, ...]]]:
    """Resources by URI (a later actuator's view of a URI wins), errors by actuator, the
    resources left out of scope, and the actuators whose error is partial.

    An actuator that raises `PartialObserveError` has an error and its resources too
    (those it could not read as UNKNOWN states, or absent). Its name is a key of the
    last mapping, so the provider's breaker can tell it from a provider that did not
    answer, with the URI prefixes it answered are not there (`Snapshot.gone`).

    With ``owns`` (shards) each actuator gets its own `Scope`, so the resources
    one that failed named out of scope are not counted; those of the others
    are what the fleet-wide bounds count besides the resources returned.
    """
    results: dict[str, Sequence[ResourceState]] = {}
    errors: dict[str, str] = {}
    others: list[ResourceRef] = []
    partial: dict[str, tuple[str, ...]] = {}

    timed_out = _observe_cut(time_limit)

    async def observe_one(actuator: Sensor) -> None:
        started = anyio.current_time()
        scope = None if owns is None else Scope(owns)
        try:
            # What `anyio.fail_after` does, without its two generator-based context
            # managers around the cancel scope: this runs per actuator per tick.
            with anyio.CancelScope(deadline=started + time_limit) as limit:
                results[actuator.name] = await actuator.observe(scope)
            if limit.cancelled_caught and anyio.current_time() >= limit.deadline:
                errors[actuator.name] = timed_out
            elif scope is not None:
                others.extend(scope.others)
        except TimeoutError:
            errors[actuator.name] = timed_out
        except PartialObserveError as exc:
            results[actuator.name] = exc.states
            errors[actuator.name] = f"{exc.code}: {exc}" if exc.code else str(exc)
            partial[actuator.name] = exc.gone
            if scope is not None:
                others.extend(scope.others)
        except ActuatorError as exc:
            errors[actuator.name] = f"{exc.code}: {exc}" if exc.code else str(exc)
        except Exception as exc:  # noqa: BLE001 - one provider failing must not stop the others
            errors[actuator.name] = f"{type(exc).__name__}: {exc}"
        finally:
            metrics.observed(actuator.name, anyio.current_time() - started)

    await _read_each(actuators, observe_one)

    return _merge(actuators, results, errors, partial), errors, others, partial


def cut_off(errors: Mapping[str, str], time_limit: float) -> list[str]:
    """The actuators and metric sources in ``errors`` whose read the loop cut at
    ``time_limit`` seconds (``loop.observe_timeout``): their provider did not answer in
    time, where the others answered with an error. A one-shot tick names them and exits 1
    (`jarvis.cli.ticks`)."""
    cut = {_observe_cut(time_limit), _metrics_cut(time_limit)}
    return [name for name, error in errors.items() if error in cut]


def _observe_cut(time_limit: float) -> str:
    return f"observe timed out after {time_limit:g}s"


def _metrics_cut(time_limit: float) -> str:
    return f"metrics read timed out after {time_limit:g}s"


def _merge(
    actuators: Sequence[Sensor],
    results: Mapping[str, Sequence[ResourceState]],
    errors: dict[str, str],
    partial: dict[str, tuple[str, ...]],
) -> dict[str, ResourceState]:
    """Resources by URI, a later actuator's view of a URI winning.

    A URI past `MAX_URI_BYTES` is left out and said as its actuator's partial
    error (its other resources were read, so no breaker counts it): every
    event and ledger row is keyed by the URI, and PostgreSQL refuses an index
    entry past 2,704 bytes, so one such name would fail every later write.
    """
    resources: dict[str, ResourceState] = {}
    for actuator in actuators:
        too_long: list[str] = []
        for state in results.get(actuator.name, ()):
            uri = state.ref.uri
            # `uri_too_long`'s own first test, before the call: this runs per resource per tick.
            if len(uri) * 4 > MAX_URI_BYTES and uri_too_long(uri):
                too_long.append(uri)
            else:
                resources[uri] = state
        if too_long:
            said = f"{len(too_long)} resource(s) left out: a URI longer than {MAX_URI_BYTES} bytes"
            said += f" ({too_long[0][:60]!r}…) cannot key an event or a retry record"
            errors[actuator.name] = "; ".join(filter(None, [errors.get(actuator.name), said]))
            partial.setdefault(actuator.name, ())
    return resources


async def _read_each(
    sensors: Sequence[Sensor], read: Callable[[Sensor], Coroutine[Any, Any, None]]
) -> None:
    """``read`` every sensor; the reads that wait on I/O overlap one another.

    Only those gain from tasks of their own: the `in_process` sensors, and the
    last of the others, are read in this task (the spawned reads go on while it
    awaits). With at most one sensor doing I/O no task is spawned at all, which
    saves about a tenth of a simulated tick.
    """
    remote = [sensor for sensor in sensors if not in_process(sensor)]
    local = [sensor for sensor in sensors if in_process(sensor)]
    if len(remote) < 2:
        for sensor in [*local, *remote]:
            await read(sensor)
        return
    async with anyio.create_task_group() as group:
        for sensor in remote[:-1]:
            group.start_soon(read, sensor)
        for sensor in [*local, remote[-1]]:
            await read(sensor)


SourceReading = tuple[MetricSource, MetricReading, str | None]
"""One metric source's read: the source, what it found (nothing when it failed or was cut),
and what to record under its name (None: nothing)."""


async def read_source(source: MetricSource, time_limit: float) -> SourceReading:
    """``source`` read within ``time_limit`` seconds (``loop.observe_timeout``).

    Each source is read beside the actuators' observe, in one task group
    (`Observer.look`), and the readings are merged once all are done (`enrich`).
    A source that fails, or answers in part, says why; never raises.
    """
    reading = MetricReading(values={})
    error = None
    try:
        with anyio.fail_after(time_limit):
            reading = await source.read()
    except TimeoutError:
        error = _metrics_cut(time_limit)
    except ActuatorError as exc:
        error = f"{exc.code}: {exc}" if exc.code else str(exc)
    except Exception as exc:  # noqa: BLE001 - a source failing must not fail the tick
        error = f"{type(exc).__name__}: {exc}"
    if reading.problems:
        error = "; ".join(reading.problems)
    return source, reading, error


def enrich(
    resources: dict[str, ResourceState],
    readings: Iterable[SourceReading],
    errors: dict[str, str],
) -> None:
    """Merge every metric source's reading into ``resources``, in place.

    For each service a source names, the metrics it supplies replace the
    provider's: a value it found is set, one it did not find is removed, so a
    policy sees it missing (and notes it) rather than deciding on a number the
    operator chose not to trust. A source that fails, or answers in part, adds
    its reason to ``errors`` under its name (recorded as ``observe.failed``).
    A live instance count (``instances``) also replaces ``replicas.running``:
    Cloud Run's Admin API reports none, only the floor it keeps warm. Without
    a reading the provider's count stays, and the source's problem is recorded.
    """
    for source, reading, error in readings:
        if error is not None:
            errors[source.name] = error
        for uri in source.services:
            state = resources.get(uri)
            if state is None:
                continue
            merged = {k: v for k, v in state.metrics.items() if k not in source.metrics}
            merged.update(reading.values.get(uri, {}))
            resources[uri] = replace(state, metrics=merged, replicas=_live(state.replicas, merged))


def _live(replicas: Replicas | None, metrics: Mapping[str, float]) -> Replicas | None:
    """``replicas`` with ``running`` from a measured instance count, when there is one."""
    count = metrics.get(Metric.INSTANCES)
    if replicas is None or count is None or count < 0:
        return replicas
    return replace(replicas, running=round(count))


def transitions(
    tick_id: str,
    now: datetime,
    last: dict[str, ResourceState],
    resources: Mapping[str, ResourceState],
) -> list[Event]:
    """`resource.changed` for each resource new or changed since ``last``, which is updated."""
    changed: list[Event] = []
    for uri, state in resources.items():
        previous = last.get(uri)
        if previous is None or not previous.same_transition(state):
            changed.append(ev.resource_changed(tick_id, now, state, previous))
        last[uri] = state
    return changed


def health_counts(resources: Mapping[str, ResourceState]) -> dict[tuple[str, str], int]:
    """Resources by (provider, health), for the resources gauge."""
    # Counted by the enum member, named once per label: `.value` is a
    # descriptor call, and this runs for every resource every tick.
    counts: dict[tuple[str, Health], int] = {}
    for state in resources.values():
        label = (state.ref.provider, state.health)
        counts[label] = counts.get(label, 0) + 1
    return {(provider, health.value): count for (provider, health), count in counts.items()}


class Observer:
    """The tick's observe step: every sensor, every metric source and the open unknowns'
    questions at once, each within ``loop.observe_timeout``; nothing is recorded here."""

    def __init__(
        self,
        actuators: Sequence[Sensor],
        sources: Sequence[MetricSource],
        unknowns: OpenUnknowns,
        time_limit: float,
        metrics: Metrics,
    ) -> None:
        self.actuators = actuators
        self.sources = sources
        self.unknowns = unknowns
        self.time_limit = time_limit
        self.metrics = metrics
        self.fleet: list[ResourceRef] = []
        """Every resource the last observe saw, before the shards were kept: what a
        disruption budget's percentage is of (its changes are counted fleet-wide)."""

    async def look(
        self, now: datetime, owns: Callable[[str], bool] | None
    ) -> tuple[list[Confirmed], Seen]:
        """The open unknowns' questions (`OpenUnknowns.ask`), the metric sources' reads
        (`read_source`) and the observe, all at once; ``owns``: the shards held (None: all).

        All only read, and each keeps to ``loop.observe_timeout``, so providers and
        sources that answer nothing cost the tick one observe timeout and leave it its
        apply timeout. The readings are merged into what the observe saw once all are
        done (`enrich`), their errors after the providers'. The reconciler records the
        proofs before the policies and the guard read the ledger they changed. Nearly
        every tick has nothing open, and the simulation no source: no task group then.
        """
        asking = self.unknowns.pending
        if not asking and not self.sources:
            return [], await self._observe(owns)
        closed: list[Confirmed] = []
        readings: list[SourceReading] = []

        async def ask() -> None:
            closed.extend(await self.unknowns.ask(now, owns))

        async def read(source: MetricSource) -> None:
            readings.append(await read_source(source, self.time_limit))

        async with anyio.create_task_group() as group:
            if asking:
                group.start_soon(ask)
            for source in self.sources:
                group.start_soon(read, source)
            seen = await self._observe(owns)
        resources, errors, _, _ = seen
        enrich(resources, readings, errors)
        return closed, seen

    async def _observe(self, owns: Callable[[str], bool] | None) -> Seen:
        resources, errors, others, partial = await observe_all(
            self.actuators, self.time_limit, self.metrics, owns
        )
        # Before the shards are kept: the fleet breaker and budgets are the fleet's,
        # including what the actuators only listed (out of this replica's scope).
        self.fleet = [state.ref for state in resources.values()] + others
        if owns is not None:
            resources = {uri: state for uri, state in resources.items() if owns(uri)}
        # The actuators' alone: a metric source lists no resources.
        unanswered = frozenset(a.provider for a in self.actuators if a.name in errors)
        return resources, errors, partial, unanswered
