"""A provider gone silent with unknown outcomes open does not cut the daemon's ticks.

`jarvis run` on two providers at once, with the loop's default ratio of timeouts
scaled down (observe 2 s, apply 4 s, tick 6 s = observe + apply, the least the
configuration takes): Cloud Run (the fake Admin API) holds two restarts of
``api`` recorded ``action.unknown`` by earlier ticks and now accepts every read
of it and answers none; Kubernetes (the fake API server) answers, and its
``producer`` is crash-looping, so heal restarts it. Each tick asks Cloud Run
about the two unknowns and observes both providers. Before, the questions came
first and took the apply timeout, then the observe its own: every tick was cut
at the tick timeout before it applied anything, Kubernetes' restart included,
for as long as the unknowns stayed in the retry window (an hour).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.cli.conftest import jarvis_env
from tests.cli.test_one_shot_asks import SERVICE_PATH, seed_unknowns, service_reads
from tests.cloudrun.conftest import PROJECT, REGION
from tests.cloudrun.fake_server import FakeCloudRun
from tests.daemon import get, running, sample
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.three_providers_support import K8S_SICK, K8S_TOKEN, seed_kubernetes

OBSERVE, APPLY = 2.0, 4.0
TICK = OBSERVE + APPLY
TICKS = 3
"""Ticks within which the healthy provider's restart must be applied."""


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    """The fake Kubernetes API server, ``producer`` crash-looping."""
    with FakeApiServer(token=K8S_TOKEN) as server:
        seed_kubernetes(server)
        yield server


def config(tmp_path: Path, cloudrun: FakeCloudRun, apiserver: FakeApiServer) -> Path:
    """Both providers allowed to restart; Cloud Run's own request timeout far past the
    loop's, so a question or an observe it does not answer hangs until the loop cuts it."""
    path = tmp_path / "jarvis.toml"
    path.write_text(
        f"""
[loop]
interval = {TICK}
tick_timeout = {TICK}
observe_timeout = {OBSERVE}
apply_timeout = {APPLY}

[heal]
enabled = true

[[allowlist]]
provider = "cloudrun"
resources = "*"
actions = ["*"]

[[allowlist]]
provider = "k8s"
resources = "*"
actions = ["*"]

[cloudrun]
project = "{PROJECT}"
region = "{REGION}"
services = ["api"]
credentials = "anonymous"
api_endpoint = "{cloudrun.endpoint}"
request_timeout = 120
max_concurrency = 32

[kubernetes]
namespaces = ["default"]
host = "{apiserver.url}"
token = "{K8S_TOKEN}"
verify_seconds = 0
""",
        encoding="utf-8",
    )
    return path


def events(tmp_path: Path) -> list[tuple[str, str | None, str | None]]:
    """(kind, resource, tick id) of every event in tmp_path's database, in order."""
    with sqlite3.connect(tmp_path / "jarvis.db") as db:
        rows = db.execute("SELECT kind, resource, tick_id FROM events ORDER BY id")
        return [(kind, resource, tick_id) for kind, resource, tick_id in rows]


def test_a_silent_provider_with_unknowns_open_leaves_the_others_ticks_whole(
    tmp_path: Path, cloudrun: FakeCloudRun, apiserver: FakeApiServer
) -> None:
    """Cloud Run silent with two unknowns open: the daemon's first ticks each ask about
    them and finish (none cut at the tick timeout), and Kubernetes' crash-looping
    ``producer`` is restarted and applied within them; the unknowns stay open."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    anyio.run(seed_unknowns, url, 2)
    cloudrun.hang(path_contains=SERVICE_PATH)
    env = jarvis_env(tmp_path, JARVIS_CONFIG=str(config(tmp_path, cloudrun, apiserver)))

    with running(tmp_path, env, ready="/healthz") as daemon:
        deadline = time.monotonic() + 40 + 4 * TICK * TICKS  # a loaded machine's margin
        while True:
            metrics = get(f"{daemon.base}/metrics")[1]
            ticks = {
                outcome: sample(metrics, "jarvis_ticks_total", outcome=outcome) or 0.0
                for outcome in ("ok", "failed", "timed_out")
            }
            if sum(ticks.values()) >= TICKS:
                break
            assert time.monotonic() < deadline, f"{TICKS} ticks did not end: {ticks}"
            time.sleep(0.2)
        recorded = events(tmp_path)
        output = daemon.stop()

    assert ticks["timed_out"] == 0, (ticks, output[-3000:])
    assert ticks["ok"] >= TICKS, ticks
    first = [tick for kind, _, tick in recorded if kind == "tick.started"][:TICKS]
    finished = {tick for kind, _, tick in recorded if kind == "tick.finished"}
    assert set(first) <= finished
    restarted = [
        tick
        for kind, resource, tick in recorded
        if resource == K8S_SICK and kind == "action.applied"
    ]
    assert len(restarted) == 1 and restarted[0] in first, recorded
    assert service_reads(cloudrun) >= 2 * TICKS  # both unknowns asked each tick (and observed)
    applied = [resource for kind, resource, _ in recorded if kind == "action.applied"]
    assert applied == [K8S_SICK]  # nothing of Cloud Run's confirmed: it never answered
