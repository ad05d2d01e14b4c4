"""Settings for the decision policies beyond heal: scaling, rollback, cost routing."""

from __future__ import annotations

from jarvis.config.sections import Section


class ScalingSettings(Section):
    enabled: bool = False


class RollbackSettings(Section):
    enabled: bool = False


class CostSettings(Section):
    enabled: bool = False


class RoutingSettings(Section):
    enabled: bool = False
