"""Which events matter to a human, as alert changes: pure, one event in, changes out.

Called by the notifier for every event it reads. An alert has a fingerprint
(what it is about), a cause (what it groups by, with the provider), a
severity (what it routes by) and the words a human needs: what happened,
what Jarvis tried, and the command that resets it. A change either fires an
alert or resolves it; only a resolve by fingerprint prefix resolves several
(an operator's reset or a healthy resource resolves every escalation of
that resource).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jarvis.model import Event, EventKind
from jarvis.text import command

__all__ = ["AlertChange", "Severity", "changes_for", "resolves"]


class Severity(enum.StrEnum):
    """PagerDuty's four severities, highest first; routes match on them."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @classmethod
    def parse(cls, value: object, default: Severity) -> Severity:
        """``value`` as a severity, or ``default`` when it is not one (outside payloads)."""
        try:
            return cls(str(value).lower())
        except ValueError:
            return default

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One alert firing, or resolving (that alert, or with ``prefix`` every one it begins)."""

    fingerprint: str
    firing: bool
    at: datetime
    event_id: int
    cause: str = ""
    provider: str = ""
    resource: str = ""
    severity: Severity = Severity.WARNING
    summary: str = ""
    """Firing: what happened. Resolving: what ended it, which the incident's resolve says."""
    tried: str = ""
    reset: str = ""
    oneshot: bool = False
    """Notify once and forget (a rollback applied): nothing will resolve it."""
    prefix: bool = False
    """A resolve of every alert whose fingerprint starts with ``fingerprint`` (a resource's
    escalations); otherwise only that one alert resolves, never ``aws://vm-10``'s with
    ``aws://vm-1``'s."""


def resolves(fingerprint: str, alert: str, *, prefix: bool) -> bool:
    """Whether a resolve of ``fingerprint`` (by ``prefix`` or exactly) resolves ``alert``."""
    return alert.startswith(fingerprint) if prefix else alert == fingerprint


def changes_for(event: Event) -> list[AlertChange]:
    """The alert changes ``event`` makes; most events make none."""
    handler = _HANDLERS.get(event.kind)
    return [] if handler is None else handler(event)


def _provider(resource: str | None) -> str:
    return (resource or "").partition("://")[0] if resource and "://" in resource else ""


def _change(event: Event, fingerprint: str, *, firing: bool, **fields: Any) -> AlertChange:
    return AlertChange(
        fingerprint=fingerprint, firing=firing, at=event.ts, event_id=event.id or 0, **fields
    )


def _escalated(event: Event) -> list[AlertChange]:
    resource = event.resource or ""
    attempts = event.payload.get("attempts")
    error = str(event.payload.get("last_error") or "")
    tried = f"{event.action_kind}, {attempts} attempts" + (
        f", last error: {error}" if error else ""
    )
    cause = str(event.payload.get("cause") or "escalated")
    return [
        _change(
            event,
            f"escalated:{resource}:{event.action_kind}",
            firing=True,
            cause=cause,
            provider=_provider(resource),
            resource=resource,
            severity=Severity.CRITICAL,
            summary=f"{resource}: {event.action_kind} escalated — {event.reason or 'quarantined'}",
            tried=tried,
            reset=command("jarvis", "retries", "reset", resource),
        )
    ]


def _resolves_escalations(event: Event) -> list[AlertChange]:
    resource = event.resource
    if not resource:
        return []
    if event.kind is EventKind.RESOURCE_CHANGED:
        if event.payload.get("health") != "healthy":
            return []
        ended = f"{resource} reported healthy"
    else:
        actor = event.payload.get("actor") or "an operator"
        ended = f"{resource}: retries reset by {actor} (`jarvis retries reset`)"
    return [_change(event, f"escalated:{resource}:", firing=False, prefix=True, summary=ended)]


def _alert(event: Event) -> list[AlertChange]:
    payload = event.payload
    cause = str(payload.get("cause") or event.policy or "alert")
    resource = event.resource or ""
    fingerprint = f"alert:{cause}:{resource}"
    resolved = payload.get("resolved") is True or payload.get("state") == "resolved"
    if resolved:
        return [_change(event, fingerprint, firing=False, summary=event.reason or f"{cause} ended")]
    reset = payload.get("reset")
    return [
        _change(
            event,
            fingerprint,
            firing=True,
            cause=cause,
            provider=str(payload.get("provider") or _provider(resource)),
            resource=resource,
            severity=Severity.parse(payload.get("severity"), Severity.WARNING),
            summary=event.reason or cause,
            tried=str(payload.get("tried") or ""),
            reset=str(reset) if reset else "",
        )
    ]


def _killswitch(event: Event) -> list[AlertChange]:
    actor = event.payload.get("actor") or "unknown"
    if event.kind is EventKind.KILLSWITCH_RELEASED:
        why = f" ({event.reason})" if event.reason else ""
        ended = f"kill switch released by {actor}{why}; Jarvis applies actions again"
        return [_change(event, "killswitch", firing=False, summary=ended)]
    return [
        _change(
            event,
            "killswitch",
            firing=True,
            cause="killswitch",
            severity=Severity.WARNING,
            summary=f"kill switch engaged by {actor}: {event.reason or 'no reason given'}",
            tried="nothing: every action is blocked while it is engaged",
            reset="jarvis killswitch release",
        )
    ]


def _applied(event: Event) -> list[AlertChange]:
    if event.action_kind != "rollback":
        return []
    resource = event.resource or ""
    return [
        _change(
            event,
            f"rollback:{resource}:{event.action_id}",
            firing=True,
            cause="rollback",
            provider=_provider(resource),
            resource=resource,
            severity=Severity.INFO,
            summary=f"{resource} rolled back: {event.reason or 'rollback applied'}",
            tried="rollback (applied)",
            oneshot=True,
        )
    ]


_HANDLERS = {
    EventKind.ACTION_ESCALATED: _escalated,
    EventKind.RETRIES_RESET: _resolves_escalations,
    EventKind.RESOURCE_CHANGED: _resolves_escalations,
    EventKind.ALERT: _alert,
    EventKind.KILLSWITCH_ENGAGED: _killswitch,
    EventKind.KILLSWITCH_RELEASED: _killswitch,
    EventKind.ACTION_APPLIED: _applied,
}
