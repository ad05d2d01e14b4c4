"""Read commands beside a running daemon: they never open its spool, so they say nothing of it.

The daemon owns the spool (an advisory lock); every other process opening it
runs without one and warns so. A read writes nothing, needs no spool, and
warned on every `jarvis events` in the Quickstart's second shell.
"""

from __future__ import annotations

from pathlib import Path

from jarvis.store.spool import Spool
from tests.cli.conftest import Jarvis, jarvis_env


def test_read_commands_beside_the_spools_owner_do_not_warn(jarvis: Jarvis, tmp_path: Path) -> None:
    """events, retries list, killswitch status, silence and notifications lists, status, budgets."""
    env = jarvis_env(tmp_path)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    owner = Spool(Path(env["JARVIS_SPOOL_PATH"]))  # what the running daemon holds
    try:
        for command in (
            ["events"],
            ["retries", "list"],
            ["killswitch", "status"],
            ["silence", "list"],
            ["notifications", "list"],
            ["status"],
            ["budgets"],
        ):
            result = jarvis(*command, env=env)
            assert result.returncode == 0, (command, result.stderr)
            assert "running without a spool" not in result.stderr, command
    finally:
        owner.close()
