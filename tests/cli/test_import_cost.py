"""What the fast commands import: an operator in a hurry must not wait for modules
they do not use (issue 11 item 10, issue 16).

Each case runs the real CLI in a fresh interpreter and lists the modules it
loaded; no timing, so load on the machine cannot make it flaky.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_env

_CLOUD_SDKS = ("boto3", "botocore", "kubernetes", "google.cloud", "google.api_core")
_HEAVY = (
    "aiohttp",
    "alembic",
    "prometheus_client",
    "jarvis.loop.reconciler",
    "matplotlib",
    *_CLOUD_SDKS,
)
"""Never needed by `--help` or the kill switch on a database already migrated."""
_FLIP_ALSO = ("sqlalchemy", "aiosqlite", "asyncpg", "jarvis.store.events")
"""Not needed to engage or release on SQLite either: the flip goes straight
through stdlib sqlite3 (`jarvis.store.direct`), never through SQLAlchemy's
async engine, whose package imports the ORM."""
_HELP_ALSO = (
    "sqlalchemy",
    "pydantic_settings",
    "redis",
    "structlog",
    "asyncpg",
    "aiosqlite",
    "jarvis.app",
    "jarvis.model",
    "typer.rich_utils",
    "rich",
)
"""Not needed to print help either: no settings, no store, no model, and plain
help rather than rich's (its Markdown renderer was a third of `--help`)."""

_PROBE = """
import json, sys
from jarvis.cli import app
try:
    app(prog_name="jarvis", args=sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _loaded(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    report = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        cwd=tmp_path,
        env=env or jarvis_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = json.loads(report.read_text())
    assert found["code"] in (0, None), result.stderr
    modules: list[str] = found["modules"]
    return modules


def _offenders(modules: list[str], banned: tuple[str, ...]) -> list[str]:
    return sorted({b for b in banned for m in modules if m == b or m.startswith(b + ".")})


def test_help_imports_no_store_settings_or_sdk(tmp_path: Path) -> None:
    for args in (["--help"], ["killswitch", "--help"], ["plan", "--help"]):
        modules = _loaded(tmp_path, *args)
        assert _offenders(modules, _HEAVY + _HELP_ALSO) == [], args


def _migrated(tmp_path: Path, env: dict[str, str] | None = None) -> None:
    """The database as a daemon leaves it: created and at the head revision."""
    _loaded(tmp_path, "db", "upgrade", env=env)


def test_killswitch_engage_on_sqlite_imports_no_http_loop_or_sdk(tmp_path: Path) -> None:
    _migrated(tmp_path)
    for args in (["engage", "--reason", "import check"], ["release"]):
        modules = _loaded(tmp_path, "killswitch", *args)
        assert _offenders(modules, _HEAVY + _FLIP_ALSO) == [], args
        assert "jarvis.store.direct" in modules  # it did reach the database


def test_killswitch_engage_on_redis_imports_no_http_loop_or_sdk(
    tmp_path: Path, redis_url: str
) -> None:
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=redis_url)
    _migrated(tmp_path, env)
    modules = _loaded(tmp_path, "killswitch", "engage", "--reason", "import check", env=env)
    assert _offenders(modules, _HEAVY + _FLIP_ALSO) == []
    assert "jarvis.store.redis_killswitch" in modules


def test_plan_on_sqlite_reads_without_sqlalchemy(tmp_path: Path) -> None:
    """`jarvis plan` on a migrated SQLite file reads through stdlib sqlite3 (issue 16)."""
    _migrated(tmp_path)
    modules = _loaded(tmp_path, "plan", "--json")
    assert _offenders(modules, ("sqlalchemy", "aiosqlite", "alembic", "asyncpg")) == []
    assert "jarvis.store.readonly" in modules  # it did read the database
    assert "jarvis.loop.reconciler" in modules  # and ran the loop's own tick


@pytest.mark.anyio
async def test_plan_on_postgres_reads_without_sqlalchemy(tmp_path: Path, pg_url: str) -> None:
    """On PostgreSQL the reader is asyncpg's (`pg_url` is async: hence an async test)."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url)
    _migrated(tmp_path, env)
    modules = _loaded(tmp_path, "plan", "--json", env=env)
    assert _offenders(modules, ("sqlalchemy", "aiosqlite", "alembic")) == []
    assert "jarvis.store.readonly" in modules
    assert "asyncpg" in modules


_POSTGRES = ("asyncpg", "sqlalchemy.dialects.postgresql")
"""PostgreSQL's driver and SQLAlchemy's dialect for it (19 modules, declared by the
tables' JSONB columns, partial indexes and upserts until they named it only for
PostgreSQL): nothing a process on SQLite uses."""


def test_the_daemon_on_sqlite_loads_no_postgres_driver_alembic_or_cloud_sdk(
    tmp_path: Path,
) -> None:
    """`jarvis run` on the embedded default, restarted on its database: every module it loads
    costs each start, and a restart is what an orchestrator does all day (issue 16). Nothing
    mails here, so no SMTP client either (``/unsubscribe`` checks its token without one),
    and no customers sensor."""
    _migrated(tmp_path)
    modules = _loaded(tmp_path, "run", "--ticks", "1", "--interval", "0.01", "--http-port", "0")
    unused = ("alembic", "aiosmtplib", "jarvis.actuators.customers")
    assert _offenders(modules, (*_POSTGRES, *unused, *_CLOUD_SDKS)) == []
    assert "jarvis.loop.reconciler" in modules  # it did run its tick
    assert "aiohttp" in modules  # behind its HTTP server
