"""Which attempts disruption budgets count, pinned by a property over arbitrary outcomes:
the guard's pre-check (`jarvis.loop.budgets.ChangeLog`, which `jarvis budgets` and the
gauge read too) and the fleet caps checked at write (`jarvis.store.fleetcap`) agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.loop import events as ev
from jarvis.loop.budgets import ChangeLog
from jarvis.model import (
    Action,
    BlockReason,
    ErrorKind,
    Event,
    EventKind,
    Outcome,
    ResourceRef,
    Restart,
)
from jarvis.safety import Budgets, DisruptionBudget
from jarvis.store import EventStore
from jarvis.store.fleetcap import Cap, FleetCapError

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
BUDGETS = Budgets([DisruptionBudget("all", HOUR, max_changes=100)])

#: Every way an intent can end, and whether it may have disrupted its target.
OUTCOMES: dict[str, tuple[Outcome | None, bool]] = {
    "open": (None, True),  # in flight, or orphaned: it may have been made
    "applied": (Outcome.success("done"), True),
    "unknown": (Outcome.timed_out("no answer"), True),
    "temporary": (Outcome.failure("throttled", code="Throttling"), True),
    "terminal": (Outcome.failure("denied", kind=ErrorKind.TERMINAL, code="AccessDenied"), True),
    "gone": (Outcome.failure("not found", kind=ErrorKind.GONE, code="NotFound"), False),
    "withheld": (Outcome.withheld(BlockReason.KILLSWITCH, "engaged"), False),
}

endings = st.lists(st.sampled_from(sorted(OUTCOMES)), max_size=12)


def intent(n: int) -> Event:
    return Event(
        kind=EventKind.ACTION_STARTED,
        ts=T0 + timedelta(seconds=n),
        idempotency_key=f"i{n}",
        resource=f"sim://s{n}",
        action_kind="restart",
        action_id=f"a{n}",
    )


def closing(n: int, outcome: Outcome) -> Event:
    action = Action(ResourceRef("sim", f"s{n}"), Restart(), "heal", "down")
    return ev.outcome_event("t", T0 + timedelta(seconds=n + 1), action, f"a{n}", outcome)


async def counted(names: list[str], read_at: int) -> tuple[int, int]:
    """What the change log and a fleet cap count, the log reading ``read_at`` outcomes at
    start and the rest in a later refresh."""
    store = await EventStore.in_memory()
    try:
        store.append([intent(n) for n in range(len(names))])
        outcomes = [(n, OUTCOMES[name][0]) for n, name in enumerate(names)]
        closed = [closing(n, outcome) for n, outcome in outcomes if outcome is not None]
        store.append(closed[:read_at])
        await store.flush()
        log = ChangeLog(BUDGETS)
        await log.load(store, T0 + timedelta(minutes=5))
        store.append(closed[read_at:])
        await store.flush()
        await log.refresh(store)
        in_log = len(log.current(T0 + timedelta(minutes=5)))
        # A cap of 0 refuses the next intent, saying how many it counted.
        cap = Cap(BlockReason.BUDGET, 0, since=T0, counts=lambda *_: True, detail=str)
        store.append([intent(99)])
        store.stage_caps("i99", [cap])
        with pytest.raises(FleetCapError) as refused:
            await store.flush()
        return in_log, int(refused.value.verdict.detail)
    finally:
        await store.aclose()


@settings(max_examples=60, deadline=None)
@given(names=endings, read_at=st.integers(0, 12))
def test_budgets_count_every_attempt_that_may_have_disrupted_and_no_other(
    names: list[str], read_at: int
) -> None:
    """Applied, unknown, failed and open attempts count; gone and withheld ones do not,
    read back at start or later, in the guard's pre-check and at write alike."""
    expected = sum(1 for name in names if OUTCOMES[name][1])
    assert anyio.run(counted, names, read_at) == (expected, expected)
