"""The CLI as a new user reads it: whole names in a pipe, outcomes on outcome lines,
something to parse when there is nothing to do, clear errors, plain help."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.loop import events as ev
from jarvis.loop.ledger import RetryLedger
from jarvis.model import (
    Action,
    BlockReason,
    ErrorKind,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
    Restart,
    RetryState,
    Snapshot,
    Verdict,
)
from jarvis.safety.retry import RetryBudget
from jarvis.store import EventStore
from tests.cli.conftest import Jarvis, jarvis_env, seed

LONG = "sim://ai-dawg-ai-brain-eu-west-1-a-name-long-enough-to-be-cut-at-eighty-columns"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.anyio
async def test_retries_list_never_cuts_a_resource_name_in_a_pipe(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """At 80 columns and in a pipe, a quarantined row shows its whole URI and says so."""
    await seed(
        tmp_path,
        retries=[
            RetryState(
                LONG,
                "restart",
                consecutive_failures=3,
                quarantined=True,
                last_error="the container exited with status 137 three times in a row",
            ),
            RetryState("sim://ai-dawg-ai-brain", "restart", consecutive_failures=1),
        ],
    )
    result = jarvis("retries", "list", env=jarvis_env(tmp_path, COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    (row,) = [line for line in result.stdout.splitlines() if LONG in line]
    assert "yes" in row
    assert "three times in a row" in result.stdout


@pytest.mark.anyio
async def test_retries_list_leaves_out_an_attempt_taken_back(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """A first attempt the kill switch withheld, undone (`RetryLedger.undo`), lists nothing."""
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        ledger = RetryLedger(store, RetryBudget())
        action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy")
        attempted = ledger.attempted(action, T0)
        await store.flush()
        ledger.undo(attempted, None)
        ledger.stage(RetryState("sim://db", "restart", (T0,), consecutive_failures=1))
        await store.flush()
    finally:
        await store.aclose()
    table = jarvis("retries", "list")
    assert table.returncode == 0, table.stderr
    assert "sim://db" in table.stdout
    assert "sim://web" not in table.stdout
    listed = jarvis("retries", "list", "--json").stdout.splitlines()
    assert [json.loads(line)["resource"] for line in listed] == ["sim://db"]


def test_simulate_headers_are_never_cut_in_a_pipe(jarvis: Jarvis, tmp_path: Path) -> None:
    """The report's column headers and kinds print whole at 80 columns off a terminal."""
    result = jarvis(
        "simulate", "--days", "0.05", "--services", "5", env=jarvis_env(tmp_path, COLUMNS="80")
    )
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    for word in ("proposed", "timed_out", "set_weights", "after operator", "violations"):
        assert word in result.stdout, word


@pytest.mark.anyio
async def test_events_shows_outcomes_and_the_new_health(jarvis: Jarvis, tmp_path: Path) -> None:
    """`action.failed` and `action.unknown` show the outcome, not the proposal (recovery's
    unknown, with no detail, its reason); `resource.changed` the health."""
    action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy for 2 ticks")
    was = ResourceState(ResourceRef("sim", "web"), Health.HEALTHY, T0)
    now = ResourceState(ResourceRef("sim", "web"), Health.UNHEALTHY, T0, detail="crash loop")
    await seed(
        tmp_path,
        events=[
            ev.resource_changed("t1", T0, now, was),
            ev.outcome_event("t1", T0, action, "a1", Outcome.failure("exit 137")),
            ev.outcome_event("t2", T0, action, "a2", Outcome.success("restarted")),
            ev.outcome_event("t3", T0, action, "a3", Outcome.timed_out("no answer in 20s")),
            ev.unknown_outcome(ev.started("t4", T0, action, "a4"), T0),
        ],
    )
    result = jarvis("events")
    assert result.returncode == 0, result.stderr
    changed, failed, applied, timed_out, orphan = result.stdout.splitlines()
    assert changed.endswith("resource.changed sim://web — unhealthy (was healthy): crash loop")
    assert failed.endswith("action.failed sim://web restart — failed: exit 137")
    assert applied.endswith("action.applied sim://web restart — ok: restarted")
    assert timed_out.endswith("action.unknown sim://web restart — unknown: no answer in 20s")
    assert orphan.endswith(
        "action.unknown sim://web restart — unknown: the process ended between intent and "
        "outcome; counted as a failed attempt"
    )
    assert "unhealthy for 2 ticks" not in result.stdout


@pytest.mark.anyio
async def test_events_shows_a_withheld_action_as_blocked(jarvis: Jarvis, tmp_path: Path) -> None:
    """The `action.failed` closing an intent the kill switch withheld says blocked, not failed."""
    action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy for 2 ticks")
    detail = "engaged while the intent was written, not sent: stop everything"
    withheld = Outcome.withheld(BlockReason.KILLSWITCH, detail)
    await seed(tmp_path, events=[ev.outcome_event("t1", T0, action, "a1", withheld)])
    result = jarvis("events", "--kind", "action.failed")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.endswith(f"action.failed sim://web restart — blocked (killswitch): {detail}")


