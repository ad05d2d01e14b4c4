"""`jarvis run` with a spool it cannot replay: the one-line refusal names what stops the replay."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jarvis.model import Event, EventKind
from jarvis.store.spool import Spool
from tests.cli.conftest import Jarvis


def test_a_spool_held_up_by_its_dead_letter_file_names_that_file(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """A daemon whose spool cannot set a damaged line aside names that file, not the database."""
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append(
        [Event(kind=EventKind.RESOURCE_CHANGED, ts=datetime.now(UTC), idempotency_key="spooled")]
    )
    spool.close()
    with (tmp_path / "spool.jsonl").open("ab") as handle:
        handle.write(b"\x00\xff binary garbage\n")
    (tmp_path / "spool.jsonl.dead").mkdir()

    result = jarvis("run", "--ticks", "1", "--http-port", "0", timeout=120)
    assert result.returncode == 2, result.stderr  # a directory in the way: README, "Exit statuses"
    assert "Traceback" not in result.stderr
    assert f"cannot write dead-letter file {tmp_path}/spool.jsonl.dead" in result.stderr
