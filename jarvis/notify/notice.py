"""A `Notice`: one notification due on one channel, as the grouper decides and the outbox keeps.

Made by `Grouper.due`, stored as JSON in the outbox row's ``message``, read back
by the delivery loop and rendered per channel (`render`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jarvis.notify.alerts import Severity

__all__ = ["Notice"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification due on one channel; the outbox row's content."""

    channel: str
    incident: str
    """The incident's dedup key: PagerDuty's ``dedup_key``, the same for every notice of it."""
    action: str
    """``trigger`` (first, update or repeat) or ``resolve``."""
    sequence: int
    severity: Severity
    cause: str
    provider: str
    alerts: tuple[dict[str, Any], ...]
    since: datetime
    recipients: tuple[str, ...] = ()
    """Email only: the recipients an earlier attempt could not reach yet (a 4xx at RCPT
    TO), the only ones a retry sends to; empty, every configured recipient."""
    refused: tuple[str, ...] = ()
    """Email only: recipients an earlier attempt was refused for good, with the reply."""
    ended: tuple[str, ...] = ()
    """A resolve: what ended the incident, each of its alerts' resolving words in the order
    they came; empty on a trigger, and on a resolve written before resolves kept them."""

    @property
    def key(self) -> str:
        """The outbox row's unique key: a restart that recomputes this notice inserts nothing."""
        return f"{self.incident}:{self.channel}:{self.sequence}"

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "incident": self.incident,
            "action": self.action,
            "sequence": self.sequence,
            "severity": self.severity.value,
            "cause": self.cause,
            "provider": self.provider,
            "alerts": list(self.alerts),
            "since": self.since.isoformat(),
            # Only on a retry of some recipients: every other row's JSON is as it was.
            **({"recipients": list(self.recipients)} if self.recipients else {}),
            **({"refused": list(self.refused)} if self.refused else {}),
            **({"ended": list(self.ended)} if self.ended else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notice:
        return cls(
            channel=data["channel"],
            incident=data["incident"],
            action=data["action"],
            sequence=data["sequence"],
            severity=Severity(data["severity"]),
            cause=data["cause"],
            provider=data["provider"],
            alerts=tuple(data["alerts"]),
            since=datetime.fromisoformat(data["since"]),
            recipients=tuple(data.get("recipients", ())),
            refused=tuple(data.get("refused", ())),
            ended=_ended(data.get("ended", ())),
        )


def _ended(value: Any) -> tuple[str, ...]:
    """A row's ``ended``: a list, or one string in a row written while only the last
    alert's words were kept."""
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(str(words) for words in value)
