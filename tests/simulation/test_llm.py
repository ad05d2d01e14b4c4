"""The simulated LLM platform: spend accrues and resets by month, the cost policy moves it.

Unit tests drive `SimulatedLlm` and its actuators directly on a virtual clock;
the end-to-end ones run the harness for an hour or two of simulated time with
no faults, so a budget stage is the only thing that moves the weights.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from jarvis.actuators.base import Actuator
from jarvis.config import Settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import (
    Action,
    ActionKind,
    Event,
    EventKind,
    Health,
    ResourceRef,
    ResourceState,
    RouteWeights,
    SetWeights,
    Snapshot,
)
from jarvis.policies.budget import read_spend
from jarvis.simulation import (
    FaultKind,
    InvariantChecker,
    ProviderCall,
    Rules,
    SimulationConfig,
    SimulationReport,
    plan_faults,
    run_simulation,
    simulation_settings,
)
from jarvis.simulation.llm import SimulatedLlm
from jarvis.simulation.llm_actuators import SimulatedRouting, SimulatedUsage
from jarvis.simulation.llm_routes import Route
from jarvis.simulation.llm_scenario import SIM_COST, SIM_TRAFFIC
from jarvis.simulation.provider import SimulatedProvider
from jarvis.simulation.run_config import START
from jarvis.simulation.tracking import Budget
from tests.actions import new_key

CHAT = ResourceRef("route", "chat", "route")
CHEAP_CHAT = {"gpt-4o": 0.0, "claude-haiku": 0.0, "gemini-flash": 1.0}
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RULES = Rules(
    allow=(("route", "*", frozenset({"set_weights"})),),
    max_actions_per_tick=5,
    max_replicas=20,
    max_attempts=3,
    retry_window=timedelta(hours=1),
    max_traffic_shift=0.5,
)


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return simulation_settings(spool_path=tmp_path / "spool.jsonl", **overrides)


def platform(tmp_path: Path, start: datetime = START) -> SimulatedLlm:
    return SimulatedLlm.from_settings(settings(tmp_path), seed=1, start=start)


def set_weights(weights: dict[str, float], route: ResourceRef = CHAT) -> Action:
    return Action(route, SetWeights(weights), "test", "why")


def test_spend_accrues_and_starts_again_at_the_month_start(tmp_path: Path) -> None:
    """January's spend grows to its last hour, is filed at midnight, and February starts at 0."""
    llm = platform(tmp_path, start=datetime(2026, 1, 31, 20, 0, tzinfo=UTC))
    evening = llm.month_to_date_usd()
    llm.advance(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    last_minute = llm.month_to_date_usd()
    llm.advance(datetime(2026, 2, 1, 0, 30, tzinfo=UTC))
    assert llm.month == "2026-02"
    assert evening < last_minute <= llm.closed_months["2026-01"]
    assert 0 < llm.month_to_date_usd() < 0.01 * llm.closed_months["2026-01"]
    state = llm.usage_state(llm.now)
    assert state.record_attributes()["month"] == "2026-02"
    assert state.metrics["month_to_date_usd"] == pytest.approx(llm.month_to_date_usd(), abs=1e-5)


def test_a_clock_that_goes_back_accrues_nothing(tmp_path: Path) -> None:
    """Usage is integrated once: stepping back, then forward to the same moment, adds nothing."""
    llm = platform(tmp_path)
    llm.advance(START + timedelta(minutes=10))
    spent = llm.month_to_date_usd()
    llm.advance(START + timedelta(minutes=5))
    llm.advance(START + timedelta(minutes=10))
    assert llm.month_to_date_usd() == spent


def test_january_at_the_configured_weights_overspends_the_simulated_budget(
    tmp_path: Path,
) -> None:
    """The calibration: untouched, January costs well over budget; at the start it is under 80 %."""
    llm = platform(tmp_path)
    budget = float(SIM_COST["monthly_budget_usd"])
    assert llm.month_to_date_usd() < 0.8 * budget
    llm.advance(datetime(2026, 2, 1, tzinfo=UTC))
    assert llm.closed_months["2026-01"] > 1.15 * budget


def test_the_usage_resource_reads_as_the_cost_policy_expects(tmp_path: Path) -> None:
    """``cost://llm`` carries the `llm_usage` metrics and attributes, and `read_spend` parses it."""
    llm = platform(tmp_path)
    state = llm.usage_state(START)
    assert set(state.metrics) == {
        "month_to_date_usd",
        "forecast_month_end_usd",
        "requests_month_to_date",
    }
    assert set(state.record_attributes()) == {
        "month",
        "window_days",
        "by_model",
        "by_route",
        "performance",
    }
    chat = state.record_attributes()["by_route"]["chat"]
    assert set(chat) == {"cost_usd", "requests", "input_tokens", "output_tokens", "by_model"}
    performance = state.record_attributes()["performance"]["chat"]["gpt-4o"]
    assert set(performance) == {
        "requests",
        "success_rate",
        "mean_latency_ms",
        "cost_usd",
        "input_tokens",
        "output_tokens",
    }
    spend = read_spend(
        Snapshot(taken_at=START, resources={"cost://llm": state}), START, include_cloud=True
    )
    assert spend is not None
    assert spend.llm_usd == pytest.approx(llm.month_to_date_usd(), abs=1e-5)
    assert spend.forecast_usd > spend.llm_usd


@pytest.mark.anyio
async def test_routes_read_as_the_routing_actuator_publishes_them(tmp_path: Path) -> None:
    """``route://<name>`` has the routing actuator's attributes; ``seeded`` is true once."""
    llm = platform(tmp_path)
    routing = SimulatedRouting(llm, VirtualClock(START))
    first = {str(state.ref): state for state in await routing.observe()}
    again = await routing.observe()
    chat = first["route://chat"]
    assert set(first) == {"route://chat", "route://code", "route://summarize"}
    assert set(chat.record_attributes()) == {
        "weights",
        "weights_version",
        "configured_weights",
        "models",
        "floors",
        "updated_at",
        "seeded",
    }
    assert chat.health is Health.HEALTHY
    assert chat.record_attributes()["weights"] == {
        "gpt-4o": 0.6,
        "claude-haiku": 0.2,
        "gemini-flash": 0.2,
    }
    assert chat.record_attributes()["seeded"] is True
    assert all(state.record_attributes()["seeded"] is False for state in again)


def test_a_route_read_twice_at_one_instant_is_one_state_until_a_write(tmp_path: Path) -> None:
    """Routes read again at the same instant are the same states; a write shows at once."""
    llm = platform(tmp_path)
    first = llm.route_states(START)
    assert all(a is b for a, b in zip(first, llm.route_states(START), strict=True))
    seeded = llm.route_states(START, seeded=frozenset({"chat"}))
    assert seeded[0].attributes["seeded"] is True
    assert seeded[0].attributes["updated_at"] == START.isoformat()
    assert llm.set_weights(set_weights(CHEAP_CHAT), START).ok
    chat = llm.route_states(START)[0]
    assert chat.weights is not None
    assert dict(chat.weights.weights) == CHEAP_CHAT
    later = START + timedelta(minutes=1)
    assert llm.route_states(later)[0].observed_at == later


def test_a_route_state_follows_each_seed_and_write_and_is_seeded_on_its_tick_only(
    tmp_path: Path,
) -> None:
    """A seed's time, a write's weights, health and detail show at once; ``seeded`` once only."""
    route = Route(
        "chat", settings(tmp_path).routing.routes["chat"], SIM_TRAFFIC["chat"], [], (0, 0)
    )
    later, latest = START + timedelta(seconds=30), START + timedelta(seconds=60)
    route.seed(START)
    seeded = route.state(START, seeded=True)
    assert (seeded.attributes["seeded"], seeded.attributes["updated_at"]) == (
        True,
        START.isoformat(),
    )
    unseeded = route.state(later)
    assert (unseeded.attributes["seeded"], unseeded.attributes["updated_at"]) == (
        False,
        START.isoformat(),
    )
    route.write({"gpt-4o": 0.5, "claude-haiku": 0.2, "gemini-flash": 0.2}, later)
    broken = route.state(later)
    assert broken.health is Health.DEGRADED
    assert broken.detail == (
        "v2 gpt-4o=0.5 claude-haiku=0.2 gemini-flash=0.2 (weights sum to 0.9, not 1)"
    )
    assert broken.attributes["updated_at"] == later.isoformat()
    route.write(CHEAP_CHAT, latest)
    mended = route.state(latest)
    assert (mended.health, mended.detail) == (
        Health.HEALTHY,
        "v3 gpt-4o=0 claude-haiku=0 gemini-flash=1",
    )
    assert mended.weights == RouteWeights(CHEAP_CHAT, 3, {})
    assert mended.attributes == {
        "configured_weights": {"gpt-4o": 0.6, "claude-haiku": 0.2, "gemini-flash": 0.2},
        "models": ["gpt-4o", "claude-haiku", "gemini-flash"],
        "updated_at": latest.isoformat(),
        "seeded": False,
    }


@pytest.mark.anyio
async def test_cheaper_weights_lower_the_spend_rate(tmp_path: Path) -> None:
    """An hour of chat on its cheapest model costs far less than an hour at the configured mix."""
    clock = VirtualClock(START)
    changed, unchanged = platform(tmp_path), platform(tmp_path)
    outcome = await SimulatedRouting(changed, clock).apply(set_weights(CHEAP_CHAT), new_key())
    assert outcome.ok, outcome.detail
    assert changed.weights("chat") == CHEAP_CHAT
    before = _chat_cost(changed)
    for llm in (changed, unchanged):
        llm.advance(START + timedelta(hours=1))
    cheap_hour = _chat_cost(changed) - before
    usual_hour = _chat_cost(unchanged) - before
    assert 0 < cheap_hour < 0.1 * usual_hour
    assert changed.baseline_month_to_date_usd() == pytest.approx(unchanged.month_to_date_usd())


def _chat_cost(llm: SimulatedLlm) -> float:
    chat = llm.usage_state(llm.now).record_attributes()["by_route"]["chat"]
    return float(chat["cost_usd"])


@pytest.mark.anyio
async def test_a_write_the_routing_actuator_would_refuse_changes_nothing(tmp_path: Path) -> None:
    """Weights that break the floor of ``code``, or name a model it does not allow, are terminal."""
    llm = platform(tmp_path)
    routing = SimulatedRouting(llm, VirtualClock(START))
    code = ResourceRef("route", "code", "route")
    below_floor = await routing.apply(
        set_weights({"claude-sonnet": 0.2, "gpt-4o": 0.8}, code), new_key()
    )
    unknown = await routing.apply(set_weights({"claude-haiku": 1.0}, code), new_key())
    assert (below_floor.error_code, unknown.error_code) == ("invalid_weights", "invalid_weights")
    assert llm.weights("code") == {"claude-sonnet": 0.7, "gpt-4o": 0.3}


@pytest.mark.anyio
async def test_route_writes_go_through_the_providers_faults_and_witness(tmp_path: Path) -> None:
    """During an API-error episode a route write fails, and the witness still logs it."""
    llm = platform(tmp_path)
    clock = VirtualClock(START)
    provider = SimulatedProvider(_fleet(), clock, seed=1)
    provider.start_episode(FaultKind.API_ERRORS, START + timedelta(minutes=5), 1.0)
    routing = SimulatedRouting(llm, clock, api=provider)
    failed = await routing.apply(set_weights(CHEAP_CHAT), new_key())
    clock.advance(600)
    written = await routing.apply(set_weights(CHEAP_CHAT), new_key())
    calls = provider.drain()
    assert (failed.error_code, written.ok) == ("InternalError", True)
    assert [call.action.kind for call in calls if call.action] == [ActionKind.SET_WEIGHTS] * 2
    assert calls[0].weights_before == {"gpt-4o": 0.6, "claude-haiku": 0.2, "gemini-flash": 0.2}
    assert calls[1].weights_before == calls[0].weights_before


def _fleet() -> Any:
    from jarvis.actuators.sim import SimulatedFleet

    return SimulatedFleet(seed=1, services=1, script=False, start=START)


def test_an_llm_surge_multiplies_a_routes_spend_until_it_ends(tmp_path: Path) -> None:
    """Tripled chat traffic costs more for its hour; after it ends, both platforms accrue alike."""
    surged, calm = platform(tmp_path), platform(tmp_path)
    assert surged.surge("chat", 3.0, START + timedelta(hours=1))
    assert not surged.surge("no-such-route", 3.0, START + timedelta(hours=1))
    for llm in (surged, calm):
        llm.advance(START + timedelta(hours=1))
    gap = surged.month_to_date_usd() - calm.month_to_date_usd()
    for llm in (surged, calm):
        llm.advance(START + timedelta(hours=2))
    assert gap > 0
    assert surged.month_to_date_usd() - calm.month_to_date_usd() == pytest.approx(gap)
    plan = plan_faults(
        seed=1,
        start=START,
        days=10,
        services=["api"],
        kinds=(FaultKind.LLM_SURGE,),
        routes=["chat", "code"],
    )
    assert plan
    assert {fault.target for fault in plan} <= {"chat", "code"}


def _route(weights: dict[str, float], floors: dict[str, float] | None = None) -> ResourceState:
    return ResourceState(CHAT, Health.HEALTHY, T0, weights=RouteWeights(weights, 1, floors or {}))


def _violations(states: list[ResourceState]) -> list[str]:
    checker = InvariantChecker(RULES)
    checker.end_tick("t1", states)
    return [violation.invariant for violation in checker.violations]


def test_the_weights_invariant_catches_a_broken_route() -> None:
    """A sum off 1, a negative weight, a floor broken or no weights at all: each is caught."""
    assert _violations([_route({"a": 0.5, "b": 0.5}, {"a": 0.5})]) == []
    assert _violations([_route({"a": 0.5, "b": 0.4})]) == ["capacity_bounds"]
    assert _violations([_route({"a": 1.2, "b": -0.2})]) == ["capacity_bounds"]
    assert _violations([_route({"a": 0.3, "b": 0.7}, {"a": 0.5})]) == ["capacity_bounds"]
    assert _violations([_route({})]) == ["capacity_bounds"]
    checker = InvariantChecker(RULES)
    checker.end_tick("t1", [_route({"a": 1.0})])
    assert checker.checks == {"capacity_bounds.weights": 1}


def _write(weights: dict[str, float], held: dict[str, float]) -> list[str]:
    action = set_weights(weights)
    record = [
        Event(
            kind=kind,
            ts=T0,
            idempotency_key=f"k{kind.value}",
            tick_id="t1",
            resource=str(CHAT),
            action_kind="set_weights",
            payload={"params": action.params_json()},
            action_id="t1:route://chat:set_weights",
        )
        for kind in (EventKind.ACTION_STARTED, EventKind.ACTION_APPLIED)
    ]
    checker = InvariantChecker(RULES)
    checker.feed_events(record)
    checker.feed_calls([ProviderCall(0, T0, "apply", action, weights_before=held)])
    checker.end_tick("t1", [])
    return [violation.invariant for violation in checker.violations]


def test_a_write_moving_a_model_more_than_the_traffic_shift_bound_is_caught() -> None:
    """0.6 of gpt-4o's traffic moved in one write breaks a 0.5 bound; 0.5 does not."""
    held = {"gpt-4o": 0.6, "claude-haiku": 0.2, "gemini-flash": 0.2}
    assert _write(CHEAP_CHAT, held) == ["allowlist_bounds"]
    half = {"gpt-4o": 0.1, "claude-haiku": 0.2, "gemini-flash": 0.7}
    assert _write(half, held) == []


def test_the_budget_tracker_closes_a_month_at_the_first_tick_of_the_next() -> None:
    """The last January observation is January's month end; alerts are listed with their month."""
    budget = Budget(1000.0, unmanaged=lambda: 1500.0)
    late = datetime(2026, 1, 31, 23, 59, 30, tzinfo=UTC)
    alert = Event(
        kind=EventKind.ALERT,
        ts=late,
        idempotency_key="a",
        payload={"stage": "cheapest", "month": "2026-01", "spend_usd": 1000.5},
    )
    budget.feed([alert])
    budget.observe(_spend(1100.0, late), late)
    budget.observe(_spend(3.0, late + timedelta(minutes=1)), late + timedelta(minutes=1))
    months = budget.as_dict()["months"]
    assert isinstance(months, list)
    january, february = months
    assert january["month"] == "2026-01"
    assert (january["spent_usd"], january["complete"], january["within_budget"]) == (
        1100.0,
        True,
        False,
    )
    assert january["unmanaged_usd"] == 1500.0
    assert [a["stage"] for a in january["alerts"]] == ["cheapest"]
    assert (february["spent_usd"], february["complete"]) == (3.0, False)


def _spend(usd: float, now: datetime) -> dict[str, ResourceState]:
    state = ResourceState(
        ResourceRef("cost", "llm", "cost"),
        Health.HEALTHY,
        now,
        metrics={"month_to_date_usd": usd},
    )
    return {"cost://llm": state}


async def _run(
    tmp_path: Path, hours: float, budget: float | None = None, seed: int = 4
) -> SimulationReport:
    cost = dict(SIM_COST) if budget is None else {**SIM_COST, "monthly_budget_usd": budget}
    config = SimulationConfig(seed=seed, days=hours / 24, services=1, faults=())
    return await run_simulation(settings(tmp_path, cost=cost), config)


@pytest.mark.anyio
async def test_the_cost_policys_shift_lowers_spend_in_a_simulated_run(tmp_path: Path) -> None:
    """With the month already at 92 % of budget, the policy shifts traffic and spends less."""
    already = platform(tmp_path).month_to_date_usd()
    calm = await _run(tmp_path, 2)
    shifted = await _run(tmp_path, 2, budget=already / 0.92)
    assert calm.ok, [v.as_dict() for v in calm.violations]
    assert shifted.ok, [v.as_dict() for v in shifted.violations]
    (calm_month,) = calm.budget["months"]
    (shifted_month,) = shifted.budget["months"]
    assert [a["stage"] for a in shifted_month["alerts"]] == ["shift"]
    assert calm_month["alerts"] == []
    assert shifted.actions["actions"]["set_weights"]["applied"] >= 3
    calm_rate = calm_month["spent_usd"] - already
    shifted_rate = shifted_month["spent_usd"] - already
    assert shifted_rate < 0.85 * calm_rate
    assert shifted_month["unmanaged_usd"] == calm_month["unmanaged_usd"]


@pytest.mark.anyio
async def test_a_short_run_reports_the_month_with_spend_and_budget(tmp_path: Path) -> None:
    """An hour's report lists January so far against the budget, and its summary says so."""
    report = await _run(tmp_path, 1, seed=2)
    assert report.ok
    (month,) = report.as_dict()["budget"]["months"]
    assert month["month"] == "2026-01"
    assert month["budget_usd"] == SIM_COST["monthly_budget_usd"]
    assert 0 < month["spent_usd"] < month["budget_usd"]
    assert month["complete"] is False
    assert report.checks["capacity_bounds.weights"] == 3 * report.ticks
    assert report.as_dict()["invariants"]["capacity_bounds"]["checks"] == 4 * report.ticks
    console = Console(record=True, width=200)
    report.render(console)
    assert "LLM budget 2026-01 (to 2026-01-05 08:59, month not over): spent $" in (
        console.export_text()
    )


def test_a_month_end_line_shows_spend_budget_and_the_stages() -> None:
    """The summary prints a closed month's share of budget, the unmanaged figure and the alerts."""
    report = dataclasses.replace(
        SimulationReport(1, 30, 5, [], ["cost"], "sim1", "memory://"),
        budget={
            "months": [
                {
                    "month": "2026-01",
                    "complete": True,
                    "spent_usd": 12628.57,
                    "budget_usd": 12000.0,
                    "used": 1.0524,
                    "within_budget": False,
                    "unmanaged_usd": 15256.9,
                    "alerts": [
                        {"stage": "alert", "at": "2026-01-21T15:30:01+00:00", "spend_usd": 9600.16}
                    ],
                }
            ]
        },
    )
    console = Console(record=True, width=200)
    report.render(console)
    text = console.export_text()
    assert (
        "LLM budget 2026-01 (month end): spent $12,628.57 of $12,000.00 (105%), over budget; "
        "left at the configured weights: $15,256.90 (127%)" in text
    )
    assert "alert at 01-21 15:30 ($9,600.16)" in text


def test_settings_without_llm_routes_get_the_simulated_ones(tmp_path: Path) -> None:
    """The simulation enables cost and routing and allow-lists SET_WEIGHTS on its routes only."""
    built = settings(tmp_path)
    assert built.cost.enabled
    assert built.routing.enabled
    assert set(built.routing.routes) == {"chat", "code", "summarize"}
    assert any(
        entry.provider == "route" and entry.actions == ["set_weights"] for entry in built.allowlist
    )
    assert any(entry.provider == "sim" for entry in built.allowlist)
    usage = SimulatedUsage(platform(tmp_path), VirtualClock(START))
    assert not isinstance(usage, Actuator)
