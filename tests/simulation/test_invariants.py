"""The invariant checker catches each kind of violation in hand-built records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from jarvis.model import (
    JSON,
    Action,
    ActionParams,
    Event,
    EventKind,
    Health,
    Replicas,
    ResourceRef,
    ResourceState,
    Restart,
    Rollback,
    RouteWeights,
    Scale,
)
from jarvis.simulation import InvariantChecker, ProviderCall, Rules

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RULES = Rules(
    allow=(("sim", "*", frozenset({"restart", "scale"})),),
    max_actions_per_tick=2,
    max_replicas=20,
    max_attempts=3,
    retry_window=timedelta(hours=1),
)


class Record:
    """Builds a store-like event sequence: intents and outcomes with matching ids."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._n = 0

    def _key(self) -> str:
        self._n += 1
        return f"k{self._n}"

    def flip(self, engaged: bool, at: datetime = T0) -> Record:
        kind = EventKind.KILLSWITCH_ENGAGED if engaged else EventKind.KILLSWITCH_RELEASED
        self.events.append(Event(kind=kind, ts=at, idempotency_key=self._key()))
        return self

    def start(
        self,
        resource: str = "sim://api",
        kind: str = "restart",
        *,
        at: datetime = T0,
        tick: str = "t1",
        action_id: str | None = None,
        params: dict[str, object] | None = None,
    ) -> Record:
        self.events.append(
            Event(
                kind=EventKind.ACTION_STARTED,
                ts=at,
                idempotency_key=self._key(),
                tick_id=tick,
                resource=resource,
                action_kind=kind,
                payload={"params": params or {}},
                action_id=action_id or f"{tick}:{resource}:{kind}",
            )
        )
        return self

    def outcome(
        self,
        resource: str = "sim://api",
        kind: str = "restart",
        *,
        tick: str = "t1",
        ok: bool = True,
        action_id: str | None = None,
    ) -> Record:
        self.events.append(
            Event(
                kind=EventKind.ACTION_APPLIED if ok else EventKind.ACTION_FAILED,
                ts=T0,
                idempotency_key=self._key(),
                tick_id=tick,
                resource=resource,
                action_kind=kind,
                action_id=action_id or f"{tick}:{resource}:{kind}",
            )
        )
        return self

    def unknown(self, *, action_id: str = "t1:sim://api:restart") -> Record:
        """Close the intent ``action_id`` as unknown."""
        return self._closing(EventKind.ACTION_UNKNOWN, action_id, {})

    def confirm(self, *, action_id: str = "t1:sim://api:restart") -> Record:
        """Record the later ``action.applied`` that confirms ``action_id``'s change made."""
        return self._closing(EventKind.ACTION_APPLIED, action_id, {"confirmed": True})

    def _closing(self, kind: EventKind, action_id: str, payload: dict[str, JSON]) -> Record:
        tick, resource, action = action_id.split(":", 1)[0], "sim://api", "restart"
        self.events.append(
            Event(
                kind=kind,
                ts=T0,
                idempotency_key=self._key(),
                tick_id=tick,
                resource=resource,
                action_kind=action,
                payload=payload,
                action_id=action_id,
            )
        )
        return self

    def reset(self, resource: str, at: datetime) -> Record:
        self.events.append(
            Event(
                kind=EventKind.RETRIES_RESET, ts=at, idempotency_key=self._key(), resource=resource
            )
        )
        return self


def state(name: str, desired: int, low: int | None, high: int | None) -> ResourceState:
    return ResourceState(
        ref=ResourceRef("sim", name),
        health=Health.HEALTHY,
        observed_at=T0,
        replicas=Replicas(desired, desired, 0, low, high),
    )


def check(
    record: Record,
    calls: Sequence[ProviderCall] = (),
    states: Sequence[ResourceState] = (),
    tick: str = "t1",
) -> list[str]:
    checker = InvariantChecker(RULES)
    checker.feed_events(record.events)
    checker.feed_calls(calls)
    checker.end_tick(tick, states)
    return [violation.invariant for violation in checker.violations]


def apply_call(
    seq: int, uri: str = "sim://api", params: ActionParams | None = None
) -> ProviderCall:
    action = Action(ResourceRef.parse(uri), params or Restart(), "test", "why")
    return ProviderCall(seq, T0, "apply", action)


def test_a_clean_record_passes_every_invariant() -> None:
    """Intent, outcome and a matching provider call, all allowed, give no violation."""
    assert check(Record().start().outcome(), [apply_call(0)], [state("api", 2, 1, 5)]) == []


