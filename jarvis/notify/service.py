"""The notifier: an outbox consumer beside the loop, never inside a tick.

The daemon runs `Notifier.run` as a task next to the scheduler. Each round
reads the events after its cursor (`jarvis.store.follow`, as `jarvis events
--follow` does), turns them into alert changes, asks the `Grouper` what is
due, and commits the new notifications with the cursor and the grouping state
in one transaction; then it delivers what is pending (`delivery`). Every
replica runs one: each saves only over the state it read, and one that finds
the other's save in between reads that state and goes on from it, so the
replicas group one history. Because it
reads the record rather than the loop's memory, it is also the watchdog: no
``tick.finished`` for ``stall_intervals`` intervals fires ``loop_stalled``,
and an event store that stays unreachable is reported straight to the
channels, since the outbox lives in that same store. Nothing is left to agree
through then, so of several replicas only the one the database last answered
as holding the fleet-wide duties reports it (`reports_outage`), saying what the
loop does meanwhile (`jarvis.notify.outage`: under a lease, nothing; on one
node with a spool, it acts on) and paging as soon as nothing is acted on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from jarvis.model import Clock, Event, EventKind
from jarvis.notify.alerts import AlertChange, Severity, changes_for
from jarvis.notify.channels import Channel
from jarvis.notify.cursor import Cursor
from jarvis.notify.delivery import Delivery
from jarvis.notify.groups import Grouper
from jarvis.notify.outage import WhileAway, outage_alert, outage_severity, while_away
from jarvis.notify.silences import silence_from
from jarvis.store import EventStore, StoreError
from jarvis.store.follow import newer
from jarvis.store.outbox import REVISION, NotificationOutbox, StaleStateError, revision_of
from jarvis.telemetry.metrics import Metrics

__all__ = ["Notifier"]

log = structlog.get_logger("jarvis.notify")

KINDS = frozenset(
    (
        EventKind.ACTION_ESCALATED,
        EventKind.RETRIES_RESET,
        EventKind.RESOURCE_CHANGED,
        EventKind.ALERT,
        EventKind.KILLSWITCH_ENGAGED,
        EventKind.KILLSWITCH_RELEASED,
        EventKind.ACTION_APPLIED,
        EventKind.TICK_FINISHED,
        EventKind.SILENCE_ADDED,
        EventKind.SILENCE_EXPIRED,
    )
)


@dataclass
class Watchdog:
    """When a tick last finished, and whether that is too long ago."""

    stall_after: timedelta
    last_tick: datetime
    seen: float
    """`Clock.monotonic` when a tick was last seen to finish (or the notifier started): what
    lateness is measured from. On the wall clock, a step forward of a day paged a stall
    at once, and a step back of an hour kept a real one quiet for that hour."""
    stalled: bool = False
    stalled_since: datetime | None = None
    """While stalled: when the last tick before the stall finished (None: not known, a
    state saved before it was kept), so the resolve can say how long none did."""


class Notifier:
    """Consumes the event store into the outbox and delivers it."""

    def __init__(
        self,
        *,
        store: EventStore,
        outbox: NotificationOutbox,
        channels: dict[str, Channel],
        grouper: Grouper,
        clock: Clock,
        metrics: Metrics,
        poll_interval: float,
        stall_after: timedelta,
        unreachable_after: timedelta,
        delivery: Delivery,
        unreachable_page_after: timedelta = timedelta(minutes=30),
        gap_grace: timedelta = timedelta(seconds=15),
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.channels = channels
        self.grouper = grouper
        self.clock = clock
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.delivery = delivery
        self.cursor = Cursor(0, gap_grace)
        self.watchdog = Watchdog(stall_after, clock.now(), clock.monotonic())
        self.unreachable_after = unreachable_after
        self.unreachable_page_after = unreachable_page_after
        self._unreachable_since: datetime | None = None
        self._unreachable_at = 0.0
        """`Clock.monotonic` when the store stopped answering: what an outage's length is
        measured from (``_unreachable_since``, the wall time, is what the notice says)."""
        self._unreachable_reported: Severity | None = None
        self.reports_outage: Callable[[], bool] = lambda: True
        """Whether this replica tells the channels of a store outage. Every replica sees
        one; `jarvis run` sets this to the fleet-wide duties' rule (`jarvis.loop.duties`),
        so the replica that held them when the database last answered tells it, once."""
        self.leased = False
        """Whether the loop acts only under a lease the database renews: `jarvis run` sets
        this on PostgreSQL, where no replica acts while the database is away, spool or
        not (`jarvis.notify.outage`); a loop without a lease acts on through its spool."""
        self.revision = 0
        """How many saves the state this notifier grouped from had seen (`Outbox.commit`)."""
        metrics.known_channels(channels)

    async def start(self) -> None:
        """Load the saved cursor and groups; on a first start, begin after the newest event."""
        state = await self.outbox.load_state()
        self.revision = revision_of(state.get(REVISION))
        if "cursor" in state:
            self.cursor.position = state["cursor"]["event_id"]
            self.grouper.load_json(state.get("groups", {}))
            watch = state.get("watchdog", {})
            self.watchdog.stalled = bool(watch.get("stalled", False))
            since = watch.get("since")
            self.watchdog.stalled_since = datetime.fromisoformat(since) if since else None
        else:
            # A notifier switched on beside an old record does not page its history.
            latest = await newer(self.store, None, limit=1)
            self.cursor.position = (latest[-1].id or 0) if latest else 0

    async def run(self) -> None:
        """Rounds forever, every ``poll_interval``; an outage is reported, never raised."""
        await self._until_started()
        while True:
            try:
                await self.round()
            except Exception:  # a notifier bug must never stop the loop beside it
                log.exception("notifier round failed; trying again next round")
            await self.clock.sleep(self.poll_interval)

    async def _until_started(self) -> None:
        while True:
            try:
                await self.start()
                return
            except StoreError as exc:
                await self._store_down(exc)
            await self.clock.sleep(self.poll_interval)

    async def round(self) -> None:
        """One consume and one delivery pass; store outages are counted toward the report."""
        try:
            await self.consume()
            await self.delivery.deliver_due(self.outbox, self.channels)
        except StoreError as exc:
            await self._store_down(exc)
            return
        await self._store_up()

    async def consume(self) -> int:
        """Read new events, group them, commit what is due with the cursor; return how many."""
        while True:
            # Every kind, not only KINDS: the cursor needs consecutive ids to see a gap.
            batch = await newer(self.store, self.cursor.position)
            now = self.clock.now()
            taken, held = self.cursor.accept(batch, self.clock.monotonic())
            for event in taken:
                self._ingest(event, now)
            if held or len(batch) < 500:
                break
        now = self.clock.now()
        self._watch(now)
        notices = self.grouper.due(now)
        rows = [
            {
                "dedup_key": n.key,
                "channel": n.channel,
                "incident": n.incident,
                "action": n.action,
                "message": n.to_json(),
            }
            for n in notices
        ]
        try:
            await self.outbox.commit(self._state(), rows, now, revision=self.revision)
        except StaleStateError:
            # The other replica's notifier saved since this one read: what this round
            # grouped is dropped, and the next round goes on from that replica's state.
            log.debug("notifier state saved by another replica; reading it again")
            await self.start()
            return 0
        self.revision += 1
        return len(rows)

    def _state(self) -> dict[str, Any]:
        since = self.watchdog.stalled_since
        return {
            REVISION: {"n": self.revision + 1},
            "cursor": {"event_id": self.cursor.position},
            "groups": self.grouper.to_json(),
            "watchdog": {
                "stalled": self.watchdog.stalled,
                "since": None if since is None else since.isoformat(),
            },
        }

    def _ingest(self, event: Event, now: datetime) -> None:
        if event.kind not in KINDS:
            return
        if event.kind is EventKind.TICK_FINISHED:
            self.watchdog.last_tick = max(self.watchdog.last_tick, event.ts)
            self.watchdog.seen = self.clock.monotonic()
            return
        if event.kind is EventKind.SILENCE_ADDED:
            self.grouper.add_silence(silence_from(event))
            return
        if event.kind is EventKind.SILENCE_EXPIRED:
            self.grouper.expire_silence(str(event.payload.get("id")))
            return
        for change in changes_for(event):
            self.grouper.ingest(change, now)

    def _watch(self, now: datetime) -> None:
        """The stall watchdog: fire when ticks stop, resolve when one finishes again."""
        watch = self.watchdog
        late = timedelta(seconds=self.clock.monotonic() - watch.seen)
        if not watch.stalled and late > watch.stall_after:
            watch.stalled, watch.stalled_since = True, watch.last_tick
            self.grouper.ingest(self._stalled_change(watch.last_tick, late), now)
        elif watch.stalled and late <= watch.stall_after:
            ended = f"ticks finish again: one finished at {watch.last_tick:%Y-%m-%d %H:%M:%S} UTC"
            if watch.stalled_since is not None:
                gap = (watch.last_tick - watch.stalled_since).total_seconds() / 60
                ended += f", after none for {gap:.0f} min"
            watch.stalled, watch.stalled_since = False, None
            change = AlertChange("loop_stalled", firing=False, at=now, event_id=0, summary=ended)
            self.grouper.ingest(change, now)

    @staticmethod
    def _stalled_change(last_tick: datetime, late: timedelta) -> AlertChange:
        return AlertChange(
            fingerprint="loop_stalled",
            firing=True,
            at=last_tick,
            event_id=0,
            cause="loop_stalled",
            severity=Severity.CRITICAL,
            summary=f"no tick has finished for {late.total_seconds():.0f} s "
            f"(last at {last_tick:%Y-%m-%d %H:%M:%S} UTC)",
            tried="nothing: the loop itself is stuck",
            reset="look at the daemon's logs and /healthz; restart it if it is hung",
        )

    @property
    def while_away(self) -> WhileAway:
        """What the loop does while the store is away, which the outage report says."""
        return while_away(leased=self.leased, journals=self.store.journals)

    async def _store_down(self, exc: StoreError) -> None:
        now = self.clock.now()
        if self._unreachable_since is None:
            self._unreachable_since = now
            self._unreachable_at = self.clock.monotonic()
            log.warning("notifier: event store unreachable", error=self.store.explain(exc))
        since = self._unreachable_since
        severity = outage_severity(
            self.while_away,
            timedelta(seconds=self.clock.monotonic() - self._unreachable_at),
            after=self.unreachable_after,
            page_after=self.unreachable_page_after,
        )
        reported = self._unreachable_reported
        if severity is None or not self.reports_outage():
            return
        if reported is None or severity.rank < reported.rank:
            self._unreachable_reported = severity
            change = outage_alert(
                self.while_away, since, severity=severity, error=self.store.explain(exc)
            )
            await self.delivery.direct(self.channels, self.grouper.routes, change, resolved=False)

    async def _store_up(self) -> None:
        reported, since = self._unreachable_reported, self._unreachable_since
        if reported is not None and since is not None:
            back = self.clock.now()
            change = outage_alert(self.while_away, since, severity=reported, back=back)
            await self.delivery.direct(self.channels, self.grouper.routes, change, resolved=True)
        self._unreachable_since = None
        self._unreachable_reported = None


def jitter_rng(seed: int | None = None) -> random.Random:
    """The delivery's source of jitter (seeded in tests)."""
    return random.Random(seed)  # noqa: S311 - jitter, not cryptography
