"""A SQLite database that cannot be one: every command says so in one line and exits 1."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Jarvis, jarvis_env


def test_a_file_that_is_not_a_database_is_one_line(jarvis: Jarvis, tmp_path: Path) -> None:
    """A corrupt (or wrong) file at the database path is named in a store error, not a traceback."""
    (tmp_path / "jarvis.db").write_text("[loop]\ninterval = 5\n")
    for command in (["events"], ["retries", "list"], ["db", "upgrade"], ["plan"]):
        result = jarvis(*command)
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr, command
        assert f"SQLite database {tmp_path}/jarvis.db" in result.stderr, command
        assert "file is not a database" in result.stderr, command


def test_a_database_path_under_a_file_is_one_line(jarvis: Jarvis, tmp_path: Path) -> None:
    """A database whose directory cannot be made is named in a store error, not a traceback."""
    (tmp_path / "data").write_text("")
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/data/j.db")
    for command in (["events"], ["killswitch", "engage", "--reason", "x"], ["db", "upgrade"]):
        result = jarvis(*command, env=env)
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr, command
        assert f"cannot create the directory of SQLite database {tmp_path}/data/j.db" in (
            result.stderr
        ), command
