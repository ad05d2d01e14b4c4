"""A SQLite database that cannot be one: every command says so in one line and exits 2
(README, "Exit statuses": no wait makes it one; exit 1 before the convention)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Jarvis, jarvis_env


def test_a_file_that_is_not_a_database_is_one_line(jarvis: Jarvis, tmp_path: Path) -> None:
    """A corrupt (or wrong) file at the database path is named in a store error, not a traceback."""
    (tmp_path / "jarvis.db").write_text("[loop]\ninterval = 5\n")
    for command in (["events"], ["retries", "list"], ["db", "upgrade"], ["plan"]):
        result = jarvis(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr, command
        assert f"SQLite database {tmp_path}/jarvis.db" in result.stderr, command
        assert "file is not a database" in result.stderr, command


def test_a_database_path_under_a_file_is_one_line(jarvis: Jarvis, tmp_path: Path) -> None:
    """A database whose directory cannot be made is named in a store error, not a traceback."""
    (tmp_path / "data").write_text("")
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/data/j.db")
    # A reader creates nothing, so it never tries: it says there is no database there.
    events = jarvis("events", env=env)
    assert events.returncode == 2, events.stderr
    assert f"no event database at {tmp_path}/data/j.db: a part of its path is a file" in (
        events.stderr
    )
    for command in (["killswitch", "engage", "--reason", "x"], ["db", "upgrade"]):
        result = jarvis(*command, env=env)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr, command
        assert f"cannot create the directory of SQLite database {tmp_path}/data/j.db" in (
            result.stderr
        ), command


def test_a_database_that_cannot_be_opened_leaves_no_thread_traceback(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """A connect that fails ends in one line: aiosqlite's thread is done before the loop closes.

    aiosqlite stops its thread after a failed connect by a future nobody
    awaits; when the command exited first, the thread's answer found the
    loop closed and printed two tracebacks (about two runs in three).
    """
    (tmp_path / "adir").mkdir()
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/adir")
    for _ in range(6):
        result = jarvis("killswitch", "engage", "--reason", "x", env=env)
        assert result.returncode == 2, result.stderr  # a directory is no database: lasting
        assert "Traceback" not in result.stderr
        assert "Event loop is closed" not in result.stderr
        assert "unable to open database file" in result.stderr
