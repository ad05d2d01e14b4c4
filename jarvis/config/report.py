"""The ``[report]`` section: when and where the daemon delivers the daily report.

Off unless ``deliver_at`` is set. The channels are the ``[notify]`` ones
(their addresses and secrets), so a report needs ``[notify.email]`` or
``[notify.slack]`` configured for each channel it names.
"""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from jarvis.config.sections import Section, TimeZone

__all__ = ["ReportSettings"]


ReportChannel = Literal["email", "slack"]


def _both() -> list[ReportChannel]:
    return ["email", "slack"]


class ReportSettings(Section):
    deliver_at: time | None = None
    """Local time of day ("08:00") the daemon sends yesterday's report; unset: never."""
    timezone: TimeZone = "UTC"
    """The IANA zone ``deliver_at`` is read in ("Europe/Berlin")."""
    channels: list[ReportChannel] = Field(default_factory=_both, min_length=1)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
