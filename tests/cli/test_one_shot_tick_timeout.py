"""A one-shot tick keeps to `loop.tick_timeout`, as the daemon's does.

A real `jarvis` against the real kubernetes client, aimed at `tests.silent_server`
relaying to the fake API server: the reads are answered and every restart's PATCH
is swallowed. Ten crash-looping Deployments, each restart cut at
``loop.apply_timeout`` (5 s), one after another: 50 s of applies in one tick,
against a tick timeout of 6 s. The command must end on its tick timeout (and the
apply in flight then, which runs to its own timeout as one shielded unit), not when
the last apply is cut, and must have recorded what the daemon records of a tick cut
short: the applies that ran unknown, the rest blocked ``tick_timeout``, no intent
left open, no ``tick.finished``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from jarvis.store.nodelock import sqlite_path
from tests.cli.conftest import Jarvis, asyncpg_url
from tests.cli.test_one_shot_hang import relay_to
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.silent_server import SilentServer
from tests.three_providers_support import K8S_TOKEN, subprocess_env

SICK = 10
OBSERVE, APPLY, TICK = 1.0, 5.0, 6.0
SERIAL = SICK * APPLY
"""Seconds the tick's applies take one after another when nothing bounds the tick."""
DEADLINE = TICK + 40
"""Seconds the command may take here: its tick timeout and a margin for a loaded machine."""

CONFIG = f"""
[loop]
observe_timeout = {OBSERVE}
apply_timeout = {APPLY}
tick_timeout = {TICK}

[bounds]
max_actions_per_tick = {SICK}

[breakers]
enabled = false

[heal]
enabled = true

[kubernetes]
namespaces = ["default"]
host = "{{url}}"
token = "{K8S_TOKEN}"
request_timeout = 120
verify_seconds = 0

[[allowlist]]
provider = "k8s"
resources = "*"
actions = ["restart"]
"""
"""Breakers off, so every restart is sent (the provider breaker would hold the fourth)."""


@pytest.fixture
def relay() -> Iterator[SilentServer]:
    """A relay to a fake cluster of `SICK` crash-looping Deployments that swallows every
    restart's PATCH."""
    with FakeApiServer(token=K8S_TOKEN) as apiserver:
        for n in range(SICK):
            apiserver.cluster.add_deployment("default", f"app-{n}")
            apiserver.cluster.crash_pods("default", f"app-{n}")
        with relay_to(apiserver.url, "kubernetes") as server:
            yield server


EVENTS = "SELECT kind, resource, reason FROM events ORDER BY id"


def recorded(database_url: str) -> list[tuple[str, str, str]]:
    """(kind, resource, reason) of every event in the database, in order ("" for none):
    the SQLite file read with sqlite3, PostgreSQL with asyncpg."""
    path = sqlite_path(database_url)
    if path is not None:
        with sqlite3.connect(path) as db:
            rows = db.execute(EVENTS).fetchall()
    else:
        rows = anyio.run(_fetch, database_url, EVENTS)
    return [(kind, resource or "", reason or "") for kind, resource, reason in rows]


async def _fetch(database_url: str, query: str) -> list[tuple[Any, ...]]:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_url(database_url))
    try:
        return [tuple(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


def test_a_tick_whose_applies_hang_ends_at_its_tick_timeout_and_records_the_cut(
    jarvis: Jarvis, tmp_path: Path, relay: SilentServer, database_url: str
) -> None:
    """`jarvis tick` whose restarts all hang ends on loop.tick_timeout, long before its
    applies would one after another, exits 1 saying the tick was cut there, has recorded
    the applies it sent unknown and the others blocked `tick_timeout`, and has given the
    lease (PostgreSQL) back."""
    config = tmp_path / "jarvis.toml"
    config.write_text(CONFIG.format(url=relay.url), encoding="utf-8")
    env = subprocess_env(tmp_path) | {
        "JARVIS_CONFIG": str(config),
        "JARVIS_DATABASE_URL": database_url,
    }
    began = time.monotonic()
    done = jarvis("tick", env=env, timeout=DEADLINE)
    took = time.monotonic() - began
    assert relay.held.is_set()
    assert took < SERIAL, f"took {took:.1f} s: the applies ran one after another"
    assert done.returncode == 1, done.stderr
    said = f"the tick was cut at loop.tick_timeout ({TICK:g} s)"
    assert sum(said in line for line in done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-4000:]

    events = recorded(database_url)
    kinds = [kind for kind, _, _ in events]
    assert kinds[0] == "tick.started"
    assert "tick.finished" not in kinds  # as the daemon's cut tick: it did not finish
    sick = {f"k8s://default/app-{n}" for n in range(SICK)}
    proposed = {resource for kind, resource, _ in events if kind == "action.proposed"}
    assert proposed == sick
    sent = [resource for kind, resource, _ in events if kind == "action.started"]
    unknown = [resource for kind, resource, _ in events if kind == "action.unknown"]
    cut = [r for kind, r, reason in events if kind == "action.blocked" and reason == "tick_timeout"]
    assert sent, "no restart was sent before the cut"
    assert sorted(unknown) == sorted(sent)  # the apply in flight too: no intent left open
    assert sorted(sent + cut) == sorted(sick)  # every proposal ends unknown or cut
    assert not {"action.applied", "action.failed"} & set(kinds)
    spool = tmp_path / "spool.jsonl"
    assert not spool.exists() or not spool.read_text(), "events left in the spool"
    if sqlite_path(database_url) is None:  # the lease released, not left to expire
        query = "SELECT expires_at <= now() FROM leases WHERE name = 'loop'"
        assert anyio.run(_fetch, database_url, query) == [(True,)]
