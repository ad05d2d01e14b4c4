"""The simulated LLM scenario: routes, models, prices, demand and budget, calibrated together.

Read by the harness (`jarvis.simulation.run_config`, through `sim_llm_settings`)
when the configuration enables neither ``[cost]`` nor ``[routing]``, and by the
simulated platform (`jarvis.simulation.llm`) for each route's demand and each
model's quality. The numbers are chosen together: list prices per 1k tokens,
a demand whose January at the configured weights costs about $15,000, and a
$12,000 budget, so that a 30-day run from 5 January (`run_config.START`) meets
the cost policy's alert, shift and cheapest stages in the last ten days of
January (``tests/simulation/test_llm.py`` pins the calibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jarvis.config import Settings

#: The simulation's routes, used unless the configuration enables cost or routing.
#: List prices per 1k tokens; ``code`` keeps half its traffic on its preferred model.
SIM_ROUTING: dict[str, Any] = {
    "enabled": True,
    "routes": {
        "chat": {"weights": {"gpt-4o": 0.6, "claude-haiku": 0.2, "gemini-flash": 0.2}},
        "code": {
            "weights": {"claude-sonnet": 0.7, "gpt-4o": 0.3},
            "allowed": ["gemini-flash"],
            "floors": {"claude-sonnet": 0.5},
        },
        "summarize": {
            "weights": {"gpt-4o": 0.5, "claude-sonnet": 0.5},
            "allowed": ["claude-haiku", "gemini-flash"],
        },
    },
}
SIM_COST: dict[str, Any] = {
    "enabled": True,
    # About 80 % of January at the configured weights (see the module docstring).
    "monthly_budget_usd": 12_000.0,
    "prices": {
        "gpt-4o": {"input_per_1k": 0.0025, "output_per_1k": 0.01},
        "claude-sonnet": {"input_per_1k": 0.003, "output_per_1k": 0.015},
        "claude-haiku": {"input_per_1k": 0.0008, "output_per_1k": 0.004},
        "gemini-flash": {"input_per_1k": 0.000075, "output_per_1k": 0.0003},
    },
}
SIM_ALLOW: dict[str, Any] = {"provider": "route", "resources": "*", "actions": ["set_weights"]}


@dataclass(frozen=True, slots=True)
class RouteTraffic:
    """A route's demand: requests per minute at the daily peak, and tokens per request."""

    peak_rpm: float
    input_tokens: float
    output_tokens: float


@dataclass(frozen=True, slots=True)
class ModelQuality:
    """How a model answers: success rate, mean latency, output tokens relative to the route's."""

    success_rate: float
    latency_ms: float
    verbosity: float = 1.0


#: The simulation's routes' demand; other routes draw theirs from the seed.
SIM_TRAFFIC = {
    "chat": RouteTraffic(peak_rpm=48.0, input_tokens=800.0, output_tokens=300.0),
    "code": RouteTraffic(peak_rpm=18.0, input_tokens=2000.0, output_tokens=600.0),
    "summarize": RouteTraffic(peak_rpm=12.0, input_tokens=3000.0, output_tokens=250.0),
}
#: Known models; others get DEFAULT_QUALITY. gemini-flash misses the cost
#: policy's quality gate (within 2 points of the best), so performance-based
#: selection prefers the mid-priced models and only the budget reaches for it.
MODEL_QUALITY = {
    "gpt-4o": ModelQuality(0.990, 900.0),
    "claude-sonnet": ModelQuality(0.993, 1100.0, 1.1),
    "claude-haiku": ModelQuality(0.982, 600.0, 0.9),
    "gemini-flash": ModelQuality(0.962, 450.0, 0.9),
}
DEFAULT_QUALITY = ModelQuality(0.98, 800.0)


def sim_llm_settings(base: Settings) -> dict[str, Any]:
    """Settings overrides that give a configuration without LLM routes the simulated ones.

    The allow-list keeps the configuration's entries and lets SET_WEIGHTS
    through on ``route://*``: the routes are the simulation's own.
    """
    if base.cost.enabled or base.routing.enabled:
        return {}
    allow = [entry.model_dump() for entry in base.allowlist]
    return {"cost": SIM_COST, "routing": SIM_ROUTING, "allowlist": [*allow, SIM_ALLOW]}
