"""Reaching a human: the outbox consumer and its channels (Slack, PagerDuty, email).

Notifications are not actions: nothing here passes the guard, so an engaged
kill switch never silences them. `Notifier` (built by the daemon) reads the
event store by id cursor, turns the events that matter into alerts
(`alerts`), groups them into incidents like Alertmanager (`groups`), writes
what is due to the durable `notifications` outbox, and delivers it with
retries (`delivery`) through the channels (`channels`, `render`).
"""

from jarvis.notify.alerts import AlertChange, Severity, changes_for
from jarvis.notify.groups import Grouper, Route, Timing
from jarvis.notify.service import Notifier

__all__ = ["AlertChange", "Grouper", "Notifier", "Route", "Severity", "Timing", "changes_for"]
