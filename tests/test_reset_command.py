"""The reset command Jarvis suggests pastes as one command, whatever the resource is named.

A quarantine's reason, an escalation's notification and a damaged ledger row's error
each end with ``jarvis retries reset RESOURCE`` for an operator to copy into a shell.
Resource names come from providers (and the simulated fleet names anything): written
bare, a name with a space, ``;`` or ``$(...)`` split into more arguments or ran more
shell. Each place's command is run by a real ``sh`` with ``jarvis`` swapped for
``printf``, which prints the words the shell made of it.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import Event, EventKind, Outcome
from jarvis.notify.alerts import changes_for
from jarvis.safety.retry import RetryBudget
from jarvis.store.codec import DamagedRowError, retry_from_row
from jarvis.text import command

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RESET = ["jarvis", "retries", "reset"]
HOSTILE = [
    "sim://a b",
    "sim://x;echo more",
    "sim://$(id)",
    "sim://it's",
    'sim://"q"',
    "sim://a`b`",
    "sim://back\\slash",
]
PLAIN = "ecs://prod/web-api_1"


def pasted(text: str) -> list[str]:
    """The words ``sh`` makes of the backquoted ``jarvis retries reset ...`` in ``text`` (or
    of ``text`` itself when it is the command), its command substitutions run, if any."""
    quoted = re.search(r"`(jarvis retries reset .*)`", text)
    line = quoted.group(1) if quoted else text
    assert line.startswith("jarvis ")
    shown = subprocess.run(
        ["sh", "-c", "printf '%s\\0' " + line.removeprefix("jarvis ")],
        capture_output=True,
        check=True,
    )
    return ["jarvis", *shown.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]]


@settings(max_examples=60)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_a_shell_makes_a_command_back_into_its_words(name: str) -> None:
    assert pasted(command(*RESET, name)) == [*RESET, name]


def test_a_plain_name_reads_as_written() -> None:
    assert command(*RESET, PLAIN) == f"jarvis retries reset {PLAIN}"


@pytest.mark.parametrize("resource", [*HOSTILE, PLAIN])
def test_a_quarantine_reason_pastes_as_one_command(resource: str) -> None:
    budget = RetryBudget()
    state = None
    now = T0
    for _ in range(3):
        now += timedelta(hours=1)  # past each backoff
        state = budget.attempted(state, resource, "restart", now)
        state, _ = budget.finished(state, Outcome.failure("still broken"), now)
    assert state is not None and state.quarantined
    detail = budget.check(state, now).detail
    assert pasted(detail) == [*RESET, resource], detail


@pytest.mark.parametrize("resource", [*HOSTILE, PLAIN])
def test_an_escalation_alert_pastes_as_one_command(resource: str) -> None:
    event = Event(
        kind=EventKind.ACTION_ESCALATED,
        ts=T0,
        idempotency_key="esc:1",
        resource=resource,
        action_kind="restart",
        policy="heal",
        reason="3 failed attempts",
        payload={"attempts": 3},
        action_id="a-1",
    )
    [change] = changes_for(event)
    assert pasted(change.reset) == [*RESET, resource], change.reset


@pytest.mark.parametrize("resource", [*HOSTILE, PLAIN])
def test_a_damaged_row_names_a_command_that_pastes(resource: str) -> None:
    row = {"resource": resource, "action_kind": "restart", "attempts": "not a list"}
    with pytest.raises(DamagedRowError) as raised:
        retry_from_row(row)
    assert pasted(str(raised.value)) == [*RESET, resource], str(raised.value)
