"""A SQLite database's ``.lock`` this process cannot read: one line naming it, never a traceback.

`jarvis status` (and every command that asks who holds the file) read the
node lock (`jarvis.store.nodelock`) and died with a PermissionError traceback
when it was another user's, or a NotADirectoryError one when the database's
directory was a file. Now status says the holder is unknown and why, and the
acting commands refuse in one line saying what to do. Tests run as root, whom
``chmod 000`` does not stop: the command runs under ``setpriv`` without the
two capabilities that let root read any file (``CAP_DAC_OVERRIDE``,
``CAP_DAC_READ_SEARCH``), so the kernel denies it as it would another user.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Jarvis, as_another_user, jarvis_env


def unreadable_lock(tmp_path: Path) -> Path:
    lock = tmp_path / "jarvis.db.lock"
    lock.write_text("4242\n", encoding="utf-8")
    lock.chmod(0)
    return lock


def test_status_says_the_holder_is_unknown_when_the_lock_is_not_readable(tmp_path: Path) -> None:
    """Exit 0 and one line naming the file, the reason and what to do."""
    lock = unreadable_lock(tmp_path)
    result = as_another_user(tmp_path, "status")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("SQLite, one node: lock holder unknown: ")
    assert f"cannot read {lock} " in lines[0]
    assert "permission denied" in lines[0]
    assert "Run jarvis as the user that runs the daemon" in lines[0]


def test_status_json_names_the_lock_error(tmp_path: Path) -> None:
    """``daemon_pid`` stays null and ``lock_error`` says why it could not be known."""
    lock = unreadable_lock(tmp_path)
    result = as_another_user(tmp_path, "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["daemon_pid"] is None
    assert f"cannot read {lock} " in report["lock_error"]
    assert "permission denied" in report["lock_error"]


def test_status_json_has_no_lock_error_when_the_lock_reads(jarvis: Jarvis) -> None:
    """A readable lock (or none): ``lock_error`` is null, so scripts can tell the two apart."""
    result = jarvis("status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["lock_error"] is None


def test_status_with_a_directory_at_the_lock_path_says_to_remove_it(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """A directory where ``jarvis.db.lock`` should be: no daemon can take it, status says so."""
    (tmp_path / "jarvis.db.lock").mkdir()
    result = jarvis("status")
    assert result.returncode == 0, result.stderr
    assert "lock holder unknown" in result.stdout
    assert "it is a directory" in result.stdout
    assert f"Remove or rename {tmp_path}/jarvis.db.lock" in result.stdout


def test_status_where_the_database_directory_is_a_file_answers_in_one_line(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """database_url under a regular file: a NotADirectoryError traceback before."""
    (tmp_path / "data").write_text("not a directory\n", encoding="utf-8")
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/data/j.db")
    result = jarvis("status", env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "lock holder unknown" in result.stdout
    assert "not a directory" in result.stdout


def test_an_acting_command_refuses_an_unreadable_lock_in_one_line(tmp_path: Path) -> None:
    """`jarvis tick` exits 2 naming the file and that it is a permission problem, not a
    missing directory as its hint said before."""
    lock = unreadable_lock(tmp_path)
    result = as_another_user(tmp_path, "tick")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot open {lock} to hold the SQLite database alone: permission denied" in lines[0]
    assert "Run jarvis as the user that runs the daemon" in lines[0]