@pytest.mark.anyio
async def test_events_shows_an_action_whose_target_was_gone_as_gone(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """The `action.failed` of a target deleted since observe says gone, not failed."""
    action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy for 2 ticks")
    gone = Outcome.failure("sim://web not found", kind=ErrorKind.GONE, code="NotFound")
    await seed(tmp_path, events=[ev.outcome_event("t1", T0, action, "a1", gone)])
    result = jarvis("events", "--kind", "action.failed")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.endswith(
        "action.failed sim://web restart — gone (deleted since observed): sim://web not found"
    )


def test_a_tick_report_says_gone_for_a_target_deleted_since_observe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``tick``/``plan`` print a gone outcome as gone, in the table and in ``--json``."""
    from jarvis.cli.ticks import print_report
    from jarvis.loop.report import Decision, TickReport

    action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy for 2 ticks")
    gone = Outcome.failure("sim://web not found", kind=ErrorKind.GONE, code="NotFound")
    report = TickReport(
        tick_id="t1",
        started_at=T0,
        snapshot=Snapshot(taken_at=T0, resources={}),
        decisions=[Decision(action, Verdict.allow(), gone)],
    )
    print_report(report, as_json=True)
    (row,) = json.loads(capsys.readouterr().out)["decisions"]
    assert row["decision"] == "gone (deleted since observed)"
    print_report(report, as_json=False)
    table = capsys.readouterr().out
    assert "gone" in table and "failed" not in table


def test_a_policy_note_is_one_line_in_a_pipe(jarvis: Jarvis) -> None:
    """A note longer than 80 columns (an override of a resource not observed) is printed
    whole on one line, as `outcome unknown:` and `error:` are, not split mid-URI."""
    result = jarvis("restart", LONG, "--dry-run")
    assert result.returncode == 2, result.stderr
    note = f"operator: {LONG}: no such resource among the 6 observed; nothing proposed"
    assert note in result.stdout.splitlines(), result.stdout


def test_tick_and_plan_json_print_an_empty_result_to_parse(jarvis: Jarvis) -> None:
    """With nothing to do, `--json` still prints one object whose decisions are empty."""
    for command in ("plan", "tick"):
        result = jarvis(command, "--json")
        assert result.returncode == 0, result.stderr
        (line,) = result.stdout.splitlines()
        report = json.loads(line)
        assert report["decisions"] == [] and report["resources"] == 6, report


def test_resetting_a_resource_not_in_the_ledger_is_an_error(jarvis: Jarvis) -> None:
    """`retries reset sim://nope` exits 2 with one line and records nothing."""
    result = jarvis("retries", "reset", "sim://nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: sim://nope has no retry records (see `jarvis retries list`)"
    ]
    events = jarvis("events", "--json", "--kind", "retries.reset")
    assert events.returncode == 0 and events.stdout == ""


def test_help_shows_no_bool_after_flags_and_documents_dry_run(jarvis: Jarvis) -> None:
    """Plain flags print no `<bool>`; every override's --dry-run says what it does."""
    for command in ("tick", "run", "deploy", "restart", "rollback", "scale", "events"):
        result = jarvis(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout, command
    for command in ("deploy", "restart", "rollback", "scale"):
        dry = next(
            line for line in jarvis(command, "--help").stdout.splitlines() if "--dry-run" in line
        )
        assert "apply" in dry, (command, dry)


def test_config_works_after_the_subcommand(jarvis: Jarvis, tmp_path: Path) -> None:
    """`jarvis config check --config FILE` reads FILE, like the option before the command."""
    (tmp_path / "bad.toml").write_text("[loop]\ninterval = 'soon'\n")
    (tmp_path / "good.toml").write_text("dry_run = true\n")
    for args in (
        ("config", "check", "--config", "bad.toml"),
        ("config", "check", "-c", "bad.toml"),
        ("config", "check", "--config=bad.toml"),
        ("killswitch", "status", "--config", "bad.toml"),
    ):
        result = jarvis(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "loop.interval" in result.stderr
    good = jarvis("config", "check", "--json", "--config", "good.toml")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["dry_run"] is True


@pytest.mark.anyio
async def test_resetting_a_resource_whose_only_ledger_row_is_empty_is_an_error(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """An attempt taken back leaves an empty row: no record to reset, as `retries list` says.

    It answered "reset 1 retry record(s)" and recorded `retries.reset` for a
    resource `jarvis retries list` does not show.
    """
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        ledger = RetryLedger(store, RetryBudget())
        action = Action(ResourceRef("sim", "web"), Restart(), "heal", "unhealthy")
        attempted = ledger.attempted(action, T0)
        await store.flush()
        ledger.undo(attempted, None)
        ledger.stage(RetryState("sim://db", "restart", (T0,), consecutive_failures=1))
        ledger.stage(RetryState("sim://db", "scale"))
        await store.flush()
    finally:
        await store.aclose()
    empty = jarvis("retries", "reset", "sim://web")
    assert empty.returncode == 2, empty.stdout
    assert empty.stderr.strip().splitlines() == [
        "error: sim://web has no retry records (see `jarvis retries list`)"
    ]
    real = jarvis("retries", "reset", "sim://db")
    assert real.returncode == 0, real.stderr
    assert "reset 1 retry record(s) for sim://db" in real.stdout
    events = jarvis("events", "--json", "--kind", "retries.reset")
    assert events.returncode == 0, events.stderr
    assert [json.loads(line)["resource"] for line in events.stdout.splitlines()] == ["sim://db"]
