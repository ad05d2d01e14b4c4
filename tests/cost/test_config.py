"""The [cost] and [routing] settings: the documented example loads, mistakes are named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from jarvis.config import ConfigError, load_settings
from jarvis.config.cost import CostSettings, RouteSettings
from jarvis.policies.cost import CostPolicy

DOC = Path(__file__).parents[2] / "README.md"


def documented_toml() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if "\n[cost]\n" in b]
    assert found, "the README lost its [cost] TOML example"
    return str(found[0])


def test_the_documented_example_loads_and_builds_the_policy(tmp_path: Path) -> None:
    """The README's [cost] TOML example is valid and makes a working cost policy."""
    path = tmp_path / "jarvis.toml"
    path.write_text(documented_toml(), encoding="utf-8")
    settings = load_settings(path)
    assert settings.cost.monthly_budget_usd == 500.0
    assert settings.routing.routes["code"].models == (
        "claude-3-5-sonnet",
        "gpt-4o",
        "gemini-1.5-flash",
    )
    policy = CostPolicy.from_settings(
        settings.cost, settings.routing, max_shift=settings.bounds.max_traffic_shift
    )
    assert policy.name == "cost"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"weights": {"a": 0.5, "b": 0.4}}, "sum to 1"),
        ({"weights": {"a": 1.0}, "floors": {"z": 0.1}}, "does not allow"),
        ({"weights": {"a": 0.3, "b": 0.7}, "floors": {"a": 0.5}}, "below their floors"),
        ({"weights": {"a": 0.6, "b": 0.4}, "floors": {"a": 0.6, "b": 0.6}}, "more than 1"),
        ({"weights": {"a": 1.5, "b": -0.5}}, "less than or equal to 1"),
    ],
)
def test_inconsistent_routes_are_refused(route: dict[str, Any], message: str) -> None:
    """Weights that do not sum to 1, or floors that cannot hold, are configuration errors."""
    with pytest.raises(ValidationError, match=message):
        RouteSettings.model_validate(route)


@pytest.mark.parametrize(
    "route",
    [
        {"weights": {"_version": 1.0}},
        {"weights": {"_primary": 0.5, "b": 0.5}},
        {"weights": {"": 1.0}},
        {"weights": {"a": 1.0}, "allowed": ["_cheap"]},
    ],
)
def test_a_model_named_like_the_hashs_own_fields_is_refused(route: dict[str, Any]) -> None:
    """A model name that is empty or starts with ``_`` (the route hash's metadata) is refused."""
    with pytest.raises(ValidationError, match="must not be empty or start with '_'"):
        RouteSettings.model_validate(route)


def test_thresholds_must_be_in_order() -> None:
    """alert_at <= shift_at <= cheapest_at, or the settings are refused."""
    with pytest.raises(ValidationError, match="alert_at <= shift_at"):
        CostSettings(alert_at=0.95, shift_at=0.9)


def test_unknown_keys_and_missing_prices_are_named(tmp_path: Path) -> None:
    """A typo in [cost] is an error naming the key; an unpriced model fails the policy build."""
    path = tmp_path / "jarvis.toml"
    path.write_text("[cost]\nmonthly_budget = 100\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cost\.monthly_budget: unknown key"):
        load_settings(path)
    path.write_text('[routing.routes.chat]\nweights = { "gpt-4o" = 1.0 }\n', encoding="utf-8")
    settings = load_settings(path)
    with pytest.raises(ValueError, match="no price"):
        CostPolicy.from_settings(settings.cost, settings.routing)
