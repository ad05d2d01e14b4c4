"""Disruption budgets, pinned by properties over arbitrary proposals and clocks, and by cases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import Action, BlockReason, KillSwitchState, ResourceRef, Restart, Rollback, Scale
from jarvis.model.hours import Hours, WeeklyHours, parse_days
from jarvis.safety import (
    AllowList,
    AllowRule,
    Bounds,
    Budgets,
    Change,
    DisruptionBudget,
    Guard,
    GuardContext,
    RetryBudget,
)

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday
NAMES = ["api", "web", "worker", "prod/db", "prod/queue"]
FLEET = [ResourceRef(p, n) for p in ("sim", "ecs") for n in NAMES]
HOUR = timedelta(hours=1)

targets = st.sampled_from(FLEET)
params = st.sampled_from([Restart(), Scale(replicas=3), Rollback(version="v1")])
actions = st.builds(Action, target=targets, params=params, policy=st.just("p"), reason=st.just("r"))
steps = st.lists(
    st.tuples(st.integers(0, 5400), st.lists(actions, max_size=6)), min_size=1, max_size=40
)
budget_sets = st.lists(
    st.builds(
        DisruptionBudget,
        name=st.sampled_from(["a", "b", "c"]),
        window=st.sampled_from([timedelta(minutes=10), HOUR, timedelta(hours=3)]),
        max_changes=st.integers(0, 4),
        provider=st.sampled_from(["*", "sim", "ecs"]),
        kinds=st.sampled_from([frozenset({"*"}), frozenset({"restart"}), frozenset({"scale"})]),
        resources=st.sampled_from(["*", "prod/*", "api"]),
        per_resource=st.booleans(),
    ),
    min_size=1,
    max_size=3,
)


def guard(budgets: Sequence[DisruptionBudget]) -> Guard:
    return Guard(
        allowlist=AllowList([AllowRule(p, "*", frozenset("*")) for p in ("sim", "ecs")]),
        bounds=Bounds(max_actions_per_tick=1000),
        retry=RetryBudget(max_attempts=1000),
        budgets=Budgets(budgets),
    )


def drive(g: Guard, plan: list[tuple[int, list[Action]]]) -> list[Change]:
    """Run the guard over the plan as the loop does: each allowed action becomes a change."""
    now = START
    changes: list[Change] = []
    for advance, proposals in plan:
        now += timedelta(seconds=advance)
        for action in proposals:
            ctx = GuardContext(
                now=now,
                killswitch=KillSwitchState(engaged=False),
                changes=tuple(changes),
                fleet=FLEET,
            )
            if g.check(action, ctx).allowed:
                changes.append(Change(now, action.target, action.kind))
    return changes


def worst_window(budget: DisruptionBudget, changes: list[Change]) -> int:
    """The most matching changes any window of the budget's length ever held (per resource
    when the budget is per resource): windows ending at each change are the worst."""
    worst = 0
    for end in changes:
        inside = [
            c
            for c in changes
            if end.ts - budget.window < c.ts <= end.ts and budget.matches(c.target, c.kind)
        ]
        if budget.per_resource:
            counts = [sum(1 for c in inside if c.target == t) for t in {c.target for c in inside}]
            worst = max([worst, *counts])
        else:
            worst = max(worst, len(inside))
    return worst


@settings(max_examples=300)
@given(budget_sets, steps)
def test_no_window_ever_holds_more_changes_than_its_budget(
    budgets: list[DisruptionBudget], plan: list[tuple[int, list[Action]]]
) -> None:
    """Whatever the proposals and the clock, no window holds more than N matching changes."""
    changes = drive(guard(budgets), plan)
    for budget in budgets:
        assert worst_window(budget, changes) <= (budget.max_changes or 0)


@settings(max_examples=200)
@given(st.integers(0, 100), steps)
def test_a_percentage_is_of_the_matching_fleet_rounded_up(
    percent: int, plan: list[tuple[int, list[Action]]]
) -> None:
    """X% of the matching fleet, rounded up as Karpenter rounds, bounds every window."""
    budget = DisruptionBudget("pct", HOUR, max_percent=percent, provider="sim")
    changes = drive(guard([budget]), plan)
    matching = sum(1 for ref in FLEET if ref.provider == "sim")
    limit = -(-matching * percent // 100)
    assert budget.limit(FLEET) == limit
    assert worst_window(budget, changes) <= limit


def restart(name: str, provider: str = "sim") -> Action:
    return Action(ResourceRef(provider, name), Restart(), "heal", "unhealthy")


def held(g: Guard, action: Action, changes: Sequence[Change], now: datetime) -> bool:
    ctx = GuardContext(
        now=now, killswitch=KillSwitchState(engaged=False), changes=tuple(changes), fleet=FLEET
    )
    verdict = g.check(action, ctx)
    return not verdict.allowed and verdict.reason is BlockReason.BUDGET


def test_a_change_exactly_one_window_old_is_outside_it() -> None:
    """As Kubernetes treats its stabilization windows, the boundary instant is outside."""
    g = guard([DisruptionBudget("one", HOUR, max_changes=1)])
    changes = [Change(START, ResourceRef("sim", "api"), "restart")]
    assert held(g, restart("web"), changes, START + HOUR - timedelta(microseconds=1))
    assert not held(g, restart("web"), changes, START + HOUR)


def test_a_per_resource_budget_counts_only_the_actions_target() -> None:
    """Per resource, one restart of api does not hold a restart of web."""
    g = guard([DisruptionBudget("each", HOUR, max_changes=1, per_resource=True)])
    changes = [Change(START, ResourceRef("sim", "api"), "restart")]
    later = START + timedelta(minutes=5)
    assert held(g, restart("api"), changes, later)
    assert not held(g, restart("web"), changes, later)


def test_a_budget_names_the_spent_budget_and_its_count() -> None:
    """The verdict says which budget held the action, and how much of it is used."""
    g = guard(
        [DisruptionBudget("restarts-per-hour", HOUR, max_changes=1, kinds=frozenset({"restart"}))]
    )
    ctx = GuardContext(
        now=START + timedelta(minutes=1),
        killswitch=KillSwitchState(engaged=False),
        changes=(Change(START, ResourceRef("sim", "api"), "restart"),),
        fleet=FLEET,
    )
    verdict = g.check(restart("web"), ctx)
    assert verdict.reason is BlockReason.BUDGET
    assert "'restarts-per-hour'" in verdict.detail and "1 of 1" in verdict.detail
    scale = Action(ResourceRef("sim", "web"), Scale(replicas=3), "scaling", "load")
    assert g.check(scale, ctx).allowed


BUSINESS_HOURS = WeeklyHours(
    timezone="Europe/Berlin",
    windows=(Hours(time(9), time(17), parse_days(["mon", "tue", "wed", "thu", "fri"])),),
)


def test_no_restarts_of_production_during_business_hours() -> None:
    """A zero budget on a schedule holds inside it (Berlin time) and not outside it."""
    g = guard(
        [
            DisruptionBudget(
                "prod-business-hours",
                HOUR,
                max_changes=0,
                kinds=frozenset({"restart"}),
                resources="prod/*",
                schedule=BUSINESS_HOURS,
            )
        ]
    )
    monday_10_berlin = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # CET = UTC+1
    monday_17_berlin = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    saturday_10_berlin = datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
    assert held(g, restart("prod/db"), [], monday_10_berlin)
    assert not held(g, restart("api"), [], monday_10_berlin)
    assert not held(g, restart("prod/db"), [], monday_17_berlin)
    assert not held(g, restart("prod/db"), [], saturday_10_berlin)


def test_remaining_reads_none_off_schedule_and_the_busiest_resource_per_resource() -> None:
    """The rows the metric and the CLI show: off-schedule budgets do not limit."""
    budgets = Budgets(
        [
            DisruptionBudget("night", HOUR, max_changes=0, schedule=BUSINESS_HOURS),
            DisruptionBudget("each", HOUR, max_changes=3, per_resource=True),
            DisruptionBudget("fleet", HOUR, max_percent=50, kinds=frozenset({"restart", "scale"})),
        ]
    )
    now = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    api, web = ResourceRef("sim", "api"), ResourceRef("sim", "web")
    changes = [
        Change(now - timedelta(minutes=m), t, "restart") for m, t in ((1, api), (2, api), (3, web))
    ]
    rows = {(r.budget, r.kind): r for r in budgets.remaining(changes, FLEET, now)}
    assert rows["night", "*"].remaining is None
    assert (rows["each", "*"].used, rows["each", "*"].remaining) == (2, 1)
    assert rows["fleet", "restart"].limit == 5 and rows["fleet", "scale"].remaining == 2


def test_a_clock_stepping_back_does_not_refill_a_budget() -> None:
    """Changes stamped after now (the clock jumped back) still count against the window."""
    g = guard([DisruptionBudget("one", HOUR, max_changes=1)])
    changes = [Change(START, ResourceRef("sim", "api"), "restart")]
    assert held(g, restart("web"), changes, START - timedelta(minutes=10))
