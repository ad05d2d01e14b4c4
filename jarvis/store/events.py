"""The event store: buffered appends, one-transaction flushes with a spool, and queries.

The reconciler appends every event of a tick and stages retry-ledger changes,
then calls `flush()` once; the CLI, the admin API and policies' history read
through the query methods. Behind it sits a backend: `SqlBackend` serves
PostgreSQL (asyncpg) and SQLite (aiosqlite); `MemoryBackend` serves the
simulation. When the backend is unreachable, a flush parks its events in the
spool file instead of failing the tick; the next successful flush replays them
first, and the unique idempotency key makes any replay harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import structlog

from jarvis.config.sections import RetentionSettings
from jarvis.model import Event, EventKind, RetryState
from jarvis.store.backend import OUTCOME_KINDS, EventBackend, FlushResult, database_failure
from jarvis.store.errors import (
    LeaseLostError,
    StoreError,
    credentials_refused,
    insufficient_privilege,
    is_lasting,
    is_operational,
    refuses_writes,
    said,
)
from jarvis.store.fence import Fences
from jarvis.store.fleetcap import Cap, FleetCapError
from jarvis.store.memory import MemoryBackend
from jarvis.store.redact import Redactor, Storable
from jarvis.store.replay import replay
from jarvis.store.spool import Spool, SpoolBusyError, SpoolError
from jarvis.store.storable import safe_retry, safe_text
from jarvis.store.timeouts import STATEMENT_TIMEOUT_S

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["OUTCOME_KINDS", "EventBackend", "EventStore", "FlushResult"]

_T = TypeVar("_T")

log = structlog.get_logger("jarvis.store")


def is_intent(event: Event) -> bool:
    """An `action.started`: the permission to call a provider, which only a leader may write."""
    return event.kind is EventKind.ACTION_STARTED


class EventStore:
    """Append-only events and the retry ledger: a buffer and a spool in front of a backend."""

    def __init__(
        self,
        backend: EventBackend,
        spool: Spool | None = None,
        *,
        read_only: bool = False,
        redactor: Redactor | None = None,
    ) -> None:
        self.backend = backend
        self.read_only = read_only
        """Flushes discard what was buffered: for `jarvis plan`, which must write nothing."""
        self.redactor = redactor or Redactor()
        """Applied to everything written or spooled, and by the kill switch to each flip."""
        self._spool = spool
        self._buffer: list[Event] = []
        self._retries: dict[tuple[str, str], RetryState] = {}
        self._caps: dict[str, tuple[Cap, ...]] = {}
        """Intent idempotency key -> the caps it is written under, until written or retracted:
        whichever flush takes the intent (a webhook's, between the loop's staging and its
        own flush) checks them, and a refused intent keeps them for the loop's flush."""
        # Uncontended, taken without yielding to the event loop: every write
        # that follows yields anyway, and the loop flushes several times a tick.
        self._lock = anyio.Lock(fast_acquire=True)
        self._dead_letters = 0
        self.spool_refusals = True
        """Whether a database that answers but refuses the writes (read-only: a standby after
        a failover, ``default_transaction_read_only``; a role without the privilege; its
        credentials, refused since the process connected) is waited out in the spool, as the
        daemon does. False for a one-shot command (`jarvis.app.open_store`): it raises in one
        line and spools nothing, since its spool would wait where nothing that can write the
        database replays it."""
        self.write_error: str | None = None
        """Why the last flush did not reach the database (None when it did): for /readyz."""
        self.write_lasting = False
        """Whether that failure lasts until someone fixes something (`is_lasting`: a spool
        file refused, a database refusing this process), not until an outage ends."""
        self.fence: Fences | None = None
        """Set while this process leads (`jarvis.loop.election`): a flush holding an
        intent or a retry-ledger change is then written only under this epoch
        (`jarvis.store.fence`), and raises `LeaseLostError` when it cannot be:
        the intents and ledger changes are dropped (nothing was applied yet),
        the other events are spooled if the database is away (else they stay
        buffered for the next flush)."""

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        spool_path: Path | None = None,
        auto_migrate: bool | None = None,
        statement_timeout: float = STATEMENT_TIMEOUT_S,
        read_only: bool = False,
        redactor: Redactor | None = None,
    ) -> EventStore:
        """Open the database at `url`, checking (or, for SQLite by default, migrating) its schema.

        Raises NotMigratedError when the schema is behind and not migrated
        here, and StoreError with a one-line message when it cannot be reached.
        A PostgreSQL statement that takes longer than ``statement_timeout``
        seconds fails as an outage (the events spool). A ``read_only`` store
        reads as usual and discards what it is asked to write; it never opens
        the spool, which belongs to the daemon, and reads a SQLite file this
        process cannot write (a read-only mount) without writing beside it.
        """
        from jarvis.store.sql import SqlBackend  # noqa: PLC0415 - SQLAlchemy only when opened

        backend = await SqlBackend.connect(
            url, auto_migrate=auto_migrate, statement_timeout=statement_timeout, read_only=read_only
        )
        try:
            spool = None if read_only else await cls._open_spool(spool_path)
        except BaseException:
            await backend.aclose()
            raise
        return cls(backend, spool, read_only=read_only, redactor=redactor)

    @classmethod
    async def in_memory(
        cls,
        *,
        spool_path: Path | None = None,
        backend: MemoryBackend | None = None,
        redactor: Redactor | None = None,
    ) -> EventStore:
        """A store on a `MemoryBackend` (the simulation's), with a real spool file if given."""
        spool = await cls._open_spool(spool_path)
        return cls(backend or MemoryBackend(), spool, redactor=redactor)

    @staticmethod
    async def _open_spool(path: Path | None) -> Spool | None:
        """The spool at ``path``; None when there is none, or another process owns it.

        Without a spool, a flush the database refuses raises, and the loop
        blocks actions (`store_unavailable`) rather than apply them unrecorded.
        """
        if path is None:
            return None
        try:
            return await anyio.to_thread.run_sync(Spool, path)
        except SpoolBusyError as exc:
            log.warning("running without a spool", reason=said(exc))
            return None

    @property
    def engine(self) -> AsyncEngine:
        """The SQL engine, for the database kill switch and the migrations."""
        engine: AsyncEngine | None = getattr(self.backend, "engine", None)
        if engine is None:
            raise StoreError(f"the {self.backend.url} event store has no SQL engine")
        return engine

    def hurry(self, seconds: float) -> None:
        """Writes begun from now on wait at most ``seconds`` for another process's SQLite lock
        (`jarvis.store.engine.limit_busy_wait`): the shutdown deadline's."""
        engine: AsyncEngine | None = getattr(self.backend, "engine", None)
        if engine is not None:
            from jarvis.store.engine import limit_busy_wait  # noqa: PLC0415 - SQLAlchemy only when opened

            limit_busy_wait(engine, seconds)

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return self.backend.url

    @property
    def spooled(self) -> int:
        """Events waiting in the spool file for the database to come back."""
        return 0 if self._spool is None else self._spool.count

    @property
    def journals(self) -> bool:
        """Whether an outage is absorbed: flushes go to a spool file instead of failing."""
        return self._spool is not None

    @property
    def dead_letter_path(self) -> str | None:
        """Where unreadable spool lines are set aside."""
        return None if self._spool is None else str(self._spool.dead_path)

    @property
    def journal_pending(self) -> bool:
        """Whether anything (events or ledger rows) waits in the spool file."""
        return self._spool is not None and self._spool.pending

    def append(self, events: Iterable[Event]) -> None:
        """Buffer events for the next flush; no I/O.

        Their secrets are redacted and their text made storable as the flush
        writes them (`Storable`), so nothing reaches the database or the spool
        unredacted. A read-only store keeps nothing, so `jarvis plan` buffers
        none of the ~600 events of its one tick.
        """
        if self.read_only:
            return
        self._buffer.extend(events)

    def ledger_resource(self, resource: str) -> str:
        """``resource`` as `stage_retry` writes it: its row's key in `load_retries`.

        A name holding a known secret is stored redacted, and one holding a NUL
        or a lone surrogate made storable; the loop's ledger looks rows up by
        this form, and a reset by the name as the operator knows it finds them.
        """
        return safe_text(self.redactor.text(resource))

    def stage_retry(self, state: RetryState) -> None:
        """Buffer an upsert of one retry-ledger row; the latest per key wins (none if read-only)."""
        if self.read_only:
            return
        state = safe_retry(self.redactor.retry(state))
        self._retries[(state.resource, state.action_kind)] = state

    def stage_caps(self, intent: str, caps: Sequence[Cap]) -> None:
        """Write the buffered intent keyed ``intent`` only within ``caps`` (`.fleetcap`)."""
        self._caps[intent] = tuple(caps)

    def _uncap(self, intents: Iterable[str]) -> None:
        """Forget the caps of intents written, or dropped."""
        for key in intents:
            self._caps.pop(key, None)

    async def flush(self, *, journal: bool = True) -> FlushResult:
        """Replay the spool, then write buffered events and staged retries.

        The spool replays a chunk per transaction, each committed before the
        cursor moves past it (`jarvis.store.spool`); then the buffer and the
        staged ledger rows go in one transaction. On an operational failure
        with a spool file, the buffered events and staged rows are appended to
        the spool (fsynced), so they are durable either way; without a spool
        file (or when it cannot be written), StoreError is raised and both are
        kept in memory. ``journal=False`` asks for the database itself: the
        spool is not written, as if there were none (a kill-switch release
        must be a row before it takes effect). A programming error (an
        unencodable value) raises and keeps them.
        """
        async with self._lock:
            batch, self._buffer = self._buffer, []
            retries, self._retries = self._retries, {}
            if self.read_only:
                return FlushResult(written=0, spooled=0)
            spool = self._spool
            # The intents, in one pass over a batch that may hold 50,000 facts (no call each).
            started = EventKind.ACTION_STARTED
            keys = [e.idempotency_key for e in batch if e.kind is started]
            fence = self.fence if retries or keys else None
            # The loop flushes each intent on its own: a batch holds one capped intent at most.
            caps = [cap for key in keys for cap in self._caps.get(key, ())]
            stored = Storable(batch, self.redactor)
            replayed = 0
            try:
                if spool is not None and spool.pending:
                    replayed, dead = await replay(self.backend, spool, self._in_thread)
                    self._dead_letters += dead
                if batch or retries:
                    await self.backend.write(stored, list(retries.values()), fence, caps)
            except FleetCapError:
                self._restore(batch, retries)  # a refusal, not an outage: the caller retracts
                raise
            except Exception as exc:
                self.write_error = self.explain(exc)
                self.write_lasting = is_lasting(exc)
                refused = not self.spool_refusals and _refused(exc)
                if fence is not None and (isinstance(exc, LeaseLostError) or is_operational(exc)):
                    # A one-shot the database refuses spools no fact either (`spool_refusals`).
                    await self._keep_facts(batch, exc, journal=journal and not refused)
                    if isinstance(exc, LeaseLostError):
                        raise
                    why = self._unspooled(exc, refused=refused)
                    raise LeaseLostError(f"cannot confirm the lease: {why}") from exc
                if spool is None or not journal or not is_operational(exc) or refused:
                    self._restore(batch, retries)
                    if is_operational(exc) and not isinstance(exc, SpoolError):
                        raise self._unspooled(exc, refused=refused) from exc
                    raise
                try:
                    await self._in_thread(spool.append, stored, list(retries.values()))
                except BaseException as failed:
                    self._restore(batch, retries)
                    self.write_error = self.explain(failed)
                    self.write_lasting = is_lasting(failed)
                    raise
                return self._result(replayed, spooled=spool.count, replayed=replayed)
            except BaseException:
                # Cancelled mid-write: keep everything. If the commit did land,
                # replaying it is a no-op thanks to the idempotency keys.
                self._restore(batch, retries)
                raise
            self.write_error = None
            self.write_lasting = False
            self._uncap(keys)
            return self._result(replayed + len(batch), spooled=0, replayed=replayed)

    async def _keep_facts(self, batch: list[Event], exc: Exception, *, journal: bool) -> None:
        """A fenced flush failed: drop its decisions, keep its facts.

        A leader's intents and ledger rows are never journaled: a spooled intent
        proves no lease. Decisions taken as leader go; facts (an outcome of a
        call already made) are spooled when the database is away, as any
        flush's are: kept in memory, a stop before the next flush could write
        them (a frozen database outlasts every later flush's bound) lost them.
        """
        facts = self._facts(batch)
        spool = self._spool
        spooled = False
        if spool is not None and journal and facts and is_operational(exc):
            try:
                await self._in_thread(spool.append, Storable(facts, self.redactor), [])
                spooled = True
            except Exception as failed:  # noqa: BLE001 - kept in memory for the next flush
                log.warning("facts not spooled", error=self.explain(failed))
        if not spooled:
            self._restore(facts, {})

    async def park(self) -> int:
        """Spool what is buffered without trying the database; return how many events went.

        For what the shutdown deadline cut off (`jarvis.loop.shutdown`): the
        database did not take it in time, and the process is about to exit.
        The rules are a failed flush's: under a fence (a leader) the intents
        and ledger rows are dropped, since a spooled one proves no lease, and
        the facts are spooled; unfenced, everything is. Without a spool (or
        when it cannot be written) they are lost, and the log says how many.
        """
        async with self._lock:
            batch, self._buffer = self._buffer, []
            retries, self._retries = self._retries, {}
            if self.fence is not None:
                batch, retries = self._facts(batch), {}
            if not batch and not retries:
                return 0
            spool = self._spool
            if spool is not None:
                try:
                    await self._in_thread(
                        spool.append, Storable(batch, self.redactor), [*retries.values()]
                    )
                except Exception as failed:  # noqa: BLE001 - said below; the process is exiting
                    self.write_error = self.explain(failed)
                else:
                    return len(batch)
            log.error(
                "events lost: neither written nor spooled before the exit",
                events=len(batch),
                retry_rows=len(retries),
                reason=self.write_error or "no spool",
            )
            return 0

    def _facts(self, batch: list[Event]) -> list[Event]:
        """``batch`` without its intents, whose caps are forgotten: a leader's decisions,
        which only its fenced write may make durable."""
        self._uncap(e.idempotency_key for e in batch if is_intent(e))
        return [e for e in batch if not is_intent(e)]

    def _unspooled(self, exc: Exception, *, refused: bool) -> StoreError:
        """The one line a flush neither written nor spooled raises; a one-shot command whose
        database refused the write (`spool_refusals`) adds that they are nowhere."""
        failure = self.backend.unreachable(exc)
        return (
            StoreError(f"{failure}: its events were not recorded, nor spooled")
            if refused
            else failure
        )

    def explain(self, exc: BaseException) -> str:
        """Why something the daemon asked of the database (a flush, a read, a lease's
        statement) failed, in one printable line, for a log's ``error``: never the
        password, nor SQLAlchemy's text (its statement, bound parameters and link).

        The store's own error says itself (a spool's disk, a lost lease: not "cannot
        reach"); an outage or a refusal names the database and why
        (`EventBackend.unreachable`); any other error of the database or its driver (a
        table missing) names the database before its reason; anything else is its
        reason alone (`describe`).
        """
        failure = database_failure(self.backend, exc)
        return said(exc) if failure is None else str(failure)

    def outage(self, exc: BaseException) -> str | None:
        """`explain`'s line for a failure of the store or its database (an outage, a
        refusal, a table gone), which whoever asked logs as one warning and tries again
        later; None for anything else, a bug, which keeps its traceback."""
        failure = exc if isinstance(exc, StoreError) else database_failure(self.backend, exc)
        return None if failure is None else said(failure)

    def _result(self, written: int, *, spooled: int, replayed: int) -> FlushResult:
        dead, self._dead_letters = self._dead_letters, 0
        return FlushResult(written, spooled, replayed, dead_letters=dead)

    def _restore(self, batch: list[Event], retries: dict[tuple[str, str], RetryState]) -> None:
        """Put back what a failed flush took; anything staged since then is newer and wins."""
        self._buffer[:0] = batch
        self._retries = {**retries, **self._retries}

    def retract(self, idempotency_key: str) -> None:
        """Drop a buffered event no flush has made durable (an intent whose action is not taken)."""
        self._buffer = [e for e in self._buffer if e.idempotency_key != idempotency_key]
        self._caps.pop(idempotency_key, None)

    def unstage_retry(self, resource: str, action_kind: str) -> None:
        """Forget a staged ledger row no flush has made durable."""
        self._retries.pop((resource, action_kind), None)

    async def events(
        self,
        *,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
        resource: str | None = None,
        after_id: int | None = None,
        since: datetime | None = None,
    ) -> list[Event]:
        """Matching events, oldest first.

        With `after_id`, the first `limit` after it (for following); without, the last `limit`.
        """
        return await self.backend.events(
            limit=limit, kinds=kinds, resource=resource, after_id=after_id, since=since
        )

    async def events_by_time(
        self,
        *,
        kinds: Sequence[str] | None = None,
        resource: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Matching events with ``since <= ts <= until``, ordered by event time, then id.

        With `limit`, the newest `limit` of them (still oldest first). Unlike
        `events`, which follows ids (the order rows arrived in), this is the
        order things happened in: a spool replayed late, or a second process,
        writes rows whose ids are out of time order.
        """
        return await self.backend.events_by_time(
            kinds=kinds, resource=resource, since=since, until=until, limit=limit
        )

    async def open_intents(self) -> list[Event]:
        """`action.started` events whose action id has no outcome event yet, oldest first."""
        return await self.backend.open_intents()

    async def load_retries(self) -> dict[tuple[str, str], RetryState]:
        """The whole retry ledger, keyed by (resource, action kind)."""
        return await self.backend.load_retries()

    async def reset_retries(self, resource: str, recorded: Sequence[Event] = ()) -> int:
        """Forget a resource's retry ledger (and unflushed changes to it); return rows deleted.

        ``recorded`` (the `retries.reset` event) is written in the delete's transaction,
        never buffered or spooled: a database that refuses it (a role without INSERT on
        events, an outage) deletes nothing, and StoreError says why. Under the flush lock,
        so no flush in progress writes a staged row of the resource after the delete.
        """
        resource = self.ledger_resource(resource)
        async with self._lock:
            self._retries = {key: s for key, s in self._retries.items() if key[0] != resource}
            return await self.backend.delete_retries(resource, Storable(recorded, self.redactor))

    async def count_events(self, kinds: Sequence[str] | None = None) -> int:
        """How many events are stored, optionally only of some kinds."""
        return await self.backend.count_events(kinds)

    async def prune(
        self,
        retention: RetentionSettings,
        *,
        now: datetime,
        keep_after: datetime,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Delete events past ``retention`` but none still needed; rows per kind.

        See `jarvis.store.retention` for what always stays. With ``dry_run``
        nothing is deleted and the counts are what would have been.
        """
        return await self.backend.prune(retention, now=now, keep_after=keep_after, dry_run=dry_run)

    async def ping(self) -> None:
        """One round trip to the database; raises StoreError when it does not answer."""
        await self.backend.ping()

    async def aclose(self) -> None:
        """Release every pooled connection and the spool. Buffered events are not flushed."""
        if self._spool is not None:
            self._spool.close()
        await self.backend.aclose()

    @staticmethod
    async def _in_thread(function: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(function, *args)


def _refused(exc: BaseException) -> bool:
    """Whether the database answered and refused the write: no outage to wait out. Its
    credentials refused count (a password rotated after the command connected): as with a
    grant, only a corrected URL or server writes again."""
    return refuses_writes(exc) or insufficient_privilege(exc) or credentials_refused(exc)
