"""Settings for the aws actuator."""

from __future__ import annotations

from jarvis.config.sections import Section


class AwsSettings(Section):
    """Configured when present; absent means the provider is off."""
