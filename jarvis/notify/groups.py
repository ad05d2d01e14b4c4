"""Alertmanager's grouping, in virtual time: routes, groups, silences, and what is due.

Pure and serialisable: the notifier feeds it alert changes and asks `due(now)`
what to send; its state is saved with the cursor in one transaction, so a
restart resumes exactly where it stopped. An alert goes to every route whose
severities and resource globs match it, and joins that route's group for its
(cause, provider): one incident per cause, so a provider outage touching 50
services notifies once, listing them. A group waits ``group_wait`` before its
first notification, sends changes at most every ``group_interval``, repeats
an unchanged unresolved incident every ``repeat_interval``, and sends one
resolve when its last alert resolves, saying how each of them ended (kept in the
saved state, so a restart between two ends forgets neither). An alert an
inhibition rule mutes (`jarvis.notify.inhibit`) is held like a silenced one
while its source fires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jarvis.model import globs
from jarvis.notify.alerts import AlertChange, Severity, resolves
from jarvis.notify.inhibit import Inhibitor
from jarvis.notify.notice import Notice

__all__ = ["Grouper", "Route", "Silence", "Timing"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Alertmanager's three intervals."""

    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class Route:
    """Which alerts reach one channel: by severity and by resource glob."""

    channel: str
    severities: frozenset[Severity]
    resources: tuple[str, ...] = ("*",)

    def matches(self, change: AlertChange) -> bool:
        # An alert about no resource (the kill switch, a stalled loop) matches "*" only.
        return change.severity in self.severities and any(
            globs.matches(change.resource, glob) for glob in self.resources
        )


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes alerts whose resource or cause matches ``match`` until ``until``."""

    id: str
    match: str
    until: datetime
    reason: str = ""

    def mutes(self, alert: dict[str, Any], now: datetime) -> bool:
        return now < self.until and (
            globs.matches(alert["resource"], self.match)
            or globs.matches(alert["cause"], self.match)
        )


@dataclass(slots=True)
class _Group:
    channel: str
    cause: str
    provider: str
    incident: str
    since: datetime
    next_flush: datetime
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[str] | None = None
    sent_at: datetime | None = None
    sequence: int = 0
    endings: dict[str, str] = field(default_factory=dict)
    """How each of its resolved alerts ended (`AlertChange.summary`), by fingerprint, in
    the order they did: its resolve says every one, not only the last. An alert that
    fires again drops its ending until it ends again."""


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """One open group, as read from outside: which channel, why, since when, how many alerts."""

    channel: str
    cause: str
    provider: str
    since: datetime
    alerts: int
    sent: bool


class Grouper:
    """Groups, silences and timers; `ingest` changes, then ask what is `due`."""

    def __init__(
        self, routes: list[Route], timing: Timing, inhibitor: Inhibitor | None = None
    ) -> None:
        self.routes = routes
        self.timing = timing
        self.inhibitor = inhibitor or Inhibitor()
        self._groups: dict[str, _Group] = {}
        self.silences: dict[str, Silence] = {}

    # -- input -----------------------------------------------------------------

    def ingest(self, change: AlertChange, now: datetime) -> None:
        if change.firing:
            self._fire(change, now)
        else:
            self._resolve(change.fingerprint, now, prefix=change.prefix, ended=change.summary)

    def _fire(self, change: AlertChange, now: datetime) -> None:
        if not change.oneshot:  # nothing resolves a one-shot: it could inhibit forever
            labels = {
                "cause": change.cause,
                "severity": change.severity.value,
                "provider": change.provider,
                "resource": change.resource,
            }
            self.inhibitor.fired(change.fingerprint, labels)
        for route in self.routes:
            if not route.matches(change):
                continue
            key = f"{route.channel}|{change.cause}|{change.provider}"
            group = self._groups.get(key)
            if group is None:
                seed = f"{change.cause}|{change.provider}|{change.event_id}|{change.at.isoformat()}"
                group = _Group(
                    channel=route.channel,
                    cause=change.cause,
                    provider=change.provider,
                    incident="jarvis-" + hashlib.sha256(seed.encode()).hexdigest()[:32],
                    since=change.at,
                    next_flush=now + self.timing.group_wait,
                )
                self._groups[key] = group
            known = group.alerts.get(change.fingerprint)
            group.endings.pop(change.fingerprint, None)
            group.alerts[change.fingerprint] = {
                "fingerprint": change.fingerprint,
                "resource": change.resource,
                "cause": change.cause,
                "severity": change.severity.value,
                "summary": change.summary,
                "tried": change.tried,
                "reset": change.reset,
                "since": (known or {}).get("since", change.at.isoformat()),
                "oneshot": change.oneshot,
                "resolved": False,
            }
            # New, back, or worse (a budget alert moving to its next stage): tell again.
            fresh = group.alerts[change.fingerprint]
            if known is None or any(
                known[k] != fresh[k] for k in ("resolved", "severity", "summary")
            ):
                self._changed(group, now)

    def _resolve(self, fingerprint: str, now: datetime, *, prefix: bool, ended: str) -> None:
        self.inhibitor.resolved(fingerprint, prefix=prefix)
        for group in self._groups.values():
            for key, alert in group.alerts.items():
                if resolves(fingerprint, key, prefix=prefix) and not alert["resolved"]:
                    alert["resolved"] = True
                    if ended:
                        group.endings.pop(key, None)  # ended again: said where it came last
                        group.endings[key] = ended
                    self._changed(group, now)

    def _changed(self, group: _Group, now: datetime) -> None:
        """A group that already notified sends its change at its next group interval."""
        if group.sent_at is not None:
            group.next_flush = min(
                group.next_flush, max(now, group.sent_at + self.timing.group_interval)
            )

    def add_silence(self, silence: Silence) -> None:
        self.silences[silence.id] = silence

    def expire_silence(self, silence_id: str) -> None:
        self.silences.pop(silence_id, None)

    # -- output ----------------------------------------------------------------

    def due(self, now: datetime) -> list[Notice]:
        """Notifications due at ``now``, oldest group first; updates the timers."""
        notices: list[Notice] = []
        # Called every notifier round, nearly always with no group and no silence:
        # an empty `sorted` or comprehension still costs a few microseconds.
        groups = sorted(self._groups.items(), key=lambda kv: kv[1].since) if self._groups else ()
        for key, group in groups:
            if group.next_flush > now:
                continue
            notice = self._flush(group, now)
            if notice is not None:
                notices.append(notice)
            only_oneshots = all(a["oneshot"] for a in group.alerts.values())
            if not group.alerts or (only_oneshots and group.sent is not None):
                del self._groups[key]
        if self.silences:
            self.silences = {k: s for k, s in self.silences.items() if s.until > now}
        return notices

    def _flush(self, group: _Group, now: datetime) -> Notice | None:
        unresolved = [a for a in group.alerts.values() if not a["resolved"]]
        firing = [
            a
            for a in unresolved
            if not self._silenced(a, now)
            and not self.inhibitor.inhibited(a["fingerprint"], {**a, "provider": group.provider})
        ]
        # What was reported resolved is forgotten; a new alert starts afresh.
        group.alerts = {a["fingerprint"]: a for a in unresolved}
        if not unresolved:
            group.next_flush = now
            if group.sent:
                return self._notice(group, "resolve", [], now)
            return None
        if not firing:
            group.next_flush = now + self.timing.group_interval
            return None
        fingerprints = sorted(f"{a['fingerprint']}|{a['severity']}|{a['summary']}" for a in firing)
        sent_at = group.sent_at
        repeat = self.timing.repeat_interval
        if fingerprints == group.sent and sent_at is not None and now - sent_at < repeat:
            group.next_flush = sent_at + repeat
            return None
        group.sent = fingerprints
        group.next_flush = now + self.timing.repeat_interval
        return self._notice(group, "trigger", firing, now)

    def _notice(
        self, group: _Group, action: str, firing: list[dict[str, Any]], now: datetime
    ) -> Notice:
        group.sequence += 1
        group.sent_at = now
        severities = [Severity(a["severity"]) for a in firing] or [Severity.INFO]
        return Notice(
            channel=group.channel,
            incident=group.incident,
            action=action,
            sequence=group.sequence,
            severity=min(severities, key=lambda s: s.rank),
            cause=group.cause,
            provider=group.provider,
            alerts=tuple(sorted(firing, key=lambda a: a["fingerprint"])),
            since=group.since,
            # Two alerts of one resource (two action kinds) end in the same words: said once.
            ended=tuple(dict.fromkeys(group.endings.values())) if action == "resolve" else (),
        )

    def _silenced(self, alert: dict[str, Any], now: datetime) -> bool:
        return any(s.mutes(alert, now) for s in self.silences.values())

    # -- persistence -----------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "groups": {
                key: {
                    "channel": g.channel,
                    "cause": g.cause,
                    "provider": g.provider,
                    "incident": g.incident,
                    "since": g.since.isoformat(),
                    "next_flush": g.next_flush.isoformat(),
                    "alerts": g.alerts,
                    "sent": g.sent,
                    "sent_at": when(g.sent_at),
                    "sequence": g.sequence,
                    "endings": g.endings,
                }
                for key, g in self._groups.items()
            },
            "inhibiting": self.inhibitor.sources,
            "silences": {
                s.id: {"match": s.match, "until": s.until.isoformat(), "reason": s.reason}
                for s in self.silences.values()
            },
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self._groups = {
            key: _Group(
                channel=g["channel"],
                cause=g["cause"],
                provider=g["provider"],
                incident=g["incident"],
                since=datetime.fromisoformat(g["since"]),
                next_flush=datetime.fromisoformat(g["next_flush"]),
                alerts=dict(g["alerts"]),
                sent=g["sent"],
                sent_at=None if g["sent_at"] is None else datetime.fromisoformat(g["sent_at"]),
                sequence=g["sequence"],
                endings=_endings(g),
            )
            for key, g in data.get("groups", {}).items()
        }
        self.inhibitor.load(data.get("inhibiting", {}).items())
        self.silences = {
            sid: Silence(
                id=sid,
                match=s["match"],
                until=datetime.fromisoformat(s["until"]),
                reason=s["reason"],
            )
            for sid, s in data.get("silences", {}).items()
        }

    @property
    def open_incidents(self) -> int:
        return len(self._groups)

    def incidents(self) -> list[OpenIncident]:
        """The open incidents, oldest first (the status page shows them)."""
        return sorted(
            (
                OpenIncident(
                    channel=g.channel,
                    cause=g.cause,
                    provider=g.provider,
                    since=g.since,
                    alerts=len(g.alerts),
                    sent=g.sent is not None,
                )
                for g in self._groups.values()
            ),
            key=lambda view: (view.since, view.channel, view.cause),
        )


def _endings(group: dict[str, Any]) -> dict[str, str]:
    """A saved group's endings: none in a state saved before resolves said their end, and
    the last one alone (its alert unknown) in a state saved while only that was kept."""
    if "endings" in group:
        return dict(group["endings"])
    return {"": group["ended"]} if group.get("ended") else {}
