"""The kill switch across processes: an operator's `jarvis killswitch engage`
in another shell stops a running app's very next apply, on SQLite and on Redis."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from jarvis.model import Action, EventKind, ResourceRef, Restart
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.fakes import FakeActuator, ProposeEach
from tests.loop.conftest import AppFactory

pytestmark = pytest.mark.anyio


async def cli(tmp_path: Path, db_url: str, *args: str, redis: str | None = None) -> str:
    extra = {"JARVIS_DATABASE_URL": db_url}
    if redis:
        extra["JARVIS_REDIS_URL"] = redis
    result = await anyio.run_process(
        jarvis_argv(*args), cwd=tmp_path, env=jarvis_env(tmp_path, **extra), check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.parametrize("backend", ["database", "redis"])
async def test_an_engage_from_another_process_blocks_the_next_apply(
    backend: str,
    make_app: AppFactory,
    fleet: FakeActuator,
    db_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The daemon applies, an operator engages from a shell, the next apply is blocked."""
    redis = request.getfixturevalue("redis_url") if backend == "redis" else None
    restart = Action(ResourceRef("sim", "api"), Restart(), "p", "r")
    app = await make_app([ProposeEach([restart])], redis_url=redis)
    first = await app.reconciler.tick()
    assert [d.verdict.allowed for d in first.decisions] == [True]

    await cli(tmp_path, db_url, "killswitch", "engage", "--reason", "incident", redis=redis)
    second = await app.reconciler.tick()
    assert [d.verdict.reason for d in second.decisions] == ["killswitch"]
    assert "incident" in second.decisions[0].verdict.detail

    await cli(tmp_path, db_url, "killswitch", "release", redis=redis)
    third = await app.reconciler.tick()
    assert [d.verdict.allowed for d in third.decisions] == [True]
    assert len(fleet.applied) == 2
    status = await cli(tmp_path, db_url, "killswitch", "status", "--json", redis=redis)
    assert '"engaged": false' in status
    await app.reconciler.flush()
    flips = [EventKind.KILLSWITCH_ENGAGED.value, EventKind.KILLSWITCH_RELEASED.value]
    recorded = [e.kind for e in await app.store.events(kinds=flips)]
    # The app records each flip it reads too, by the flip's own key: no second row.
    assert recorded == [EventKind.KILLSWITCH_ENGAGED, EventKind.KILLSWITCH_RELEASED]
