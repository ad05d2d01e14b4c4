"""One exit-status convention for every command (README, "Exit statuses").

2: this invocation cannot run here as given, and run unchanged fails the same way
until someone fixes the configuration, the environment or the permissions it names.
1: it ran and failed, or what it needs did not answer now; the same command may work
later. The refusals had drifted apart: `jarvis tick` refusing a database it cannot
write exited 2 where `jarvis silence add`, `retries reset` and `db prune` refusing the
same exited 1, as did every command refused by a read-only PostgreSQL (but `tick`, at
its lease) and a spool file it may not open. Each refusal below runs the real
`jarvis` command and pins its status; an unreachable database pins the 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from jarvis.model import RetryState
from tests.cli.conftest import (
    QUARANTINED,
    Jarvis,
    as_another_user,
    asyncpg_url,
    jarvis_env,
    migrated_with_quarantine,
    seed,
)
from tests.read_only_mount import read_only_view

READERS: list[tuple[str, ...]] = [
    ("events",),
    ("retries", "list"),
    ("killswitch", "status"),
    ("silence", "list"),
    ("report",),
]
WRITERS: list[tuple[str, ...]] = [
    ("tick",),
    ("tick", "--dry-run"),
    ("restart", QUARANTINED, "--dry-run"),
    ("silence", "add", "--match", "sim://*", "--for", "1h", "--reason", "maintenance"),
    ("retries", "reset", QUARANTINED),
    ("db", "prune"),
    ("killswitch", "engage", "--reason", "incident"),
]


def ids(commands: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(word for word in c[:3] if not word.startswith("sim://")) for c in commands]


def one_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def quarantined(tmp_path: Path) -> Path:
    """tmp_path/data/jarvis.db holding one quarantined pair, written and closed."""
    import anyio

    data = tmp_path / "data"
    data.mkdir()
    held = [RetryState(QUARANTINED, "restart", consecutive_failures=3, quarantined=True)]
    anyio.run(lambda: seed(data, retries=held))
    return data / "jarvis.db"


@pytest.mark.parametrize("command", READERS + WRITERS, ids=ids(READERS + WRITERS))
def test_a_bad_configuration_exits_2(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A setting no command can run with (here a `JARVIS_*` variable nothing reads)."""
    result = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_DRYRUN="true"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid configuration" in one_error(result.stderr)
    assert "did you mean JARVIS_DRY_RUN?" in result.stderr


@pytest.mark.parametrize("command", READERS, ids=ids(READERS))
def test_a_reader_on_a_missing_sqlite_database_exits_2(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Nothing to read, and nothing a wait brings: `jarvis run` must create it first."""
    result = jarvis(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no event database at" in one_error(result.stderr)


@pytest.mark.parametrize("command", WRITERS, ids=ids(WRITERS))
def test_a_writer_on_a_sqlite_database_it_cannot_write_exits_2(
    jarvis: Jarvis, tmp_path: Path, quarantined: Path, command: tuple[str, ...]
) -> None:
    """The file mounted read-only beside a writable directory: every writer, the kill
    switch held in that database included, refuses it the same way."""
    with read_only_view(quarantined, tmp_path / "jarvis.db"):
        result = jarvis(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{tmp_path}/jarvis.db cannot be written by this process" in one_error(result.stderr)


@pytest.fixture
async def read_only_pg(pg_url: str) -> str:
    """The test's database, migrated, with one quarantined pair, then read-only."""
    await migrated_with_quarantine(pg_url)
    name = urlsplit(pg_url).path.lstrip("/")
    connection = await asyncpg.connect(asyncpg_url(pg_url))
    try:
        await connection.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    finally:
        await connection.close()
    return pg_url


# `db prune` with nothing past retention writes nothing, so a read-only database lets it be.
PG_WRITERS = [command for command in WRITERS if command[0] != "db"]


@pytest.mark.anyio
@pytest.mark.parametrize("command", PG_WRITERS, ids=ids(PG_WRITERS))
async def test_a_writer_on_a_read_only_postgres_exits_2(
    jarvis: Jarvis, tmp_path: Path, read_only_pg: str, command: tuple[str, ...]
) -> None:
    """A database set `default_transaction_read_only`: the server answered, and no."""
    result = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=read_only_pg))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ReadOnlySQLTransactionError" in one_error(result.stderr)


SPOOLERS: list[tuple[str, ...]] = [
    ("tick",),
    ("tick", "--dry-run"),
    ("silence", "add", "--match", "sim://*", "--for", "1h", "--reason", "maintenance"),
    ("run", "--ticks", "1", "--http-port", "0"),
]


@pytest.mark.parametrize("command", SPOOLERS, ids=ids(SPOOLERS))
def test_a_spool_file_this_user_cannot_open_exits_2(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Another user's spool file (mode 000), run without root's bypass: permission denied."""
    assert jarvis("tick").returncode == 0  # the database exists and is writable
    spool = tmp_path / "spool.jsonl"
    spool.write_bytes(b"")
    spool.chmod(0)
    result = as_another_user(tmp_path, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{spool}: permission denied" in one_error(result.stderr)


@pytest.fixture
def looping(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/jarvis.db a symlink to itself."""
    database = tmp_path / "jarvis.db"
    database.symlink_to("jarvis.db")
    yield database


@pytest.mark.parametrize("command", READERS + WRITERS, ids=ids(READERS + WRITERS))
def test_a_symlink_loop_at_the_database_path_exits_2_naming_it(
    jarvis: Jarvis, looping: Path, command: tuple[str, ...]
) -> None:
    """Readers and writers alike name the file and the loop, not "cannot reach"."""
    result = jarvis(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_error(result.stderr)
    assert f"{looping}" in line and "a symlink loop on its path" in line
    assert f"Fix the symlinks on the way to {looping} (check database_url)" in line
    assert "cannot reach" not in line and "no event database" not in line


@pytest.mark.parametrize("command", READERS + WRITERS, ids=ids(READERS + WRITERS))
def test_a_database_that_does_not_answer_exits_1(
    jarvis: Jarvis, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Nothing listens on its port: an outage, which may end, not a refusal."""
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    result = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=url))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in one_error(result.stderr)
