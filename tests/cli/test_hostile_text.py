"""Text from outside (a config value, an argument, a stored reason) printed back as it is.

The CLI prints with rich, which reads ``[...]`` as markup: a message holding
``[notify.slack]`` lost it, and ``[/x]`` ended the command in a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.model import RetryState
from tests.cli.conftest import Jarvis, seed


def test_an_error_message_keeps_its_brackets(jarvis: Jarvis, tmp_path: Path) -> None:
    """A config error naming ``[notify.slack]`` prints it, instead of reading it as a style."""
    (tmp_path / "report.toml").write_text('[report]\ndeliver_at = "08:00"\nchannels = ["slack"]\n')
    result = jarvis("--config", "report.toml", "config", "check")
    assert result.returncode == 2, result.stderr
    assert "report.channels names 'slack' but [notify.slack] is unset" in result.stderr


def test_an_argument_in_an_error_is_not_markup(jarvis: Jarvis) -> None:
    """A path holding ``[/x]`` is named in the error, not a MarkupError traceback."""
    result = jarvis("--config", "[/x]nope.toml", "config", "check")
    assert result.returncode == 2, result.stderr
    assert "config file not found: [/x]nope.toml" in result.stderr


def test_a_kill_switch_reason_prints_as_typed(jarvis: Jarvis) -> None:
    """``[sev1]`` and ``[/x]`` in a flip's reason and actor print as typed, and engage exits 0."""
    assert jarvis("db", "upgrade").returncode == 0
    engaged = jarvis("killswitch", "engage", "--reason", "[sev1] stop [/x]", "--actor", "[b]ob")
    assert engaged.returncode == 0, engaged.stderr
    assert "ENGAGED by [b]ob: [sev1] stop [/x]" in engaged.stdout
    status = jarvis("killswitch", "status")
    assert status.returncode == 0, status.stderr
    assert "by [b]ob at " in status.stdout
    assert ": [sev1] stop [/x]" in status.stdout
    released = jarvis("killswitch", "release", "--actor", "[/b]ob")
    assert released.returncode == 0, released.stderr
    assert "released by [/b]ob" in released.stdout


@pytest.mark.anyio
async def test_a_retry_row_prints_its_brackets(jarvis: Jarvis, tmp_path: Path) -> None:
    """A provider's error holding ``[/x]`` or ``[bold]`` prints as stored in ``retries list``."""
    error = "InvalidParameter: [bold]replicas[/x] out of range"
    await seed(tmp_path, retries=[RetryState("sim://[b]api", "restart", last_error=error)])
    result = jarvis("retries", "list")
    assert result.returncode == 0, result.stderr
    assert "sim://[b]api" in result.stdout
    assert error in result.stdout


HOSTILE = "db down\x1b]0;owned\x07\x1b[2J\n2026-01-01 00:00:00 killswitch.released — ok\x9b31m"
"""Sets the terminal's title, clears the screen, forges an event line, turns text red (C1 CSI)."""


@pytest.mark.anyio
async def test_control_characters_never_reach_the_terminal(jarvis: Jarvis, tmp_path: Path) -> None:
    """Escape sequences and newlines in stored text print as visible escapes, one line each."""
    await seed(tmp_path, retries=[RetryState("sim://api", "restart", last_error=HOSTILE)])
    assert jarvis("killswitch", "engage", "--reason", HOSTILE).returncode == 0
    for command in (["events"], ["killswitch", "status"], ["retries", "list"]):
        result = jarvis(*command)
        assert result.returncode == 0, result.stderr
        for control in ("\x1b", "\x07", "\x9b"):
            assert control not in result.stdout, (command, result.stdout)
        assert "\\x1b]0;owned\\x07\\x1b[2J\\n2026-01-01" in result.stdout.replace("\n", ""), command
    events = jarvis("events").stdout.splitlines()
    assert not any(line.startswith("2026-01-01 00:00:00") for line in events)


def test_a_silence_prints_its_match_and_reason_as_typed(jarvis: Jarvis) -> None:
    """``silence list`` shows brackets and control characters of a stored silence as text."""
    reason = "db [/x] [bold]down\x1b]0;owned\x07"
    added = jarvis("silence", "add", "-m", "sim://[/x]", "--for", "1h", "--reason", reason)
    assert added.returncode == 0, added.stderr
    listed = jarvis("silence", "list")
    assert listed.returncode == 0, listed.stderr
    assert "sim://[/x]" in listed.stdout
    assert "\x1b" not in listed.stdout
    assert "db [/x] [bold]down\\x1b]0;owned\\x07" in listed.stdout


