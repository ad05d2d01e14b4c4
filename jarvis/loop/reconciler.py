"""One tick, end to end: observe → evaluate → plan → guard → apply → record.

The scheduler (`jarvis.loop.scheduler`) calls `Reconciler.tick()` every interval;
`jarvis tick`, `jarvis plan` and `jarvis simulate` call it directly. Decisions
live in policies, the planner, the guard, the retry ledger (`jarvis.loop.ledger`)
and recovery (`jarvis.loop.recovery`). The observe step is `jarvis.loop.observe`'s
`Observer`, the guard → apply step `jarvis.loop.gate`'s `Gate`, which applies an
allowed action as one shielded unit (`jarvis.loop.apply`); this module only
sequences them, and records every step as an event and counts every outcome
through its `Recorder` (`jarvis.loop.record`). It acts on state read in this
tick, never on an older event payload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import anyio.lowlevel
import structlog

from jarvis.actuators.base import MetricSource, Sensor
from jarvis.actuators.llm.spend import REF as LLM_USAGE_REF
from jarvis.loop import events as ev
from jarvis.loop.apply import Applier
from jarvis.loop.breakers import Breakers, provider_map
from jarvis.loop.budgets import ChangeLog
from jarvis.loop.dispatch import Dispatcher
from jarvis.loop.endpoints import EndpointConfig, EndpointWatch
from jarvis.loop.fleetcap import FleetCaps
from jarvis.loop.gate import Gate
from jarvis.loop.killswitch import FlipLog, KillSwitch
from jarvis.loop.ledger import RetryLedger
from jarvis.loop.observe import Observer, Seen, health_counts, transitions
from jarvis.loop.peers import PeerFailures
from jarvis.loop.plan import plan_actions
from jarvis.loop.record import (
    ALERTS_KEPT,
    HISTORY_EVENTS,
    HISTORY_KINDS,
    Recorder,
    history_horizon,
    reads_events,
)
from jarvis.loop.recovery import older_epoch, recover
from jarvis.loop.report import Decision, TickReport
from jarvis.loop.shutdown import Shutdown
from jarvis.loop.unknowns import OpenUnknowns
from jarvis.model import (
    Action,
    BlockReason,
    Clock,
    Event,
    EventKind,
    History,
    KillSwitchState,
    ResourceState,
    Snapshot,
    Verdict,
)
from jarvis.policies.base import Policy
from jarvis.safety import Guard, Remaining
from jarvis.safety.breakers import BreakerPolicy
from jarvis.store import EventStore, LeaseLostError, StoreError
from jarvis.store.fence import Fence, Fences, each
from jarvis.store.history import StoreHistory
from jarvis.telemetry.metrics import Metrics

__all__ = ["Decision", "Reconciler", "TickReport"]


log = structlog.get_logger("jarvis.reconciler")
#: The resource whose usage facet the unpriced-model gauges read.
LLM_USAGE = str(LLM_USAGE_REF)


class Reconciler:
    """Runs ticks. Construct through `jarvis.app.build_app`, then `await start()`."""

    def __init__(
        self,
        *,
        actuators: Sequence[Sensor],
        policies: Sequence[Policy],
        guard: Guard,
        store: EventStore,
        killswitch: KillSwitch,
        clock: Clock,
        metrics: Metrics,
        run_id: str,
        observe_timeout: float = 10.0,
        apply_timeout: float = 20.0,
        dry_run: bool = False,
        history_snapshots: int = 20,
        breakers: tuple[BreakerPolicy, BreakerPolicy] | None = None,
        sources: Sequence[MetricSource] = (),
        endpoints: EndpointConfig | None = None,
        fleet_window: timedelta | None = None,
    ) -> None:
        self.actuators = list(actuators)
        self.sources = list(sources)
        self.policies = list(policies)
        self.guard = guard
        self.store = store
        self.killswitch = killswitch
        self._flips = FlipLog()
        self.clock = clock
        self.metrics = metrics
        self.run_id = run_id
        self.dry_run = dry_run
        self.shutdown = Shutdown()
        """The one deadline every wait after `request_stop` shares (`jarvis.loop.shutdown`)."""
        self.dispatcher = Dispatcher(
            self.actuators, apply_timeout=apply_timeout, shutdown=self.shutdown
        )
        self._snapshots: deque[Snapshot] = deque(maxlen=history_snapshots)
        self._horizon = history_horizon(self.policies)
        self._reads_events = reads_events(self.policies)
        # No policy reads `History.events`: the window holds nothing.
        size = HISTORY_EVENTS if self._reads_events else 0
        self.history = StoreHistory(store, kinds=HISTORY_KINDS, size=size)
        self.ledger = RetryLedger(store, guard.retry)
        self.unknowns = OpenUnknowns(
            self.ledger,
            self.dispatcher.confirmed,
            self.dispatcher.confirms,
            patience=observe_timeout,
        )
        """Intents closed as unknown, asked about each tick while it observes
        (`jarvis.loop.unknowns`)."""
        self.observer = Observer(
            self.actuators, self.sources, self.unknowns, observe_timeout, metrics
        )
        """The tick's observe step (`jarvis.loop.observe`)."""
        self.fleet_window = fleet_window
        """With shards, the loop interval: the per-tick bound and the fleet breaker count
        every replica's intents and failures (`jarvis.loop.peers`). None: this process's."""
        self.changes = ChangeLog(guard.budgets, window=fleet_window or timedelta(0))
        self.peers = PeerFailures() if fleet_window else None
        self.recorder = Recorder(store, self.history, metrics)
        self.breakers = Breakers(
            policies=breakers,
            providers=provider_map(self.actuators),
            ledger=self.ledger,
            recorder=self.recorder,
            metrics=metrics,
        )
        self.applier = Applier(
            clock=clock,
            store=store,
            ledger=self.ledger,
            recorder=self.recorder,
            dispatcher=self.dispatcher,
            breakers=self.breakers,
            changes=self.changes,
            killswitch=self._read_killswitch,
            shutdown=self.shutdown,
            unknowns=self.unknowns,
            caps=FleetCaps(guard.bounds, guard.budgets, fleet_window) if fleet_window else None,
        )
        self.gate = Gate(
            guard=guard,
            clock=clock,
            store=store,
            ledger=self.ledger,
            recorder=self.recorder,
            breakers=self.breakers,
            changes=self.changes,
            applier=self.applier,
            killswitch=self._read_killswitch,
            held_back=self._held_back,
            fleet_window=fleet_window,
        )
        """The tick's guard → apply step (`jarvis.loop.gate`)."""
        self.endpoints = EndpointWatch(
            endpoints or EndpointConfig(), recorder=self.recorder, metrics=metrics
        )
        self._last: dict[str, ResourceState] = {}
        self._stopping = False
        self.last_tick_finished: float | None = None
        """`Clock.monotonic` when the last tick finished (the scheduler's health)."""
        self.budgets_remaining: list[Remaining] = []
        """Each disruption budget's remaining as the last tick computed it (the status page)."""
        self.leading_since: float | None = None
        """`Clock.monotonic` when this replica last took the lead (`take_lead`); None on a
        single node."""
        self.owns: Callable[[str], bool] | None = None
        """With shards (`jarvis.loop.shards`): whether a resource URI is in a shard this
        replica holds. Actuators observe only those (`Scope`); what one returns beyond
        them is dropped from the snapshot. None: every resource."""
        metrics.known_actuators([a.name for a in self.actuators] + [s.name for s in self.sources])
        metrics.known_policies(p.name for p in self.policies)

    @property
    def latest_snapshot(self) -> Snapshot | None:
        """What the last finished tick observed (for the status page); None before one."""
        return self._snapshots[-1] if self._snapshots else None

    # -- lifecycle -----------------------------------------------------------

    async def start(
        self, *, recover_orphans: bool = True, stopped: Callable[[Event], bool] | None = None
    ) -> None:
        """Load the retry ledger and history, and close intents a crash left open.

        Only the process that owns the loop closes orphans: a one-shot command beside
        a running daemon would otherwise close the daemon's intent in flight as
        ``action.unknown``. ``stopped`` limits them to stopped runs' (`take_lead`: older epochs).
        That process also reads back the unknown outcomes it goes on asking
        providers about (`jarvis.loop.unknowns`).

        The spool replays before anything is read: it may hold intents and
        ledger rows of attempts a previous process made while the database
        was away, and the ledger and the orphans are judged with them. When
        it cannot be replayed, StoreError: no loop starts on a partial ledger.
        """
        now = self.clock.now()
        await self._flush()
        if self.store.journal_pending:
            why = self.store.write_error or f"{self.store.url} does not accept writes"
            raise StoreError(
                "the spool holds intents and ledger rows the database has not taken yet "
                f"({why}); start again when they can be replayed",
                lasting=self.store.write_lasting,
            )
        await self.ledger.load()
        await self.changes.load(self.store, now)
        if self.peers is not None:
            await self.peers.start(self.store)
        if self._reads_events:
            await self.history.load(now - self._horizon)
        alerts = await self.store.events(kinds=[EventKind.ALERT], limit=ALERTS_KEPT)
        self.breakers.restore(alerts)
        self.endpoints.restore(alerts)
        self.recorder.restore_alerts(alerts)
        if recover_orphans:  # each actuator that can is asked whether its orphan was applied
            await self.unknowns.load(self.store, now)
            asked = recover(
                self.ledger,
                now,
                stopped,
                self.dispatcher.confirmed,
                patience=self.dispatcher.apply_timeout,
            )
            for closed in await asked:
                self.recorder.recovered(closed)
                if not closed.applied:
                    self.unknowns.opened(closed.intent)
        await self._flush()
        self.metrics.quarantined_resources.set(self.ledger.quarantined)

    async def load_unknowns(self) -> None:
        """Read back the unknown outcomes to ask about, as `start` does for the loop's owner.

        A one-shot command acting as the writer (`jarvis.cli.oneshot`) calls it once it
        holds the lease (PostgreSQL) or the node lock (SQLite), so its tick asks about
        them as the daemon's would: no cron of `jarvis tick` needs a daemon to confirm
        an unknown outcome. It closes no orphans.
        """
        await self.unknowns.load(self.store, self.clock.now())

    async def take_lead(self, fence: Fence) -> None:
        """Become the leader under ``fence``: reload, close the orphans of stopped runs.

        The ledger and history are re-read (the previous leader wrote them);
        intents of an older epoch are orphans, since that leader can no longer
        write (fencing). From here on every intent and ledger change is written
        under the fence, and every event names this replica and epoch.
        """
        await self.take_over(fence, lambda intent: older_epoch(intent, fence.epoch))

    async def take_over(self, fences: Fences, stopped: Callable[[Event], bool]) -> None:
        """`take_lead` for one lease or several (shards): reload; close orphans ``stopped``."""
        self.act_as(fences)
        self._last = {}
        self.leading_since = self.clock.monotonic()
        self.last_tick_finished = None  # a tick of an earlier term says nothing of this one
        await self.start(stopped=stopped)

    def act_as(self, fence: Fences | None) -> None:
        """Write intents and ledger changes only under ``fence``, and name it in every event.

        `take_lead` calls it for an elected replica; a one-shot command that
        holds the lease for its tick calls it alone (it closes no orphans).
        """
        self.store.fence = fence
        if fence is None or isinstance(fence, Fence):
            self.recorder.identity = (
                None if fence is None else {"replica": fence.holder, "epoch": fence.epoch}
            )
        else:  # shards: the replica, and the epoch of each shard it holds
            held = each(fence)
            self.recorder.identity = {
                "replica": held[0].holder if held else "",
                "shards": {one.lease: one.epoch for one in held},
            }

    async def step_down(self) -> None:
        """Stop writing as the leader; events already buffered are written unfenced (or, past
        the shutdown deadline, left buffered for the daemon to spool)."""
        self.act_as(None)
        self.metrics.stepped_down()
        with self.shutdown.bound(5):
            try:
                await self._flush()
            except Exception as exc:  # noqa: BLE001 - the facts wait for the next flush
                log.warning("flush after stepping down failed", error=self.store.explain(exc))

    def request_stop(self, grace: float) -> None:
        """Stop taking new actions; an apply in flight, and every wait after it, gets
        ``grace`` seconds at most (`shutdown`)."""
        self._stopping = True
        self.shutdown.begin(grace)
        self.store.hurry(self.shutdown.lock_wait)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- one tick ------------------------------------------------------------

    async def tick(self, *, dry_run: bool | None = None) -> TickReport:
        dry = self.dry_run if dry_run is None else dry_run
        now = self.clock.now()
        tick_id = ev.tick_id_for(now, self.run_id)
        structlog.contextvars.bind_contextvars(tick_id=tick_id)
        try:
            return await self._tick(tick_id, now, dry)
        finally:
            structlog.contextvars.unbind_contextvars("tick_id", "resource")

    async def _tick(self, tick_id: str, now: datetime, dry: bool) -> TickReport:
        rec = self.recorder
        rec.record(ev.tick_event(EventKind.TICK_STARTED, tick_id, now, dry_run=dry))
        await self.ledger.refresh(self._flush)
        closed, seen = await self.observer.look(now, self.owns)
        for confirmed in closed:
            rec.confirmed(confirmed)
        await self.changes.refresh(self.store)
        # Read once per tick for the gauge; actions read it again right before applying.
        await self._read_killswitch()
        snapshot = self._observed(tick_id, seen)
        await self._peer_failures()
        report = TickReport(tick_id=tick_id, started_at=now, snapshot=snapshot)
        # What a restart now would load, no more: a week of a fleet's events held
        # for a 24-hour horizon was most of a month's memory growth.
        self.history.forget_before(now - self._horizon)
        history = History(
            snapshots=tuple(self._snapshots),
            events=self.history.window,
            retries=self.ledger.states,
            alerts=self.recorder.policy_alerts,
        )
        proposals = self._evaluate(snapshot, history, report)
        rec.proposed(tick_id, snapshot.taken_at, proposals)
        planned, superseded = plan_actions(proposals)
        for action, verdict in superseded:
            rec.blocked(report, self.clock.now(), action, verdict)
        if planned:
            # Proposals are durable before anything is applied; with nothing to
            # apply, the flush at the end of the tick writes them just as well.
            # A store that takes nothing is judged per action, where its intent
            # must be durable (`store_unavailable` otherwise).
            try:
                await self._flush()
            except LeaseLostError:
                raise  # the scheduler steps down; nothing more is applied
            except StoreError as exc:
                log.warning("proposals not durable", error=self.store.explain(exc))
        await self.gate.pass_through(planned, snapshot, self.observer.fleet, dry, report)
        # A deadline that passed while the last apply ran on (shielded) cuts the tick here,
        # as one that passed between two applies does: a cut tick has no tick.finished.
        await anyio.lowlevel.checkpoint_if_cancelled()
        report.asked_later = [
            intent.action_id
            for intent in self.unknowns.open
            if intent.action_id is not None and intent.tick_id == tick_id
        ]
        self._snapshots.append(snapshot)
        finished = report.finished_at = self.clock.now()
        if self.guard.budgets.budgets:
            remaining = self.guard.budgets.remaining(
                self.changes.current(finished), self.observer.fleet, finished
            )
            self.metrics.set_budgets(remaining)
            self.budgets_remaining = remaining
        rec.tick_finished(report, finished)
        await self._flush()
        self.last_tick_finished = self.clock.monotonic()
        self.metrics.last_tick_timestamp.set(finished.timestamp())
        self.metrics.quarantined_resources.set(self.ledger.quarantined)
        return report

    def _observed(self, tick_id: str, seen: Seen) -> Snapshot:
        """Record what `Observer.look` read, feed the breakers and endpoints: the snapshot."""
        resources, errors, partial, unanswered = seen
        now = self.clock.now()
        self.recorder.observe_failed(tick_id, now, errors)
        # A partial error is the resources' own (a permission on one service): the
        # provider answered, so it does not count against the provider's breaker.
        failed = {name: error for name, error in errors.items() if name not in partial}
        self.breakers.observed(tick_id, now, len(self.observer.fleet), failed)
        for event in transitions(tick_id, now, self._last, resources):
            self.recorder.remember(event)
        self.recorder.sample(tick_id, now, resources)
        self.metrics.set_resources(health_counts(resources))
        # With shards, another replica's once its shard moved: not kept at our last reading.
        ours = self.owns is None or self.owns(LLM_USAGE)
        self.metrics.llm_usage(resources.get(LLM_USAGE), ours=ours)
        self.endpoints.observed(tick_id, now, resources)
        # Recorded as observed above; decided on with endpoint health folded in.
        gone = frozenset(prefix for prefixes in partial.values() for prefix in prefixes)
        snapshot = Snapshot(
            taken_at=now, resources=resources, errors=errors, gone=gone, unanswered=unanswered
        )
        return self.endpoints.fold(snapshot)

    async def _peer_failures(self) -> None:
        """Feed the fleet breaker the failures other replicas recorded since the last tick."""
        if self.peers is None:
            return
        me = (self.recorder.identity or {}).get("replica")
        try:
            for event in await self.peers.read(self.store, me if isinstance(me, str) else None):
                self.breakers.peer_failed(event)
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the tick
            log.warning("other replicas' failures unreadable", error=self.store.explain(exc))

    def _evaluate(self, snapshot: Snapshot, history: History, report: TickReport) -> list[Action]:
        proposals: list[Action] = []
        for policy in self.policies:
            try:
                evaluation = policy.evaluate(snapshot, history, snapshot.taken_at)
            except Exception as exc:  # noqa: BLE001 - one policy failing must not stop the others
                self.recorder.policy_failed(report, policy.name, exc)
                continue
            proposals.extend(evaluation.actions)
            for note in evaluation.notes:
                self.recorder.note(report, policy.name, note)
        report.proposals = proposals
        return proposals

    # -- guard and apply -----------------------------------------------------

    def _held_back(self, action: Action) -> Verdict | None:
        """Why this replica must not act on ``action`` at all now, before the guard: None if it may.

        With shards, policies propose only for the resources this replica
        observed, but an operator's override names any URI; acting on another
        replica's resource would be a second action on it in one tick, and a
        retry-ledger row two replicas overwrite in turn, losing attempts.
        """
        if self._stopping:
            return Verdict.block(BlockReason.SHUTDOWN, "shutting down: no new actions")
        if self.owns is not None and not self.owns(str(action.target)):
            return Verdict.block(
                BlockReason.OTHER_SHARD,
                f"{action.target} is in a shard another replica holds; it acts on it",
            )
        return None

    async def _read_killswitch(self) -> KillSwitchState:
        state = await self.killswitch.read_failsafe()
        self._flips.seen(state)
        self.metrics.killswitch_engaged.set(1 if state.engaged else 0)
        return state

    async def flush(self) -> None:
        """Write buffered events and retry state (the scheduler calls it on the way out)."""
        await self._flush()

    async def _flush(self) -> None:
        await self.recorder.flush(self.clock.now())
