"""`jarvis budgets` and the ``[[budgets]]`` settings, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Jarvis
from tests.cli.test_commands import events_of, run_ticks

ONE_RESTART = """
[[budgets]]
name = "restarts-per-hour-for-the-ai-dawg-fleet-of-simulated-services"
provider = "sim"
actions = ["restart"]
max = 1
window_seconds = 3600

[[budgets]]
name = "half"
max_percent = 50
"""


def test_budgets_shows_what_the_daemon_spent_and_held(jarvis: Jarvis, tmp_path: Path) -> None:
    """After the scripted crashes, one restart is spent, the next is held with reason
    budget, and the listing shows it without cutting the budget's long name."""
    config = tmp_path / "jarvis.toml"
    config.write_text(ONE_RESTART, encoding="utf-8")
    run_ticks(jarvis, 6, "--config", str(config))  # ticks 2 and 3 crash two services
    payloads = [e["payload"] for e in events_of(jarvis, "action.blocked")]
    held = [p for p in payloads if isinstance(p, dict) and p.get("blocked") == "budget"]
    assert held and "restarts-per-hour" in str(held[0])
    listed = jarvis("--config", str(config), "budgets", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    first = next(r for r in rows if r["budget"].startswith("restarts-per-hour"))
    assert (first["limit"], first["used"], first["remaining"]) == (1, 1, 0)
    half = next(r for r in rows if r["budget"] == "half")
    assert half["limit"] == 3  # 50% of the six simulated services
    table = jarvis("--config", str(config), "budgets", env=None)
    assert "restarts-per-hour-for-the-ai-dawg-fleet-of-simulated-services" in table.stdout


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('name = "a"\nmax = 1\nmax_percent = 5', "budgets.0"),
        ('name = "a"\nmax = -1', "budgets.0.max"),
        ('name = "a"\nmax_percent = 101', "budgets.0.max_percent"),
        ('name = "a"\nmax = 1\nwindow_seconds = inf', "budgets.0.window_seconds"),
        ('name = "a"\nmax = 1\nper = "resource"\nmax_percent = 5', "budgets.0"),
        ('name = "a"\nmax = 1\nprovider = "kubernetes"', "budgets.0.provider"),
        ('name = "a"\nmax = 1\nprovider = "sim"\nactions = ["reboot"]', "budgets.0.actions"),
        (
            'name = "a"\nmax = 1\nschedule = { timezone = "Mars/Olympus", hours = '
            '[{ start = "09:00", end = "17:00" }] }',
            "budgets.0.schedule.timezone",
        ),
        (
            'name = "a"\nmax = 1\nschedule = { hours = [{ start = "09:00", end = "17:00", '
            'days = ["someday"] }] }',
            "budgets.0.schedule.hours.0.days.0",
        ),
        (
            'name = "a"\nmax = 1\nschedule = { hours = [{ start = "09:00Z", end = "17:00" }] }',
            "budgets.0.schedule.hours.0.start",
        ),
        ('name = "a"\nmax = 1\nmax_per_day = 3', "budgets.0.max_per_day"),
    ],
)
def test_a_bad_budget_exits_2_naming_the_key(
    jarvis: Jarvis, tmp_path: Path, entry: str, key: str
) -> None:
    """Every malformed budget is refused before anything starts, with its dotted key."""
    config = tmp_path / "jarvis.toml"
    config.write_text(f"[[budgets]]\n{entry}\n", encoding="utf-8")
    result = jarvis("--config", str(config), "budgets")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"  {key}: " in result.stderr and "Traceback" not in result.stderr


def test_two_budgets_with_one_name_are_refused(jarvis: Jarvis, tmp_path: Path) -> None:
    """One name, one metric series: a second budget of the same name is an error."""
    config = tmp_path / "jarvis.toml"
    config.write_text('[[budgets]]\nname = "a"\nmax = 1\n' * 2, encoding="utf-8")
    result = jarvis("--config", str(config), "budgets")
    assert result.returncode == 2 and "used twice" in result.stderr


def test_a_glob_with_brackets_prints_as_configured(jarvis: Jarvis, tmp_path: Path) -> None:
    """A ``resources`` glob holding ``[a-c]`` or ``[/x]`` shows as typed, not as markup."""
    config = tmp_path / "jarvis.toml"
    config.write_text(
        '[[budgets]]\nname = "web"\nresources = "web-[a-c]*"\nmax = 3\n\n'
        '[[budgets]]\nname = "api"\nresources = "api-[/x]*\\u001b[2J"\nmax = 3\n',
        encoding="utf-8",
    )
    assert jarvis("db", "upgrade").returncode == 0  # a reader refuses a missing database
    listed = jarvis("--config", str(config), "budgets")
    assert listed.returncode == 0, listed.stderr
    assert "web-[a-c]*" in listed.stdout
    assert "api-[/x]*\\x1b[2J" in listed.stdout
    assert "\x1b" not in listed.stdout
