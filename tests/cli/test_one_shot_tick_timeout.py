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

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from jarvis.store.nodelock import sqlite_path
from tests.cli.conftest import Jarvis, asyncpg_url
from tests.cli.test_one_shot_hang import SECTIONS, relay_to
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.silent_server import SilentServer, silent_server
from tests.three_providers_support import K8S_TOKEN, subprocess_env

SICK = 10
OBSERVE, APPLY, TICK = 1.0, 5.0, 6.0
SERIAL = SICK * APPLY
"""Seconds the tick's applies take one after another when nothing bounds the tick."""
DEADLINE = TICK + 40
"""Seconds the command may take here: its tick timeout and a margin for a loaded machine."""

KUBERNETES = f"""
[kubernetes]
namespaces = ["default"]
host = "{{url}}"
token = "{K8S_TOKEN}"
request_timeout = 120
verify_seconds = 0
"""
"""The cluster at ``url``, its client's own timeout far past the loop's."""

RESTARTS = """
[[allowlist]]
provider = "k8s"
resources = "*"
actions = ["restart"]
"""

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
{KUBERNETES}{RESTARTS}"""
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


OVERRIDE_CONFIG = f"""
[loop]
observe_timeout = {OBSERVE}
apply_timeout = {APPLY}
tick_timeout = {OBSERVE + APPLY}
{KUBERNETES}{RESTARTS}{SECTIONS["cloudrun"].replace("{url}", "{cloudrun}")}"""
"""The tick timeout at its least, with Cloud Run silent: the observe takes all of
``loop.observe_timeout`` (Cloud Run cut), so the restart sent after it is still in flight,
its own timeout not yet reached, when the tick's runs out."""


EACH_WAY = pytest.mark.parametrize(
    ("database_url", "as_json"),
    [("sqlite", False), ("postgres", True)],
    ids=["sqlite-table", "postgres-json"],
    indirect=["database_url"],
)
"""Each database once, and each output once: a cut's outcome is the same on both."""

CUT_DEADLINE = 90
"""Seconds a cut one-shot below may take: a margin for a machine loaded several times over
(these start the Kubernetes and Cloud Run clients); what they check is what a cut says and
records, not how soon."""


def cut_line(stdout: str, stderr: str, *, as_json: bool) -> str:
    """The one ``error:`` line a cut one-shot says on stderr, checked against its stdout:
    nothing, or with ``--json`` exactly one object, ``{"error": that line}``."""
    assert "Traceback" not in stderr, stderr[-4000:]
    errors = [line.removeprefix("error: ") for line in stderr.splitlines() if "error: " in line]
    errors = [line for line in errors if line.startswith("the tick was cut")]
    assert len(errors) == 1, stderr
    if as_json:
        lines = stdout.splitlines()
        assert len(lines) == 1, stdout
        assert json.loads(lines[0]) == {"error": errors[0]}
    else:
        assert not stdout.strip(), stdout
    return errors[0]


@EACH_WAY
def test_an_override_cut_at_its_tick_timeout_exits_1_and_records_its_action_unknown(
    jarvis: Jarvis, tmp_path: Path, relay: SilentServer, database_url: str, as_json: bool
) -> None:
    """`jarvis restart` whose PATCH hangs, its tick cut while the apply is in flight: exit
    1 with the one line (``--json``: one object, ``{"error": that line}``), the restart
    recorded unknown (the apply ran to its own timeout), no `tick.finished`, nothing
    spooled, and the lease (PostgreSQL) given back."""
    target = "k8s://default/app-0"
    with silent_server() as cloudrun:
        config = tmp_path / "jarvis.toml"
        config.write_text(OVERRIDE_CONFIG.format(url=relay.url, cloudrun=cloudrun.url))
        env = subprocess_env(tmp_path) | {
            "JARVIS_CONFIG": str(config),
            "JARVIS_DATABASE_URL": database_url,
        }
        argv = ["restart", target, "--reason", "hung", *(["--json"] if as_json else [])]
        done = jarvis(*argv, env=env, timeout=CUT_DEADLINE)
        assert relay.held.is_set()
    assert done.returncode == 1, done.stderr
    line = cut_line(done.stdout, done.stderr, as_json=as_json)
    assert line.startswith(f"the tick was cut at loop.tick_timeout ({OBSERVE + APPLY:g} s)")

    events = recorded(database_url)
    kinds = [kind for kind, _, _ in events]
    assert kinds[0] == "tick.started"
    assert "tick.finished" not in kinds
    actions = [(kind, resource) for kind, resource, _ in events if kind.startswith("action.")]
    assert actions == [
        ("action.proposed", target),
        ("action.started", target),
        ("action.unknown", target),
    ]
    spool = tmp_path / "spool.jsonl"
    assert not spool.exists() or not spool.read_text(), "events left in the spool"
    if sqlite_path(database_url) is None:
        query = "SELECT expires_at <= now() FROM leases WHERE name = 'loop'"
        assert anyio.run(_fetch, database_url, query) == [(True,)]


LEDGER_ROWS = 20_000
"""Retry-ledger rows the cut plan reads at the start of its tick, before it observes."""

PLAN_CONFIG = f"""
[loop]
observe_timeout = {OBSERVE}
apply_timeout = 0.001
tick_timeout = {OBSERVE + 0.001}
{KUBERNETES}"""
"""A plan applies nothing, so only a tick timeout at its least, the apply timeout tiny,
cuts it: its tick reads the ledger (`LEDGER_ROWS`) before it observes, and then waits
all of ``loop.observe_timeout`` on a silent cluster, past the tick's end (on a loaded
machine the read alone may outlast the tick)."""


async def _seed_ledger(database_url: str) -> None:
    from jarvis.model import RetryState
    from jarvis.store import EventStore

    store = await EventStore.connect(database_url)
    try:
        for n in range(LEDGER_ROWS):
            store.stage_retry(RetryState(f"sim://svc-{n}", "restart", consecutive_failures=1))
        await store.flush()
    finally:
        await store.aclose()


@EACH_WAY
def test_a_plan_cut_at_its_tick_timeout_exits_1_and_writes_nothing(
    jarvis: Jarvis, tmp_path: Path, database_url: str, as_json: bool
) -> None:
    """`jarvis plan` whose tick is cut exits 1 with the one line, saying nothing was
    recorded (``--json``: one object, ``{"error": that line}``), and writes nothing: no
    event, the ledger as it was, no spool."""
    anyio.run(_seed_ledger, database_url)
    with silent_server() as cluster:
        config = tmp_path / "jarvis.toml"
        config.write_text(PLAN_CONFIG.format(url=cluster.url))
        env = subprocess_env(tmp_path) | {
            "JARVIS_CONFIG": str(config),
            "JARVIS_DATABASE_URL": database_url,
        }
        done = jarvis("plan", *(["--json"] if as_json else []), env=env, timeout=CUT_DEADLINE)
    assert done.returncode == 1, done.stderr
    line = cut_line(done.stdout, done.stderr, as_json=as_json)
    assert line.startswith(f"the tick was cut at loop.tick_timeout ({OBSERVE + 0.001:g} s)")
    assert "nothing was recorded" in line
    assert recorded(database_url) == []
    rows = "SELECT count(*) FROM retry_state WHERE consecutive_failures = 1"
    if sqlite_path(database_url) is None:
        assert anyio.run(_fetch, database_url, rows) == [(LEDGER_ROWS,)]
    else:
        with sqlite3.connect(tmp_path / "jarvis.db") as db:
            assert db.execute(rows).fetchall() == [(LEDGER_ROWS,)]
    assert not (tmp_path / "spool.jsonl").exists()
