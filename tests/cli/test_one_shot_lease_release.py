"""A one-shot that cannot give its lease back says why in one line, as the store says it.

`jarvis tick` on PostgreSQL holds the leader lease while it acts and releases it at
the end (`jarvis.cli.oneshot.holding_lease`). When the database is gone by then, the
release fails and the lease expires by itself; the warning said so in the raw text of
the exception: ``[Errno 111] Connect call failed ('127.0.0.1', PORT)``, naming no
database, or for a database that answered and refused, SQLAlchemy's own (its wrapped
error, a line break and a link to its docs; tests/cli/test_credentials_refused.py).
It now says it as the store says every database error (`EventStore.explain`): one
line naming the server and database, and the driver's reason. A private PostgreSQL
(`tests.private_postgres`), stopped while the tick is held in its observe
(`tests.held_tick`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.cli.conftest import jarvis_env
from tests.held_tick import held_probe, holding_endpoint, run_held
from tests.private_postgres import SUPERUSER_PASSWORD, PrivatePostgres, private_postgres


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    """A server of this test's own, its ``postgres`` database migrated: the test stops it."""
    with private_postgres(["host all all 127.0.0.1/32 scram-sha-256"]) as pg:
        from jarvis.store import upgrade

        anyio.run(upgrade, pg.url("postgres", SUPERUSER_PASSWORD))
        yield pg


def test_a_tick_whose_database_stops_before_the_release_says_so_in_one_line(
    server: PrivatePostgres, tmp_path: Path
) -> None:
    """The database stopped while `jarvis tick` holds the lease: the release's warning is
    one line naming the server and the database, with no SQL, no link, no password."""
    with holding_endpoint() as endpoint:
        (tmp_path / "jarvis.toml").write_text(held_probe(endpoint), encoding="utf-8")
        env = jarvis_env(
            tmp_path,
            JARVIS_DATABASE_URL=server.url("postgres", SUPERUSER_PASSWORD),
            JARVIS_CONFIG=str(tmp_path / "jarvis.toml"),
        )
        code, out, err = run_held(["tick"], tmp_path, env, endpoint, server.halt)
    assert "Traceback" not in err, err[-4000:]
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    (release,) = [line for line in logged if line["event"] == "could not release the lease"]
    said = f"cannot reach PostgreSQL at 127.0.0.1:{server.port} (database postgres): "
    assert release["error"].startswith(said), release
    assert "\n" not in release["error"]
    for text in (out, err):
        assert "sqlalche.me" not in text
        assert SUPERUSER_PASSWORD not in text
    assert code in (0, 1), err[-4000:]
