"""Event retention: which stored events may go, deleted in bounded batches.

`SqlBackend.prune` runs `prune_events` in one transaction, committed, or rolled
back for a dry run (so ``jarvis db prune --dry-run`` counts exactly what a
real prune would delete). The daemon calls it every ``retention.interval``
(`jarvis.loop.retention`), and `jarvis db prune` on demand.

Per kind, an event is over its limit when it is older than the kind's
``max_age_days`` or not among its newest ``max_count``. Over the limit is
not enough to go; these always stay:

- anything younger than ``keep_after`` (the policies' history horizon, or the
  longest disruption-budget window: `jarvis.loop.retention`);
- the newest event of each kind (the last kill-switch flip is read back
  from its event when the Redis record is missing);
- an ``action.started`` with no outcome (an open intent: recovery closes it);
- an outcome while its ``action.started`` stays (else the intent would look
  open and be closed again as ``action.unknown``); intents go first, so a
  pair over the limit leaves together;
- the ``action.escalated`` of a resource the retry ledger still quarantines;
- a ``silence.added`` or ``silence.expired`` younger than the longest silence
  (`LONGEST_SILENCE`, a year): the silence may still be in force, and
  ``jarvis silence list|expire`` and a rebuilt notifier read it from them.
  Payloads are not queried, so one that ended early stays its year too; an
  operator makes a few a week.

Each kind deletes at most ``batch`` rows per run, oldest first, by the
``(kind, id)`` index, so one run stays short and the next one continues.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from jarvis.config.sections import RetentionSettings
from jarvis.model import LONGEST_SILENCE, EventKind
from jarvis.store.backend import OUTCOME_KINDS
from jarvis.store.tables import events, retry_state

__all__ = ["OUTCOME_KINDS", "prune_events"]


_OUTCOMES = [kind.value for kind in OUTCOME_KINDS]
_STARTED = EventKind.ACTION_STARTED.value
_SILENCES = {EventKind.SILENCE_ADDED.value, EventKind.SILENCE_EXPIRED.value}


async def prune_events(
    connection: AsyncConnection,
    retention: RetentionSettings,
    *,
    now: datetime,
    keep_after: datetime,
) -> dict[str, int]:
    """Delete what ``retention`` lets go on ``connection``; return rows deleted per kind."""
    stored = (await connection.execute(select(events.c.kind).distinct())).scalars().all()
    # Intents first: an outcome may go only once its intent has gone.
    order = sorted(stored, key=lambda kind: (kind != _STARTED, kind))
    deleted: dict[str, int] = {}
    for kind in order:
        max_age_days, max_count = retention.limits(kind)
        newest = select(func.max(events.c.id)).where(events.c.kind == kind).scalar_subquery()
        over = await _over_limit(connection, kind, now - timedelta(days=max_age_days), max_count)
        conditions = [
            events.c.kind == kind,
            events.c.ts < keep_after,
            over,
            events.c.id < newest,
            *_still_needed(kind, now),
        ]
        doomed = select(events.c.id).where(*conditions).order_by(events.c.id).limit(retention.batch)
        result = await connection.execute(delete(events).where(events.c.id.in_(doomed)))
        if result.rowcount:
            deleted[kind] = result.rowcount
    return deleted


async def _over_limit(
    connection: AsyncConnection, kind: str, too_old: datetime, max_count: int
) -> ColumnElement[bool]:
    """Older than ``too_old``, or not among the kind's newest ``max_count`` rows."""
    cutoff = (
        await connection.execute(
            select(events.c.id)
            .where(events.c.kind == kind)
            .order_by(events.c.id.desc())
            .offset(max_count)
            .limit(1)
        )
    ).scalar()
    if cutoff is None:
        return events.c.ts < too_old
    return or_(events.c.ts < too_old, events.c.id <= cutoff)


def _still_needed(kind: str, now: datetime) -> list[ColumnElement[bool]]:
    """The conditions under which an event of ``kind`` is needed by nothing (module docstring)."""
    other = events.alias("other")
    same_action = other.c.action_id == events.c.action_id
    # The other half of an action is found by its action_id, never by its kind: SQLite
    # sometimes chose the (kind, id) index here, reading every intent once per outcome,
    # and a prune of a backlog held its write lock for minutes. An expression on a
    # column is one no index serves, so only the action_id index is left.
    other_kind = other.c.kind.concat("")
    if kind == _STARTED:
        return [exists().where(same_action, other_kind.in_(_OUTCOMES))]
    if kind in _OUTCOMES:
        intent = exists().where(same_action, other_kind == _STARTED)
        return [or_(events.c.action_id.is_(None), ~intent)]
    if kind == EventKind.ACTION_ESCALATED.value:
        quarantined = exists().where(
            and_(retry_state.c.resource == events.c.resource, retry_state.c.quarantined)
        )
        return [~quarantined]
    if kind in _SILENCES:
        return [events.c.ts < now - LONGEST_SILENCE]
    return []
