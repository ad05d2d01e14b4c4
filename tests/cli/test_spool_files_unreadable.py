"""A spool file this process may not open: one line naming it, why and what to do.

The spool's lock, file and cursor (`jarvis.store.spool`) beside ``spool_path``
were refused with the OS error's own text (``[Errno 13] Permission denied:
'...'``) when another user made them. Each is now named with the reason in
words and what to do, and exits 2 as every refusal no wait ends (README, "Exit statuses").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Jarvis, as_another_user

WRITERS: list[tuple[str, ...]] = [
    ("tick",),
    ("tick", "--dry-run"),
    ("silence", "add", "--match", "sim://*", "--for", "1h", "--reason", "maintenance"),
    ("run", "--ticks", "1", "--http-port", "0"),
]


@pytest.mark.parametrize("command", WRITERS, ids=[" ".join(c[:2]) for c in WRITERS])
@pytest.mark.parametrize("name", ["spool.jsonl.lock", "spool.jsonl", "spool.jsonl.cursor"])
def test_a_spool_file_another_user_owns_is_one_line_saying_what_to_do(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...], name: str
) -> None:
    """Exit 2, one line: the file, "permission denied", and whose it is to run as."""
    assert jarvis("tick").returncode == 0  # the database exists and is writable
    (tmp_path / "spool.jsonl").write_bytes(b"")
    theirs = tmp_path / name
    theirs.write_text("0\n" if name.endswith(".cursor") else "", encoding="utf-8")
    theirs.chmod(0)
    result = as_another_user(tmp_path, *command)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Errno" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert f" {theirs}: permission denied. " in lines[0]
    assert f"Run jarvis as the user that runs the daemon (the owner of {theirs})" in lines[0]
