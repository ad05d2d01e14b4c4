"""A command whose database answers with an error that is no outage says it in one line.

A database restored from an older dump, or a table dropped by hand, keeps its schema
revision while a table the command reads is gone: PostgreSQL answers ``relation ... does
not exist``. The store raises such an error as it is (`is_operational`: the program's
fault, not the world's), and every command printed the whole traceback, SQLAlchemy's
statement and its link included. Each now prints one ``error:`` line with the
database's reason (and, with ``--json``, that line as its one object) and exits 2: the
database answered and refused, and will until someone mends it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import pytest

from jarvis.store import upgrade
from tests.cli.conftest import Jarvis, asyncpg_url, jarvis_env, one_object, said_error
from tests.cli.test_json_errors import BUDGET, COMMANDS, ids

pytestmark = pytest.mark.anyio


async def tables_gone(url: str) -> None:
    """Every table but the schema's revision renamed away: the revision check passes and
    every statement on a table fails as a missing relation."""
    admin = await asyncpg.connect(asyncpg_url(url))
    try:
        tables = await admin.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
        for row in tables:
            await admin.execute(f"ALTER TABLE {row['tablename']} RENAME TO gone_{row['tablename']}")
    finally:
        await admin.close()


def one_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a command that exited 2 with no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error = said_error(result.stderr)
    assert error is not None, result.stderr
    assert error.isprintable(), error
    for leaked in ("[SQL:", "sqlalche.me", "SELECT", "[parameters:"):
        assert leaked not in error, error
    assert "does not exist" in error, error
    return error


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
async def test_a_table_gone_is_one_line_and_exit_2(
    jarvis: Jarvis, tmp_path: Path, pg_url: str, command: tuple[str, ...]
) -> None:
    """Every table renamed away under a current revision: one line saying the database's
    reason, and the same line as the one object with ``--json``."""
    await upgrade(pg_url)
    await tables_gone(pg_url)
    (tmp_path / "jarvis.toml").write_text(BUDGET, encoding="utf-8")
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url, JARVIS_CONFIG="jarvis.toml")
    said = one_refusal(jarvis(*command, env=env))
    as_json = jarvis(*command, "--json", env=env)
    assert one_refusal(as_json) == said
    assert one_object(as_json.stdout, as_json.stderr) == {"error": said}
