"""A symlink loop where the database or the spool should be: one line, never a traceback.

The node lock and the spool resolve their file's symlinks to put their
companions (``.lock``, ``.cursor``) beside the file itself; on a loop Python
raised RuntimeError ("Symlink loop from ...") out of `jarvis tick`, `run` and
`status`. Now opening the file says it is a loop and what to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Jarvis, jarvis_env

ACTING: list[tuple[str, ...]] = [("tick",), ("run", "--ticks", "1", "--http-port", "0")]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("command", ACTING, ids=[c[0] for c in ACTING])
def test_a_database_path_looping_on_itself_is_refused_in_one_line(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Exit 2 as the node lock's other refusals, naming the file and the loop."""
    (tmp_path / "jarvis.db").symlink_to("jarvis.db")
    result = jarvis(*command, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert f"cannot open {tmp_path}/jarvis.db to hold the SQLite database alone" in lines[0]
    assert "a symlink loop on its path" in lines[0]


def test_status_beside_a_looping_database_path_answers(jarvis: Jarvis, tmp_path: Path) -> None:
    """No daemon can hold a loop: status says none does, and why none could, exit 0."""
    (tmp_path / "jarvis.db").symlink_to("jarvis.db")
    result = jarvis("status")
    assert result.returncode == 0, result.stderr
    database = tmp_path / "jarvis.db"
    assert result.stdout.strip() == (
        f"SQLite, one node: no daemon holds it; cannot open SQLite database {database}: a "
        f"symlink loop on its path. Fix the symlinks on the way to {database} (check "
        "database_url)"
    )


def test_a_spool_path_looping_on_itself_is_one_line_naming_spool_path(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """Exit 2 as the spool's other lasting failures, naming the file and the setting to check."""
    (tmp_path / "spool.jsonl").symlink_to("spool.jsonl")
    result = jarvis("tick", env=jarvis_env(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert f"cannot read spool file {tmp_path}/spool.jsonl: a symlink loop on its path" in lines[0]
    assert "(check spool_path)" in lines[0]
