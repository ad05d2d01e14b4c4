"""Settings for the cloudrun actuator."""

from __future__ import annotations

from jarvis.config.sections import Section


class CloudRunSettings(Section):
    """Configured when present; absent means the provider is off."""