def test_an_action_started_while_the_switch_is_engaged_is_caught() -> None:
    """An intent recorded after killswitch.engaged and before release is a violation."""
    record = Record().flip(True).start().outcome()
    assert check(record, [apply_call(0)]) == ["killswitch"]


def test_an_action_after_release_is_fine() -> None:
    """Once released, actions may start again."""
    record = Record().flip(True).flip(False).start().outcome()
    assert check(record, [apply_call(0)]) == []


def test_the_witness_catches_an_apply_after_the_operator_engaged() -> None:
    """A provider call logged after the operator's engage is a violation, whatever is stored."""
    calls = [ProviderCall(0, T0, "engage"), apply_call(1)]
    assert check(Record().start().outcome(), calls) == ["killswitch"]


def test_a_fourth_attempt_in_the_window_is_caught() -> None:
    """Four intents for one (resource, kind) within an hour break the retry budget."""
    record = Record()
    for minute in range(4):
        tick = f"t{minute}"
        record.start(at=T0 + timedelta(minutes=minute * 10), tick=tick).outcome(tick=tick, ok=False)
    checker = InvariantChecker(RULES)
    checker.feed_events(record.events)
    assert [v.invariant for v in checker.violations] == ["retry_budget"]
    assert "attempt 4" in checker.violations[0].message


def test_attempts_outside_the_window_or_after_a_reset_do_not_count() -> None:
    """The window slides, and an operator's retries.reset starts the count over."""
    record = Record()
    for index, minutes in enumerate([0, 10, 20, 90, 100]):
        tick = f"t{index}"
        record.start(at=T0 + timedelta(minutes=minutes), tick=tick).outcome(tick=tick)
    record.reset("sim://api", T0 + timedelta(minutes=101))
    for index, minutes in enumerate([102, 103]):
        tick = f"r{index}"
        record.start(at=T0 + timedelta(minutes=minutes), tick=tick).outcome(tick=tick)
    checker = InvariantChecker(RULES)
    checker.feed_events(record.events)
    assert checker.violations == []


def test_an_action_outside_the_allow_list_is_caught() -> None:
    """A rollback is not allow-listed here; another provider is not either."""
    record = Record().start(kind="rollback").outcome(kind="rollback")
    record.start("ecs://prod/api", tick="t1").outcome("ecs://prod/api")
    calls = [
        apply_call(0, params=Rollback("")),
        apply_call(1, "ecs://prod/api"),
    ]
    assert check(record, calls).count("allowlist_bounds") == 4


def test_too_many_actions_in_one_tick_are_caught() -> None:
    """Three actions in a tick break a bound of two."""
    record = Record()
    for name in ("a", "b", "c"):
        record.start(f"sim://{name}").outcome(f"sim://{name}")
    calls = [apply_call(i, f"sim://{name}") for i, name in enumerate("abc")]
    assert check(record, calls) == ["allowlist_bounds"]


def test_two_actions_on_one_resource_in_a_tick_are_caught() -> None:
    """Restart and scale of one resource in one tick break one-action-per-resource."""
    record = Record().start().outcome().start(kind="scale", params={"replicas": 3})
    record.outcome(kind="scale")
    calls = [apply_call(0), apply_call(1, params=Scale())]
    assert check(record, calls) == ["allowlist_bounds"]


def test_a_scale_beyond_the_bounds_is_caught() -> None:
    """Replicas above the configured maximum, or outside the provider's range, are caught."""
    record = Record().start(kind="scale", params={"replicas": 50}).outcome(kind="scale")
    action = Action(ResourceRef("sim", "api"), Scale(replicas=50), "test", "why")
    call = ProviderCall(0, T0, "apply", action, Replicas(2, 2, 0, 1, 10))
    assert check(record, [call]) == ["allowlist_bounds", "allowlist_bounds"]


def test_a_started_action_with_no_outcome_is_caught() -> None:
    """An intent still open at the end of its tick is a violation."""
    assert check(Record().start(), [apply_call(0)]) == ["one_outcome"]


def test_a_second_outcome_is_caught() -> None:
    """Two outcomes for one action id are a violation."""
    record = Record().start().outcome().outcome()
    assert check(record, [apply_call(0)]) == ["one_outcome"]


def test_an_unknown_confirmed_later_is_one_outcome() -> None:
    """An ``action.unknown`` and the ``action.applied`` that confirms it later are allowed."""
    assert check(Record().start().unknown().confirm(), [apply_call(0)]) == []


def test_a_confirmation_of_anything_but_an_unknown_or_a_second_one_is_caught() -> None:
    """Confirming an action that was applied, or confirming an unknown twice, is a violation."""
    assert check(Record().start().outcome().confirm(), [apply_call(0)]) == ["one_outcome"]
    twice = Record().start().unknown().confirm().confirm()
    assert check(twice, [apply_call(0)]) == ["one_outcome"]


