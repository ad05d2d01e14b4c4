"""A one-shot command whose action ends unknown, and who asks the provider about it later.

`jarvis restart` (a one-shot tick) against the fake Cloud Run Admin API, whose
update outlives ``cloudrun.operation_timeout``: the outcome is unknown. The
one-shot process ends there without asking again, so it says so: the outcome
is unknown, it counts as a failed attempt, and the next tick that acts on the
database asks Cloud Run (a one-shot's, `tests/cli/test_one_shot_asks.py`, or the
daemon's when it starts or next leads). The daemon started after it reads the
unknown back (`jarvis.loop.unknowns`) and, once Cloud Run has finished the
update, records it applied.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.cli.ticks import unknown_outcomes
from jarvis.loop.report import Decision, TickReport
from jarvis.model import Action, EventKind, Outcome, ResourceRef, Restart, Snapshot, Verdict
from tests.cli.conftest import Jarvis, jarvis_env
from tests.cloudrun.conftest import PROJECT, REGION
from tests.cloudrun.fake_server import FakeCloudRun

API = f"cloudrun://{PROJECT}/{REGION}/api"


@pytest.fixture
def env(tmp_path: Path, cloudrun: FakeCloudRun) -> dict[str, str]:
    config = tmp_path / "jarvis.toml"
    config.write_text(
        f"""
[[allowlist]]
provider = "cloudrun"
resources = "*"
actions = ["*"]

[cloudrun]
project = "{PROJECT}"
region = "{REGION}"
services = ["api"]
credentials = "anonymous"
api_endpoint = "{cloudrun.endpoint}"
request_timeout = 5
operation_timeout = 0.3
poll_initial = 0.01
poll_maximum = 0.05
""",
        encoding="utf-8",
    )
    return jarvis_env(tmp_path, JARVIS_CONFIG=str(config), JARVIS_HTTP__HOST="127.0.0.1")


def events(jarvis: Jarvis, env: dict[str, str], kind: EventKind) -> list[dict[str, object]]:
    done = jarvis("events", "--kind", kind.value, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_one_shot_says_its_outcome_is_unknown_and_who_will_ask(
    jarvis: Jarvis, env: dict[str, str]
) -> None:
    """The override's table shows the unknown outcome (exit 1: not known applied), and a
    line under it says it counts as a failed attempt until the next acting tick asks."""
    done = jarvis("restart", API, "--reason", "stuck", env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "timed_out" in done.stdout
    assert f"outcome unknown: restart of {API}" in done.stdout
    assert "next tick that acts on this database" in done.stdout
    unknown = events(jarvis, env, EventKind.ACTION_UNKNOWN)
    assert [e["resource"] for e in unknown] == [API]


def test_the_one_shot_json_lists_the_unknown_outcomes(jarvis: Jarvis, env: dict[str, str]) -> None:
    """``--json`` names each unknown action id and how it will be resolved."""
    done = jarvis("restart", API, "--reason", "stuck", "--json", env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    unknown = events(jarvis, env, EventKind.ACTION_UNKNOWN)
    assert [u["action_id"] for u in report["unknown_outcomes"]] == [unknown[0]["action_id"]]
    assert "next tick that acts on this database" in report["unknown_outcomes"][0]["resolution"]


def test_the_daemon_that_leads_next_confirms_a_one_shots_unknown(
    jarvis: Jarvis, env: dict[str, str], cloudrun: FakeCloudRun, database_url: str
) -> None:
    """`jarvis run` reads the unknown back when it starts or leads and records
    ``action.applied`` for the same action id once Cloud Run has finished."""
    env = {**env, "JARVIS_DATABASE_URL": database_url}
    done = jarvis("restart", API, "--reason", "stuck", env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    [unknown] = events(jarvis, env, EventKind.ACTION_UNKNOWN)
    cloudrun.state.finish_operations()

    daemon = jarvis("run", "--ticks", "1", "--http-port", "0", env=env, timeout=180)
    assert daemon.returncode == 0, daemon.stderr
    applied = events(jarvis, env, EventKind.ACTION_APPLIED)
    assert [e["action_id"] for e in applied] == [unknown["action_id"]]
    retries = jarvis("retries", "list", "--json", env=env)
    assert retries.returncode == 0, retries.stderr
    [row] = [json.loads(line) for line in retries.stdout.splitlines()]
    assert row["consecutive_failures"] == 0


def test_an_unknown_no_provider_can_prove_says_it_stays_unknown() -> None:
    """An unknown outcome the loop does not go on asking about (its actuator cannot prove
    a change, as the simulated fleet's) is not promised a daemon's question."""
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    action = Action(ResourceRef.parse("sim://api"), Restart(), "heal", "unhealthy")
    report = TickReport(tick_id="t1", started_at=now, snapshot=Snapshot(now, {}))
    report.decisions.append(Decision(action, Verdict.allow(), Outcome.timed_out("no answer")))

    [unknown] = unknown_outcomes(report)
    assert unknown["resource"] == "sim://api"
    assert "cannot be asked" in unknown["resolution"]
    assert "next tick" not in unknown["resolution"]

    report.asked_later = [unknown["action_id"]]
    [asked] = unknown_outcomes(report)
    assert "next tick that acts on this database" in asked["resolution"]