def test_a_tick_report_prints_provider_text_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    """``tick``/``plan`` print an observe error, a note and a reason from outside as text."""
    from datetime import UTC, datetime

    from jarvis.cli.ticks import print_report
    from jarvis.loop.report import Decision, TickReport
    from jarvis.model import Action, BlockReason, ResourceRef, Restart, Snapshot, Verdict
    from jarvis.policies.base import Note

    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    hostile = "[/x] [bold]boom\x1b]0;owned\x07"
    action = Action(ResourceRef.parse("sim://web"), Restart(), "heal", f"unhealthy: {hostile}")
    report = TickReport(
        tick_id="t1",
        started_at=now,
        snapshot=Snapshot(taken_at=now, resources={}, errors={"ecs": f"AccessDenied: {hostile}"}),
        decisions=[Decision(action, Verdict(allowed=False, reason=BlockReason.KILLSWITCH))],
        notes=[("scaling", Note(f"sim://web: {hostile}"))],
    )

    print_report(report, as_json=False)

    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.count("[/x] [bold]boom\\x1b]0;owned\\x07") == 3, out


REVERSED = "sim://invoice\u202etxt.exe\u2066"
"""U+202E shows the rest of the line reversed (``exe.txt``), U+2066 opens an isolate."""


@pytest.mark.anyio
async def test_bidi_controls_never_reach_the_terminal(jarvis: Jarvis, tmp_path: Path) -> None:
    """A right-to-left override in a name or a reason prints as its escape, as in the report."""
    await seed(tmp_path, retries=[RetryState(REVERSED, "restart", last_error=f"down {REVERSED}")])
    assert jarvis("killswitch", "engage", "--reason", f"halt {REVERSED}").returncode == 0
    for command in (["events"], ["killswitch", "status"], ["retries", "list"]):
        result = jarvis(*command)
        assert result.returncode == 0, result.stderr
        for control in ("\u202e", "\u2066"):
            assert control not in result.stdout, (command, result.stdout)
        assert "sim://invoice\\u202etxt.exe\\u2066" in result.stdout.replace("\n", ""), command


def test_status_prints_replica_and_holder_names_as_typed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``status`` shows a replica id, host and lease holder holding ``[/x]`` or escapes as text."""
    from datetime import UTC, datetime, timedelta

    from jarvis.cli.status import print_status, status_json
    from jarvis.store.lease import LeaseRow, LeaseStatus, ReplicaRow

    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    replica = "[/x] [bold]r1\x1b]0;owned\x07\u202e"
    host = "[b]host\x1b[2J"
    lease = LeaseRow("loop", replica, 3, now, now, now + timedelta(seconds=10))
    shard = LeaseRow("shard-0[/x]", replica, 1, now, now, now - timedelta(seconds=5))
    for shards in ((), (shard,)):
        found = LeaseStatus(now, lease, (ReplicaRow(replica, host, 7, now, now, 3),), shards)
        print_status(status_json(found, 15.0))
        out = capsys.readouterr().out
        for control in ("\x1b", "\x07", "\u202e"):
            assert control not in out, out
        assert "[/x] [bold]r1\\x1b]0;owned\\x07\\u202e" in out, out
        assert "[b]host\\x1b[2J" in out, out
    assert "shard-0[/x]" in out, out


def test_an_error_prints_control_characters_as_escapes(jarvis: Jarvis) -> None:
    """A resource name pasted into a command comes back in its error as text, not as escapes."""
    assert jarvis("db", "upgrade").returncode == 0
    name = "sim://x\x1b]0;owned\x07\x1b[2J\u202e"
    for command in (["retries", "reset", name], ["restart", name, "--reason", "r"]):
        result = jarvis(*command)
        assert result.returncode == 2, result.stderr
        for control in ("\x1b", "\x07", "\u202e"):
            assert control not in result.stderr, (command, result.stderr)
        assert "sim://x\\x1b]0;owned\\x07\\x1b[2J\\u202e" in result.stderr, command


@pytest.mark.anyio
async def test_a_confirmation_prints_control_characters_as_escapes(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """``silence add`` and ``retries reset`` echo a pasted hostile name as text."""
    name = "sim://x\x1b]0;owned\x07\x1b[2J\u202e"
    await seed(tmp_path, retries=[RetryState(name, "restart", last_error="down")])
    for command in (
        ["silence", "add", "-m", name, "--for", "1h", "--reason", "r"],
        ["retries", "reset", name],
    ):
        result = jarvis(*command)
        assert result.returncode == 0, result.stderr
        for control in ("\x1b", "\x07", "\u202e"):
            assert control not in result.stdout, (command, result.stdout)
        assert "sim://x\\x1b]0;owned\\x07\\x1b[2J\\u202e" in result.stdout, command
