"""The scaling policy's ``behavior`` read from plain settings data.

Used by `jarvis.policies.scaling.ScalingPolicy.from_config` (config may not be
imported by policies, so `jarvis.config.policies.ScalingSettings` arrives as a
plain dict). Two spellings, as Kubernetes' ``behavior`` and as Jarvis had it:

- ``scale_up_policies`` / ``scale_down_policies``: lists of
  ``{type = "pods" | "percent", value, period_seconds}``, each with its own period;
- otherwise the shorthand ``scale_{up,down}_max_percent`` and
  ``scale_{up,down}_max_replicas``, all over ``rate_period_seconds``.

``scale_{up,down}_select`` is ``max`` (default), ``min`` or ``disabled``;
``scale_up_stabilization_seconds`` (default 0, as Kubernetes) and
``stabilization_seconds`` (the scale-down window, default 300) set the windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jarvis.policies.hpa_behavior import (
    Behavior,
    PolicyType,
    RatePolicy,
    ScalingRules,
    SelectPolicy,
)

__all__ = ["KNOWN_KEYS", "behavior_from_config"]

KNOWN_KEYS = frozenset(
    {
        "enabled", "tolerance", "metric_max_age_seconds", "rules",
        "stabilization_seconds", "scale_up_stabilization_seconds", "rate_period_seconds",
        "scale_up_max_percent", "scale_up_max_replicas", "scale_down_max_percent",
        "scale_down_max_replicas", "scale_up_select", "scale_down_select",
        "scale_up_policies", "scale_down_policies",
    }
)  # fmt: skip


def behavior_from_config(config: Mapping[str, Any]) -> Behavior:
    """Both directions' rules; unknown keys are an error naming them."""
    unknown = set(config) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown scaling settings: {sorted(unknown)}")
    period = float(config.get("rate_period_seconds", 60.0))
    up_shorthand = (
        RatePolicy(PolicyType.PERCENT, config.get("scale_up_max_percent", 100.0), period),
        RatePolicy(PolicyType.PODS, config.get("scale_up_max_replicas", 4), period),
    )
    down_shorthand = [
        RatePolicy(PolicyType.PERCENT, config.get("scale_down_max_percent", 100.0), period)
    ]
    if config.get("scale_down_max_replicas") is not None:
        down_shorthand.append(
            RatePolicy(PolicyType.PODS, config["scale_down_max_replicas"], period)
        )
    return Behavior(
        scale_up=ScalingRules(
            stabilization_seconds=config.get("scale_up_stabilization_seconds", 0.0),
            select=SelectPolicy(config.get("scale_up_select", "max")),
            policies=_policies(config.get("scale_up_policies")) or up_shorthand,
        ),
        scale_down=ScalingRules(
            stabilization_seconds=config.get("stabilization_seconds", 300.0),
            select=SelectPolicy(config.get("scale_down_select", "max")),
            policies=_policies(config.get("scale_down_policies")) or tuple(down_shorthand),
        ),
    )


def _policies(raw: Any) -> tuple[RatePolicy, ...]:
    if not raw:
        return ()
    return tuple(
        RatePolicy(PolicyType(p["type"]), p["value"], p.get("period_seconds", 60.0)) for p in raw
    )
