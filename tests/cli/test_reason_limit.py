"""A reason longer than any surface records is refused by the CLI too.

The admin API and the status page refuse a reason past 500 characters; the CLI took
any length, so a kill switch engaged with a 100,000-character reason was shown whole
by `GET /v1/killswitch`, the page, `jarvis killswitch status` and every notification.
Each command taking ``--reason`` (the kill switch, the overrides, silences) now refuses
one past `jarvis.model.MAX_REASON_CHARS` with one line and exit 2, before it changes
anything.
"""

from __future__ import annotations

import json

import pytest

from jarvis.model import MAX_REASON_CHARS
from tests.cli.conftest import Jarvis, said_error

LONG = "x" * (MAX_REASON_CHARS + 1)


@pytest.mark.parametrize(
    "command",
    [
        ("killswitch", "engage"),
        ("killswitch", "release"),
        ("scale", "sim://ai-dawg-ai-brain", "3"),
        ("restart", "sim://ai-dawg-ai-brain"),
        ("silence", "add", "--match", "*", "--for", "1h"),
    ],
    ids=["engage", "release", "scale", "restart", "silence"],
)
def test_a_reason_past_the_limit_is_refused_before_anything_changes(
    jarvis: Jarvis, command: tuple[str, ...]
) -> None:
    """One line naming the limit, exit 2, and nothing recorded: the switch as it was,
    no silence, no event."""
    assert jarvis("db", "upgrade").returncode == 0
    result = jarvis(*command, "--reason", LONG)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said_error(result.stderr) == (
        f"--reason: at most {MAX_REASON_CHARS} characters (this one has {len(LONG)})"
    )
    assert jarvis("killswitch", "status").stdout.startswith("released")
    listed = jarvis("silence", "list", "--json")
    assert listed.returncode == 0 and listed.stdout == "", listed.stdout + listed.stderr
    events = jarvis("events", "--json")
    assert all(json.loads(line)["kind"] == "killswitch" for line in events.stdout.splitlines())
    assert LONG not in events.stdout


def test_a_reason_at_the_limit_is_recorded_whole(jarvis: Jarvis) -> None:
    """The limit itself is a reason the switch keeps, as the admin API does."""
    reason = "y" * MAX_REASON_CHARS
    assert jarvis("db", "upgrade").returncode == 0
    assert jarvis("killswitch", "engage", "--reason", reason).returncode == 0
    status = json.loads(jarvis("killswitch", "status", "--json").stdout)
    assert status["engaged"] is True and status["reason"] == reason
