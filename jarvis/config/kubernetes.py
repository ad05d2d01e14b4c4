"""Settings for the kubernetes actuator."""

from __future__ import annotations

from jarvis.config.sections import Section


class KubernetesSettings(Section):
    """Configured when present; absent means the provider is off."""
