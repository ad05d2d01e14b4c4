"""Settings for the scaling and rollback policies."""

from __future__ import annotations

from jarvis.config.sections import Section


class ScalingSettings(Section):
    enabled: bool = False


class RollbackSettings(Section):
    enabled: bool = False
