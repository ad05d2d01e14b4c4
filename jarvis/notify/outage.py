"""What on-call is told of an event store outage: how loud, and what Jarvis does meanwhile.

The notifier (`jarvis.notify.service`) reports an event store that stays
unreachable straight to the channels (`Delivery.direct`), since the outbox
lives in that store. What is true meanwhile depends on how the loop runs, and
the message says which (`WhileAway`):

- ``UNLED``: the loop acts under a lease (`jarvis run` on PostgreSQL: one
  replica or several, with shards or not). Every intent is written under the
  leader's fence in the database's own transaction, and no lease can be
  renewed without it: the leader applies nothing, steps down within
  ``lease.renew_deadline``, and no replica ticks until the database is back.
  Nothing is observed, healed or rolled back; a spool keeps only what the
  leader saw before it stepped down, and a kill switch in Redis changes none of this.
  That is a fleet nobody tends, so it pages once ``store_unreachable_after``
  has passed (a managed database's failover ends well before).
- ``JOURNALED``: one node with a spool. Events, intents and retry budgets
  go to the fsynced spool and the node goes on acting (while it can read its
  kill switch: one it cannot read counts as engaged); a warning, raised to a
  page at ``store_unreachable_page_after``.
- ``BLOCKED``: one node without a spool. No intent can be made durable, so
  nothing is applied (`store_unavailable`): a page.

The resolve says how long the outage lasted and what was (not) done in it.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from jarvis.notify.alerts import AlertChange, Severity

__all__ = ["WhileAway", "outage_alert", "outage_severity", "while_away"]

FINGERPRINT = "store_unreachable"


class WhileAway(enum.Enum):
    """What the loop does while the event store is unreachable; see the module docstring."""

    UNLED = "unled"
    JOURNALED = "journaled"
    BLOCKED = "blocked"


def while_away(*, leased: bool, journals: bool) -> WhileAway:
    """The loop's course in an outage: a lease stops it whatever the spool; else the spool."""
    if leased:
        return WhileAway.UNLED
    return WhileAway.JOURNALED if journals else WhileAway.BLOCKED


def outage_severity(
    course: WhileAway, lasted: timedelta, *, after: timedelta, page_after: timedelta
) -> Severity | None:
    """How loud an outage of ``lasted`` is: not yet (None), a warning, or a page.

    Only an outage the node goes on acting through is a warning, until
    ``page_after``; one in which nothing is applied pages from ``after`` on.
    """
    if lasted < after:
        return None
    if course is not WhileAway.JOURNALED or lasted >= page_after:
        return Severity.CRITICAL
    return Severity.WARNING


_TRIED = {
    WhileAway.UNLED: (
        "nothing: without the database no replica can renew its lease, so none acts; "
        "nothing is observed, healed or rolled back until it answers again"
    ),
    WhileAway.JOURNALED: (
        "spooling events and retry budgets to the local file; "
        "actions go on while the kill switch can be read"
    ),
    WhileAway.BLOCKED: "nothing: no spool, so no action can be made durable and none is applied",
}
_RESET = {
    WhileAway.UNLED: "bring the database back; a replica takes the lease again by itself",
    WhileAway.JOURNALED: "bring the database back; Jarvis replays the spool by itself",
    WhileAway.BLOCKED: "bring the database back; Jarvis applies again from its next tick",
}
_MEANWHILE = {
    WhileAway.UNLED: (
        "nothing while it was away: no replica led, so nothing was observed, healed or "
        "rolled back; the replica that takes the lease observes the fleet afresh"
    ),
    WhileAway.JOURNALED: (
        "spooling its events and retry budgets while acting on; "
        "the spool replays into the database by itself"
    ),
    WhileAway.BLOCKED: (
        "nothing while it was away: no spool, so nothing was applied; "
        "it applies again from its next tick"
    ),
}


def outage_alert(
    course: WhileAway,
    since: datetime,
    *,
    severity: Severity,
    error: str = "",
    back: datetime | None = None,
) -> AlertChange:
    """The outage as an alert: its severity routes it, its words are what the notice says.

    Without ``back``, the trigger: since when, why, and what Jarvis does
    meanwhile. With ``back`` (when the store answered again), the resolve:
    how long it lasted and what was done in it.
    """
    if back is None:
        summary = f"the event store has been unreachable since {since:%Y-%m-%d %H:%M:%S} UTC" + (
            f": {error}" if error else ""
        )
        tried, reset = _TRIED[course], _RESET[course]
    else:
        minutes = (back - since).total_seconds() / 60
        summary = (
            f"the event store answers again: unreachable from {since:%Y-%m-%d %H:%M:%S} "
            f"to {back:%H:%M:%S} UTC ({minutes:.0f} min)"
        )
        tried, reset = _MEANWHILE[course], ""
    return AlertChange(
        fingerprint=FINGERPRINT,
        firing=back is None,
        at=since,
        event_id=0,
        cause=FINGERPRINT,
        severity=severity,
        summary=summary,
        tried=tried,
        reset=reset,
    )
