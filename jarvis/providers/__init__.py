"""The provider registry: the one table of every provider Jarvis can run.

Each entry names a provider, the settings section that switches it on, the
resource schemes its sensors and actuators report under, the action kinds it
applies on each, and how to build it (`registry`). The composition root
(`jarvis.app`) builds what the settings enable from this table; the CLI and
`build_app` check the allow-list, the budgets and the metric sources against
it (`checks`). Adding a provider is one entry in `registry.PROVIDERS` and its
actuator classes: no other table names providers.
"""

from __future__ import annotations

from jarvis.providers.checks import check_allowlist, glob_warnings, uri_glob_warning
from jarvis.providers.customers import CUSTOMER_ACTIONS
from jarvis.providers.registry import (
    CLOUD_ACTIONS,
    PROVIDERS,
    Provider,
    acting_schemes,
    build_metric_sources,
    build_sensors,
    check_table,
    enabled,
)

__all__ = [
    "CLOUD_ACTIONS",
    "CUSTOMER_ACTIONS",
    "PROVIDERS",
    "Provider",
    "acting_schemes",
    "build_metric_sources",
    "build_sensors",
    "check_allowlist",
    "check_table",
    "enabled",
    "glob_warnings",
    "uri_glob_warning",
]
