"""A reading command on a SQLite database that does not exist creates nothing.

`jarvis events`, `retries list`, `silence list`, `notifications list`,
`killswitch status` and `db prune` (`--dry-run` too) created the file (and
`plan` its directory too) and read it empty, where `jarvis tick` refuses a
missing directory: a typo in
database_url read as a quiet fleet. Each now exits 2 in one line saying there
is no database there and what makes one, as `jarvis report` did; `plan` plans
as the first tick of `jarvis run` would, with no history, says so on stderr,
and creates nothing either.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import anyio
import pytest

from tests.cli.conftest import Jarvis, jarvis_env, set_switch

READERS: list[tuple[str, ...]] = [
    ("events",),
    ("events", "--follow"),
    ("retries", "list"),
    ("silence", "list"),
    ("notifications", "list"),
    ("killswitch", "status"),
    ("report",),
    # Prune has nothing to count or delete where no database is: it created one (and
    # its directory) and said "would delete 0 event(s)".
    ("db", "prune", "--dry-run"),
    ("db", "prune"),
]


def where(tmp_path: Path, missing: str) -> tuple[Path, dict[str, str]]:
    database = tmp_path / "data" / "jarvis.db" if missing == "directory" else tmp_path / "j.db"
    return database, jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{database}")


@pytest.mark.parametrize("missing", ["file", "directory"])
@pytest.mark.parametrize("command", READERS, ids=[" ".join(c) for c in READERS])
def test_a_reader_refuses_a_missing_database_in_one_line_and_creates_nothing(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...], missing: str
) -> None:
    """Exit 2, one line naming the path and what creates it; no file, no directory."""
    database, env = where(tmp_path, missing)
    before = sorted(tmp_path.iterdir())
    result = jarvis(*command, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: no event database at {database}: ")
    if missing == "directory":
        assert "its directory does not exist. Check database_url" in lines[0]
    else:
        assert "nothing is recorded there yet. `jarvis run` creates it" in lines[0]
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("missing", ["file", "directory"])
def test_plan_on_a_missing_database_plans_a_first_tick_and_creates_nothing(
    jarvis: Jarvis, tmp_path: Path, missing: str
) -> None:
    """Exit 0 with the plan on stdout (the embedded fleet's six services) and a note on stderr."""
    database, env = where(tmp_path, missing)
    before = sorted(tmp_path.iterdir())
    result = jarvis("plan", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["resources"] == 6
    assert f"note: no event database at {database}: " in result.stderr
    assert "Planned with no history" in result.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_killswitch_status_in_redis_reads_the_switch_with_no_database(
    jarvis: Jarvis, tmp_path: Path, redis_url: str
) -> None:
    """With the switch in Redis, the state an operator asks for is there, not in the
    missing database: `killswitch status` answers it (exit 0), says on stderr that no
    database records its history here, and creates nothing."""
    anyio.run(partial(set_switch, redis_url, engaged=True, actor="cli:alice", reason="incident 42"))
    database, env = where(tmp_path, "file")
    env["JARVIS_REDIS_URL"] = redis_url
    before = sorted(tmp_path.iterdir())
    result = jarvis("killswitch", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert (state["engaged"], state["actor"], state["reason"]) == (True, "cli:alice", "incident 42")
    assert f"note: no event database at {database}: " in result.stderr
    assert sorted(tmp_path.iterdir()) == before
