"""A provider gone silent, with unknown outcomes open or beside a silent metric source,
does not cut the daemon's ticks.

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

With a Prometheus source configured (``[metrics.prometheus]``, its real HTTP client
aimed at `tests.silent_server`) the source is read beside the observe: before, it was
read after it, each within the observe timeout, so the two silences took two observe
timeouts and a slow apply after them was cut at the tick timeout.
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
from tests.daemon import Daemon, get, running, sample
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.silent_server import silent_server
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


def config(
    tmp_path: Path,
    cloudrun: FakeCloudRun,
    apiserver: FakeApiServer,
    *,
    timeouts: tuple[float, float] = (OBSERVE, APPLY),
    tail: str = "",
) -> Path:
    """Both providers allowed to restart; Cloud Run's own request timeout far past the
    loop's, so a question or an observe it does not answer hangs until the loop cuts it.
    ``timeouts`` are the loop's observe and apply timeouts (the tick's and the interval
    their sum); ``tail`` goes under ``[kubernetes]``, the last table, and may add others."""
    observe, apply = timeouts
    path = tmp_path / "jarvis.toml"
    path.write_text(
        f"""
[loop]
interval = {observe + apply}
tick_timeout = {observe + apply}
observe_timeout = {observe}
apply_timeout = {apply}

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
{tail}""",
        encoding="utf-8",
    )
    return path


def events(tmp_path: Path) -> list[tuple[str, str | None, str | None]]:
    """(kind, resource, tick id) of every event in tmp_path's database, in order."""
    with sqlite3.connect(tmp_path / "jarvis.db") as db:
        rows = db.execute("SELECT kind, resource, tick_id FROM events ORDER BY id")
        return [(kind, resource, tick_id) for kind, resource, tick_id in rows]


def ended(daemon: Daemon, tick: float) -> dict[str, float]:
    """The daemon's ticks by outcome once `TICKS` have ended, ticking every ``tick`` s."""
    deadline = time.monotonic() + 40 + 4 * tick * TICKS  # a loaded machine's margin
    while True:
        metrics = get(f"{daemon.base}/metrics")[1]
        ticks = {
            outcome: sample(metrics, "jarvis_ticks_total", outcome=outcome) or 0.0
            for outcome in ("ok", "failed", "timed_out")
        }
        if sum(ticks.values()) >= TICKS:
            return ticks
        assert time.monotonic() < deadline, f"{TICKS} ticks did not end: {ticks}"
        time.sleep(0.2)


def restarted_whole(
    ticks: dict[str, float], recorded: list[tuple[str, str | None, str | None]]
) -> None:
    """The first `TICKS` ticks finished, and Kubernetes' ``producer`` was restarted and
    applied in one of them, once."""
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
        ticks = ended(daemon, TICK)
        recorded = events(tmp_path)
        output = daemon.stop()

    assert ticks["timed_out"] == 0, (ticks, output[-3000:])
    restarted_whole(ticks, recorded)
    assert service_reads(cloudrun) >= 2 * TICKS  # both unknowns asked each tick (and observed)
    applied = [resource for kind, resource, _ in recorded if kind == "action.applied"]
    assert applied == [K8S_SICK]  # nothing of Cloud Run's confirmed: it never answered


SLOW = (4.0, 8.0)
"""The loop's observe and apply timeouts for a silent source: the tick 12 s."""
SLOW_PATCH = 5.0
"""Kubernetes' answer to the restart: well within the apply timeout, but past what two
observe timeouts one after another leave of the tick (12 - 2 x 4 = 4 s); 3 s to spare now."""


def test_a_silent_provider_beside_a_silent_metric_source_leaves_the_others_ticks_whole(
    tmp_path: Path, cloudrun: FakeCloudRun, apiserver: FakeApiServer
) -> None:
    """Cloud Run silent and a Prometheus source silent (its real client held by a server
    that never answers), Kubernetes answering its restart of ``producer`` only after 5 s:
    the daemon's first ticks each finish (none cut at observe + apply), the restart
    applied within them, and both silences recorded."""
    observe, apply = SLOW
    cloudrun.hang(path_contains=SERVICE_PATH)
    apiserver.fault, apiserver.fault_verbs, apiserver.fault_times = "slow", {"patch"}, 1
    apiserver.slow_seconds = SLOW_PATCH
    with silent_server() as prometheus:
        # The clients' own timeouts past the loop's: only the loop cuts the silence, and
        # none cuts the slow restart (60 s is the most `timeout_seconds` takes).
        tail = f"""request_timeout = {apply - 0.5}

[metrics.prometheus]
url = "{prometheus.url}"
timeout_seconds = 60

[metrics.prometheus.queries]
requests_per_minute = 'sum by (service) (rate(requests_total{{service=~"$services"}}[1m]))'

[metrics.prometheus.services]
"k8s://default/consumer" = "consumer"
"""
        path = config(tmp_path, cloudrun, apiserver, timeouts=SLOW, tail=tail)
        env = jarvis_env(tmp_path, JARVIS_CONFIG=str(path))

        with running(tmp_path, env, ready="/healthz") as daemon:
            ticks = ended(daemon, observe + apply)
            recorded = events(tmp_path)
            output = daemon.stop()
        assert prometheus.held.is_set()  # the source asked, and was never answered

    assert ticks["timed_out"] == 0, (ticks, output[-3000:])
    restarted_whole(ticks, recorded)
    with sqlite3.connect(tmp_path / "jarvis.db") as db:
        query = "SELECT json_extract(payload, '$.actuator'), reason FROM events WHERE kind = ?"
        failed = dict(db.execute(query, ("observe.failed",)).fetchall())
    assert set(failed) == {"cloudrun", "prometheus"}, failed
    assert failed["cloudrun"] == f"observe timed out after {observe:g}s"
    # Its queries end a little before the loop would cut the read (`_query_timeout`).
    assert failed["prometheus"].startswith("unreachable: prometheus: requests_per_minute: no ")