def test_an_outcome_with_no_intent_is_caught() -> None:
    """An outcome whose action id was never started is a violation."""
    assert check(Record().outcome()) == ["one_outcome"]


def test_an_action_started_twice_is_caught() -> None:
    """Two intents with one action id are a violation."""
    record = Record().start().start().outcome()
    assert "one_outcome" in check(record, [apply_call(0), apply_call(1)])


def test_a_provider_call_without_an_intent_is_caught() -> None:
    """The witness saw an apply the store has no intent for."""
    assert check(Record(), [apply_call(0)]) == ["witness"]


def test_an_intent_the_provider_never_received_is_caught() -> None:
    """The store recorded an applied action the provider never saw."""
    assert check(Record().start().outcome()) == ["witness"]


def test_an_intent_the_kill_switch_withheld_needs_no_provider_call_and_no_attempt() -> None:
    """Closed as not sent (engaged after the intent): no witness call, not a retry attempt."""
    record = Record()
    for minute in range(4):
        tick = f"t{minute}"
        record.start(at=T0 + timedelta(minutes=minute), tick=tick)
        if minute == 0:
            record.events.append(withheld(record.events[-1]))
        else:
            record.outcome(tick=tick, ok=False)
    checker = InvariantChecker(RULES)
    checker.feed_events(record.events)
    checker.feed_calls([apply_call(seq) for seq in range(3)])
    checker.end_tick("t3", [])
    assert checker.violations == []


def withheld(intent: Event) -> Event:
    """The outcome the loop records for an intent the kill switch stopped (`Outcome.withheld`)."""
    return Event(
        kind=EventKind.ACTION_FAILED,
        ts=intent.ts,
        idempotency_key=f"{intent.action_id}:outcome",
        tick_id=intent.tick_id,
        resource=intent.resource,
        action_kind=intent.action_kind,
        payload={"outcome": "failed", "error_kind": None, "error_code": "killswitch"},
        action_id=intent.action_id,
    )


def test_replicas_outside_min_max_are_caught() -> None:
    """A resource whose desired count is outside its own range breaks the bounds."""
    states = [state("api", 0, 1, 5), state("web", 7, 1, 5), state("ok", 3, None, None)]
    assert check(Record(), states=states) == ["capacity_bounds", "capacity_bounds"]


def test_every_edge_of_a_service_s_own_range_is_checked() -> None:
    """Below zero with no floor, at each bound, one past either, a floor of zero: each
    state is judged as `_check_state` judges it, whichever path the checker takes."""
    states = [
        state("negative", -1, None, None),
        state("at-floor", 1, 1, 5),
        state("at-ceiling", 5, 1, 5),
        state("under", 0, 1, 5),
        state("over", 6, 1, 5),
        state("zero-floor", 0, 0, 5),
        state("no-ceiling", 10**9, 2, None),
        state("negative-floor", -1, -1, None),
    ]
    checker = InvariantChecker(RULES)
    checker.end_tick("t1", states)
    assert [v.message.split(" ")[0] for v in checker.violations] == [
        "sim://negative",
        "sim://under",
        "sim://over",
    ]
    assert checker.checks["capacity_bounds"] == len(states)


def test_routing_weights_that_do_not_sum_to_one_are_caught() -> None:
    """A route whose observed weights sum to 0.9 is a violation; 1.0 is fine."""
    route = ResourceRef("route", "chat", "route")
    bad = ResourceState(
        route, Health.HEALTHY, T0, weights=RouteWeights({"a": 0.5, "b": 0.4}, 1, {})
    )
    good = ResourceState(
        route, Health.HEALTHY, T0, weights=RouteWeights({"a": 0.5, "b": 0.5}, 1, {})
    )
    assert check(Record(), states=[bad]) == ["capacity_bounds"]
    assert check(Record(), states=[good]) == []


def test_set_weights_params_that_do_not_sum_to_one_are_caught() -> None:
    """A set_weights intent whose weights sum to 1.2 breaks the bounds."""
    rules = Rules(
        allow=(("route", "*", frozenset({"*"})),),
        max_actions_per_tick=5,
        max_replicas=20,
        max_attempts=3,
        retry_window=timedelta(hours=1),
    )
    record = Record().start("route://chat", "set_weights", params={"weights": {"a": 0.6, "b": 0.6}})
    checker = InvariantChecker(rules)
    checker.feed_events(record.events)
    assert [v.invariant for v in checker.violations] == ["allowlist_bounds"]
    assert "sum to 1.2" in checker.violations[0].message
