"""`jarvis restart|rollback|scale|deploy`: an operator's action through the daemon's own guard."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jarvis.model import RetryState
from tests.cli.conftest import Jarvis, one_object, seed
from tests.cloudrun.conftest import IMAGE, PROJECT, REGION
from tests.cloudrun.fake_server import FakeCloudRun
from tests.loopback import free_port

COACH = "sim://ai-dawg-vocal-coach"


def events_of(jarvis: Jarvis, *kinds: str) -> list[dict[str, Any]]:
    args = [arg for kind in kinds for arg in ("--kind", kind)]
    result = jarvis("events", "--json", "--limit", "1000", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_restart_is_applied_and_recorded_with_the_operator_as_actor(jarvis: Jarvis) -> None:
    """The action goes through the guard, is applied, and names who asked for it."""
    result = jarvis("restart", COACH, "--reason", "stuck since the deploy")
    assert result.returncode == 0, result.stderr
    assert "applied" in result.stdout
    started, applied = events_of(jarvis, "action.started", "action.applied")
    assert applied["resource"] == COACH and applied["action_kind"] == "restart"
    assert applied["policy"] == "operator"
    assert applied["payload"]["actor"] == started["payload"]["actor"] == f"cli:{getpass.getuser()}"
    assert applied["payload"]["proposal"] == "stuck since the deploy"


def test_rollback_and_scale_take_their_parameters(jarvis: Jarvis) -> None:
    """`rollback --to` and `scale N` reach the provider as typed parameters."""
    rolled = jarvis("rollback", COACH, "--to", "v1", "--json")
    assert rolled.returncode == 0, rolled.stderr + rolled.stdout
    assert [row["decision"] for row in json.loads(rolled.stdout)["decisions"]] == ["applied"]
    scaled = jarvis("scale", COACH, "3", "--json")
    assert scaled.returncode == 0, scaled.stderr + scaled.stdout
    assert one_object(scaled.stdout, scaled.stderr)["error"] is None
    (row,) = json.loads(scaled.stdout)["decisions"]
    assert row["decision"] == "applied" and json.loads(row["params"]) == {"replicas": 3}
    proposed = events_of(jarvis, "action.proposed")
    assert [e["payload"]["params"] for e in proposed] == [{"version": "v1"}, {"replicas": 3}]


def test_an_override_is_refused_by_the_kill_switch(jarvis: Jarvis) -> None:
    """With the switch engaged, every override is blocked, exits 1 and applies nothing."""
    assert jarvis("killswitch", "engage", "--reason", "incident").returncode == 0
    for args in (("restart", COACH), ("rollback", COACH, "--to", "v1"), ("scale", COACH, "2")):
        result = jarvis(*args)
        assert result.returncode == 1, (args, result.stdout)
        assert "blocked: killswitch" in result.stdout
    assert events_of(jarvis, "action.started", "action.applied") == []


def test_an_override_is_held_to_the_bounds_and_the_allow_list(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """Replicas past the bound, or a kind the allow-list does not permit, are refused."""
    too_many = jarvis("scale", COACH, "1000")
    assert too_many.returncode == 1 and "blocked: bounds" in too_many.stdout
    (tmp_path / "narrow.toml").write_text(
        "[[allowlist]]\nprovider = 'sim'\nresources = '*'\nactions = ['scale']\n"
    )
    refused = jarvis("restart", COACH, "--config", "narrow.toml")
    assert refused.returncode == 1 and "blocked: allowlist" in refused.stdout
    assert events_of(jarvis, "action.applied") == []


def test_a_dry_run_override_exits_0_and_applies_nothing(jarvis: Jarvis) -> None:
    """--dry-run checks the guard and records the refusal as dry_run; nothing is applied."""
    result = jarvis("restart", COACH, "--dry-run")
    assert result.returncode == 0, result.stdout
    assert "blocked: dry_run" in result.stdout
    assert events_of(jarvis, "action.started") == []


def test_a_malformed_uri_is_exit_2(jarvis: Jarvis) -> None:
    """A resource that is not provider://name is refused before anything opens."""
    for args in (("restart", "vocal-coach"), ("scale", "vocal-coach", "2")):
        result = jarvis(*args)
        assert result.returncode == 2 and "provider://name" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["restart", "vocal-coach"],
        ["scale", COACH, "2", "--config", "missing.toml"],
        ["tick", "--config", "missing.toml"],
        ["plan", "--config", "missing.toml"],
    ],
    ids=["malformed-uri", "override-config", "tick-config", "plan-config"],
)
def test_a_json_one_shot_refused_before_its_tick_prints_the_error_as_its_one_object(
    jarvis: Jarvis, argv: list[str]
) -> None:
    """Exit 2 with the one line on stderr, and on stdout one JSON object, ``{"error": that
    line}``: a script reading `--json` is never left with nothing to parse."""
    result = jarvis(*argv, "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert one_object(result.stdout, result.stderr).keys() == {"error"}


def test_an_override_of_a_resource_nobody_observed_is_exit_2_and_records_no_action(
    jarvis: Jarvis,
) -> None:
    """A typo is refused before the guard: no failed action, no escalation, no quarantine.

    Proposed, it failed at the provider as terminal, escalated (paging on-call
    for a typo) and quarantined the name for whatever resource later takes it.
    """
    typo = COACH[:-1]
    result = jarvis("scale", typo, "3", "--reason", "more")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no such resource: {typo}" in result.stderr
    assert f"did you mean {COACH}" in result.stderr
    assert events_of(jarvis, "action.started", "action.failed", "action.escalated") == []
    (note,) = events_of(jarvis, "policy.note")
    assert note["resource"] == typo and "no such resource" in note["reason"]
    ledger = jarvis("retries", "list", "--json")
    assert ledger.returncode == 0, ledger.stderr
    assert typo not in ledger.stdout


def test_a_rollback_with_no_version_and_none_before_is_exit_2_and_records_no_action(
    jarvis: Jarvis,
) -> None:
    """`jarvis rollback URI` with no --to, on a resource with no earlier version, asks for one.

    Proposed as an empty version, it failed at the provider as terminal,
    escalated and quarantined the service the operator meant to mend.
    """
    result = jarvis("rollback", COACH)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no version before this one" in result.stderr and "--to" in result.stderr
    assert events_of(jarvis, "action.started", "action.failed", "action.escalated") == []
    ledger = jarvis("retries", "list", "--json")
    assert ledger.returncode == 0, ledger.stderr
    assert COACH not in ledger.stdout


def test_an_override_of_a_kind_the_resources_provider_never_applies_is_exit_2(
    jarvis: Jarvis,
) -> None:
    """`jarvis start sim://…` is refused before the guard: `start` is for `local://` services.

    Proposed, the allow-list (`sim`, every kind) let it through, no actuator
    took it, and it failed as terminal: escalated, paged and quarantined a
    healthy service.
    """
    result = jarvis("start", COACH)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no provider applies start on sim://" in result.stderr
    assert "--to" not in result.stderr
    assert events_of(jarvis, "action.started", "action.failed", "action.escalated") == []
    ledger = jarvis("retries", "list", "--json")
    assert ledger.returncode == 0, ledger.stderr
    assert COACH not in ledger.stdout


def test_an_override_of_a_cloud_run_service_that_answers_404_is_exit_2_and_sends_nothing(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """A configured service Cloud Run says is not there is refused before the guard.

    Sent, the restart failed at the provider as terminal, escalated (paging
    on-call) and quarantined a service the README says is never acted on.
    """
    with FakeCloudRun() as fake:
        fake.state.add_service(PROJECT, REGION, "api", image=IMAGE)
        (tmp_path / "run.toml").write_text(
            f"[cloudrun]\nproject = '{PROJECT}'\nregion = '{REGION}'\n"
            "services = ['api', 'ghost']\ncredentials = 'anonymous'\n"
            f"api_endpoint = '{fake.endpoint}'\n"
            "[[allowlist]]\nprovider = 'cloudrun'\nresources = '*'\nactions = ['*']\n"
        )
        ghost = f"cloudrun://{PROJECT}/{REGION}/ghost"
        result = jarvis("restart", ghost, "--config", "run.toml")
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{ghost}: its provider reports it not found" in result.stderr
        assert "--to" not in result.stderr
        assert fake.patches() == []
    assert events_of(jarvis, "action.started", "action.failed", "action.escalated") == []
    ledger = jarvis("retries", "list", "--json")
    assert ledger.returncode == 0, ledger.stderr
    assert ghost not in ledger.stdout


def test_a_typo_is_exit_2_while_another_provider_fails_to_answer(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """The simulated fleet answered without the name: refused, though Cloud Run failed.

    With any provider failing, the typo was proposed, failed at the simulated
    fleet as terminal and was recorded against a name no service has.
    """
    (tmp_path / "two.toml").write_text(
        "[simulated]\nenabled = true\n"
        f"[cloudrun]\nproject = '{PROJECT}'\nregion = '{REGION}'\nservices = ['api']\n"
        f"credentials = 'anonymous'\napi_endpoint = 'http://127.0.0.1:{free_port()}'\n"
        "request_timeout = 2.0\n"
    )
    typo = COACH[:-1]
    result = jarvis("scale", typo, "3", "--config", "two.toml", "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    report = one_object(result.stdout, result.stderr)
    assert report["observe_errors"].keys() == {"cloudrun"}
    assert report["error"].startswith(f"no such resource: {typo}")
    assert f"no such resource: {typo}" in result.stderr
    assert f"did you mean {COACH}" in result.stderr
    assert events_of(jarvis, "action.started", "action.failed", "action.escalated") == []


@pytest.mark.anyio
async def test_an_override_is_held_to_the_quarantine_and_the_retry_budget(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """An operator's command spends the budget a policy's action does: a quarantined pair and
    a pair with three attempts in the last hour are refused, exit 1 and apply nothing;
    another kind on the same resource still goes through."""
    now = datetime.now(UTC)
    await seed(
        tmp_path,
        retries=[
            RetryState(COACH, "restart", (now,), consecutive_failures=3, quarantined=True),
            RetryState(COACH, "rollback", tuple(now - timedelta(minutes=m) for m in (30, 20, 10))),
        ],
    )

    quarantined = jarvis("restart", COACH)
    spent = jarvis("rollback", COACH, "--to", "v1")
    other = jarvis("scale", COACH, "2")

    assert quarantined.returncode == 1 and "blocked: quarantine" in quarantined.stdout
    assert spent.returncode == 1 and "blocked: retry_budget" in spent.stdout
    assert other.returncode == 0, other.stdout + other.stderr
    started = events_of(jarvis, "action.started")
    assert [(e["resource"], e["action_kind"]) for e in started] == [(COACH, "scale")]


def test_a_uri_longer_than_a_store_can_key_is_exit_2_in_one_line(jarvis: Jarvis) -> None:
    """Sent, its events could not be written on PostgreSQL; it is refused before anything opens."""
    result = jarvis("restart", "sim://" + "x" * 1100)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "longer than 1024 bytes" in result.stderr
