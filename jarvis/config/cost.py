"""Settings for the cost policy and the LLM routing actuator."""

from __future__ import annotations

from jarvis.config.sections import Section


class CostSettings(Section):
    enabled: bool = False


class RoutingSettings(Section):
    enabled: bool = False
