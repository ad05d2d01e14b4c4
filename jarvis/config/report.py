"""The ``[report]`` section: when and where the daemon delivers the daily report.

Off unless ``deliver_at`` is set. The channels are the ``[notify]`` ones
(their addresses and secrets), so a report needs ``[notify.email]`` or
``[notify.slack]`` configured for each channel it names.
"""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from jarvis.config.sections import Section

__all__ = ["ReportSettings"]


ReportChannel = Literal["email", "slack"]


def _both() -> list[ReportChannel]:
    return ["email", "slack"]


class ReportSettings(Section):
    deliver_at: time | None = None
    """Local time of day ("08:00") the daemon sends yesterday's report; unset: never."""
    timezone: str = "UTC"
    """The IANA zone ``deliver_at`` is read in ("Europe/Berlin")."""
    channels: list[ReportChannel] = Field(default_factory=_both, min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
