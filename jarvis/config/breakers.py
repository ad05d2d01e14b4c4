"""The ``[breakers]`` section: when a provider's or the fleet's breaker opens, and for how long.

Read by the composition root (`jarvis.app`), which builds the pure policies of
`jarvis.safety.breakers` from it. The defaults hold a provider after three of
its resources (or observes) failed temporarily within five minutes, and probe
again after five quiet minutes; the fleet breaker's threshold is max(3, half
the fleet) by definition and not a setting.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from jarvis.config.sections import Section


class BreakerSettings(Section):
    enabled: bool = True
    """Off: every failure is charged to its resource's retry budget, as before."""
    provider_threshold: Annotated[int, Field(ge=1, le=10_000)] = 3
    """Distinct resources (or failed observes) of one provider failing temporarily in the window."""
    window_seconds: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    """The sliding window over which failures count, for both breakers."""
    cooldown_seconds: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    """How long an open breaker holds everything before one probe may go through."""
