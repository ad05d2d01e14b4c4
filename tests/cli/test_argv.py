"""`hoist_config`: `--config` anywhere before `--` reaches the root command."""

from __future__ import annotations

import pytest

from jarvis.cli.argv import hoist_config


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["config", "check", "--config", "a.toml"], ["--config", "a.toml", "config", "check"]),
        (["tick", "-c", "a.toml", "--json"], ["-c", "a.toml", "tick", "--json"]),
        (["tick", "--config=a.toml"], ["--config=a.toml", "tick"]),
        (["--config", "a.toml", "tick"], ["--config", "a.toml", "tick"]),
        (["tick", "--config", "a.toml", "--config", "b.toml"], ["--config", "b.toml", "tick"]),
        (["-c", "a.toml", "tick", "--config", "b.toml"], ["--config", "b.toml", "tick"]),
        (["run", "--", "--config", "a.toml"], ["run", "--", "--config", "a.toml"]),
        (["config", "check", "--config"], ["config", "check", "--config"]),
    ],
)
def test_config_moves_to_the_front(given: list[str], expected: list[str]) -> None:
    """Wherever it is written, the last --config given leads; nothing after -- moves."""
    assert hoist_config(given) == expected
