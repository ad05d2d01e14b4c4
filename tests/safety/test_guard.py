"""The guard's promises, pinned by properties over arbitrary proposals."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import (
    Action,
    BlockReason,
    ErrorKind,
    Health,
    KillSwitchState,
    Outcome,
    Replicas,
    ResourceRef,
    ResourceState,
    Restart,
    RetryState,
    Rollback,
    RouteWeights,
    Scale,
    SetWeights,
)
from jarvis.safety import (
    AllowList,
    AllowRule,
    Bounds,
    Guard,
    GuardContext,
    RetryBudget,
    ScaleBounds,
    WeightBounds,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROVIDERS = ["sim", "ecs", "k8s"]
NAMES = ["api", "web", "worker", "ai-brain", "db/primary"]

targets = st.builds(ResourceRef, st.sampled_from(PROVIDERS), st.sampled_from(NAMES))
actions = st.builds(
    Action,
    target=targets,
    params=st.one_of(
        st.just(Restart()),
        st.builds(Scale, replicas=st.integers(0, 10)),
        st.builds(Rollback, version=st.sampled_from(["", "v1"])),
    ),
    policy=st.sampled_from(["heal", "scaling"]),
    reason=st.just("because"),
)
rules = st.lists(
    st.builds(
        AllowRule,
        provider=st.sampled_from(PROVIDERS),
        resources=st.sampled_from(["*", "api", "w*", "db/*"]),
        actions=st.frozensets(st.sampled_from(["restart", "scale", "rollback", "*"]), min_size=1),
    ),
    max_size=4,
)


def guard(allow: list[AllowRule] | None = None) -> Guard:
    return Guard(
        allowlist=AllowList(
            allow if allow is not None else [AllowRule("sim", "*", frozenset("*"))]
        ),
        bounds=Bounds(max_actions_per_tick=100),
        retry=RetryBudget(),
    )


@given(st.lists(actions, max_size=30), rules)
def test_an_engaged_kill_switch_blocks_every_action(
    proposals: list[Action], allow: list[AllowRule]
) -> None:
    """With the kill switch engaged nothing is allowed, whatever is proposed."""
    g = guard(allow + [AllowRule(p, "*", frozenset("*")) for p in PROVIDERS])
    ctx = GuardContext(now=NOW, killswitch=KillSwitchState(engaged=True, actor="op", reason="x"))
    for action in proposals:
        verdict = g.check(action, ctx)
        assert not verdict.allowed
        assert verdict.reason is BlockReason.KILLSWITCH


@given(st.lists(actions, max_size=30), rules)
def test_nothing_outside_the_allow_list_is_allowed(
    proposals: list[Action], allow: list[AllowRule]
) -> None:
    """An action is allowed only if some allow-list rule permits it; empty denies all."""
    g = guard(allow)
    ctx = GuardContext(now=NOW, killswitch=KillSwitchState(engaged=False))
    for action in proposals:
        verdict = g.check(action, ctx)
        if verdict.allowed:
            assert any(rule.permits(action) for rule in allow)
        if not allow:
            assert verdict.reason is BlockReason.ALLOWLIST


@settings(max_examples=200)
@given(
    outcomes=st.lists(st.booleans(), min_size=1, max_size=40),
    gaps=st.lists(st.integers(1, 400), min_size=40, max_size=40),
)
def test_never_more_than_three_attempts_per_window(outcomes: list[bool], gaps: list[int]) -> None:
    """Whatever the outcomes and timing, no window holds more than three attempts."""
    budget = RetryBudget(window=timedelta(hours=1), interval=timedelta(seconds=30))
    state: RetryState | None = None
    now = NOW
    attempts: list[datetime] = []
    for ok, gap in zip(outcomes, gaps, strict=False):
        now += timedelta(seconds=gap)
        if not budget.check(state, now).allowed:
            continue
        attempts.append(now)
        state = budget.attempted(state, "sim://a", "restart", now)
        outcome = Outcome.success() if ok else Outcome.failure("boom")
        state, _ = budget.finished(state, outcome, now)
    for i, start in enumerate(attempts):
        in_window = [t for t in attempts[i:] if t < start + timedelta(hours=1)]
        assert len(in_window) <= 3


def test_three_failures_quarantine_and_escalate_once() -> None:
    """The third consecutive failure quarantines the pair and says to escalate."""
    budget = RetryBudget(interval=timedelta(seconds=30))
    state: RetryState | None = None
    now = NOW
    escalations = []
    for _ in range(10):
        now += timedelta(seconds=30)
        if not budget.check(state, now).allowed:
            continue
        state = budget.attempted(state, "sim://a", "restart", now)
        state, escalate = budget.finished(state, Outcome.failure("still broken"), now)
        escalations.append(escalate)
    assert escalations == [False, False, True]
    assert state is not None and state.quarantined
    verdict = budget.check(state, now + timedelta(days=2))
    assert verdict.reason is BlockReason.QUARANTINE
    assert "jarvis retries reset sim://a" in verdict.detail


def test_backoff_skips_one_then_two_ticks() -> None:
    """After the first failure one tick is skipped, after the second two."""
    budget = RetryBudget(interval=timedelta(seconds=30))
    state: RetryState | None = None
    tried: list[int] = []
    for tick in range(12):
        now = NOW + timedelta(seconds=30 * tick)
        if not budget.check(state, now).allowed:
            continue
        tried.append(tick)
        state = budget.attempted(state, "sim://a", "restart", now)
        state, _ = budget.finished(state, Outcome.failure("no"), now)
    assert tried == [0, 2, 5]


def test_a_slow_apply_does_not_push_the_backoff_a_tick_later() -> None:
    """Backoff counts from the attempt's start: a 25 s apply still retries two ticks on."""
    budget = RetryBudget(interval=timedelta(seconds=30))
    tried: list[int] = []
    state: RetryState | None = None
    for tick in range(12):
        now = NOW + timedelta(seconds=30 * tick)
        if not budget.check(state, now).allowed:
            continue
        tried.append(tick)
        state = budget.attempted(state, "sim://a", "restart", now)
        state, _ = budget.finished(state, Outcome.failure("no"), now + timedelta(seconds=25))
    assert tried == [0, 2, 5]


@given(
    code=st.sampled_from(["AccessDenied", "ValidationError", "NotFound"]),
    earlier=st.integers(min_value=0, max_value=1),
)
def test_a_terminal_error_quarantines_and_escalates_at_once(code: str, earlier: int) -> None:
    """Retrying cannot help a terminal error: the first one quarantines and says to escalate."""
    budget = RetryBudget(interval=timedelta(seconds=30))
    state = None
    for _ in range(earlier):
        state = budget.attempted(state, "sim://a", "restart", NOW)
        state, _ = budget.finished(state, Outcome.failure("flaky"), NOW)
    state = budget.attempted(state, "sim://a", "restart", NOW + timedelta(minutes=5))
    state, escalate = budget.finished(
        state, Outcome.failure("denied", kind=ErrorKind.TERMINAL, code=code), NOW
    )
    assert escalate and state.quarantined
    assert budget.check(state, NOW + timedelta(days=1)).reason is BlockReason.QUARANTINE


@given(earlier=st.integers(min_value=0, max_value=2), gone=st.integers(min_value=1, max_value=6))
def test_a_gone_target_is_never_a_failure_an_escalation_or_a_quarantine(
    earlier: int, gone: int
) -> None:
    """A target deleted since observe counts its attempt, never a failure: whatever came
    before, no escalation, no quarantine, no new backoff; the window still bounds it."""
    budget = RetryBudget(interval=timedelta(seconds=30))
    state = None
    for _ in range(earlier):
        state = budget.attempted(state, "sim://a", "restart", NOW)
        state, _ = budget.finished(state, Outcome.failure("flaky"), NOW)
    before = state
    attempts = 0
    for tick in range(gone):
        now = NOW + timedelta(minutes=5 + tick)
        if not budget.check(state, now).allowed:
            break
        attempts += 1
        state = budget.attempted(state, "sim://a", "restart", now)
        state, escalate = budget.finished(
            state, Outcome.failure("deleted", kind=ErrorKind.GONE, code="NotFound"), now
        )
        assert not escalate and not state.quarantined
        assert state.consecutive_failures == earlier
        assert state.retry_after == (before.retry_after if before else None)
    assert earlier + attempts <= budget.max_attempts


def test_a_success_resets_consecutive_failures() -> None:
    """Failures followed by a success leave the pair unquarantined with no backoff."""
    budget = RetryBudget()
    state = budget.attempted(None, "sim://a", "restart", NOW)
    state, _ = budget.finished(state, Outcome.failure("no"), NOW)
    state, escalate = budget.finished(state, Outcome.success(), NOW)
    assert not escalate
    assert state.consecutive_failures == 0 and state.retry_after is None


def test_bounds_refuse_a_second_action_on_one_resource_and_the_blast_radius() -> None:
    """One action per resource per tick, and no more than the per-tick maximum."""
    bounds = Bounds(max_actions_per_tick=2)
    act = Action(ResourceRef("sim", "a"), Restart(), "heal", "x")
    assert bounds.violation(act, applied_this_tick=0, touched=frozenset(), current=None) is None
    assert "one action per resource" in str(
        bounds.violation(act, applied_this_tick=1, touched=frozenset({"sim://a"}), current=None)
    )
    assert "max 2 actions" in str(
        bounds.violation(act, applied_this_tick=2, touched=frozenset(), current=None)
    )


def test_bounds_keep_scaling_inside_the_providers_range() -> None:
    """A scale outside the provider's registered min/max or the hard cap is refused."""
    bounds = Bounds(kinds={"scale": ScaleBounds(max_replicas=50)})
    ref = ResourceRef("ecs", "prod/api")
    current = ResourceState(ref, Health.HEALTHY, NOW, Replicas(2, 2, min=1, max=8))
    for replicas, ok in [(1, True), (8, True), (0, False), (9, False), (51, False)]:
        act = Action(ref, Scale(replicas=replicas), "scaling", "x")
        violation = bounds.violation(act, applied_this_tick=0, touched=frozenset(), current=current)
        assert (violation is None) is ok, (replicas, violation)


def test_a_count_over_the_bound_names_the_setting_not_a_wrong_type() -> None:
    """`jarvis scale X 1000` under the default bound names `bounds.max_replicas`: 1000 is a
    whole number, and the operator's next step is the setting."""
    bounds = ScaleBounds(max_replicas=100)
    ref = ResourceRef("sim", "api")
    too_many = bounds.violation(Action(ref, Scale(replicas=1000), "operator", "x"), None)
    assert too_many == ("replicas=1000 is above bounds.max_replicas (100); raise it to allow more")
    for odd in (-1, 2.5, True):
        params = Scale(replicas=odd)  # type: ignore[arg-type]
        said = bounds.violation(Action(ref, params, "operator", "x"), None)
        assert said == f"replicas={odd!r} is not a whole number in 0..100", said


def test_bounds_limit_routing_weight_shifts() -> None:
    """Weights must sum to 1 and move no more than the per-tick shift."""
    bounds = Bounds(kinds={"set_weights": WeightBounds(max_traffic_shift=0.5)})
    ref = ResourceRef("route", "chat", kind="route")
    current = ResourceState(
        ref, Health.HEALTHY, NOW, weights=RouteWeights({"gpt-4o": 1.0, "gemini": 0.0}, 1, {})
    )
    half = Action(ref, SetWeights({"gpt-4o": 0.5, "gemini": 0.5}), "cost", "x")
    all_in = Action(ref, SetWeights({"gemini": 1.0}), "cost", "x")
    broken = Action(ref, SetWeights({"gpt-4o": 0.7, "gemini": 0.7}), "cost", "x")

    def check(action: Action) -> str | None:
        return bounds.violation(action, applied_this_tick=0, touched=frozenset(), current=current)

    assert check(half) is None
    assert "moves by 1.00" in str(check(all_in))
    assert "sum to" in str(check(broken))


def test_routing_weight_shifts_are_measured_in_shares_of_the_traffic() -> None:
    """Weights of 60/20/20 are shares of 0.6/0.2/0.2; all-zero weights carry no traffic."""
    bounds = Bounds(kinds={"set_weights": WeightBounds(max_traffic_shift=0.5)})
    ref = ResourceRef("route", "chat", kind="route")
    configured = Action(ref, SetWeights({"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}), "cost", "x")

    def check(held: dict[str, float]) -> str | None:
        current = ResourceState(ref, Health.DEGRADED, NOW, weights=RouteWeights(held, 1, {}))
        return bounds.violation(
            configured, applied_this_tick=0, touched=frozenset(), current=current
        )

    assert check({"gpt-4o": 60.0, "gemini": 20.0, "claude": 20.0}) is None
    assert check({"gpt-4o": 0.0, "gemini": 0.0, "claude": 0.0}) is None
    assert "moves by 0.60" in str(check({"gemini": 0.5, "claude": 0.5}))


def test_dry_run_blocks_after_every_other_check_passes() -> None:
    """Dry run is the last check: an action that would pass is recorded as dry_run."""
    g = guard()
    act = Action(ResourceRef("sim", "a"), Restart(), "heal", "x")
    ctx = GuardContext(now=NOW, killswitch=KillSwitchState(engaged=False), dry_run=True)
    assert g.check(act, ctx).reason is BlockReason.DRY_RUN


@dataclass(frozen=True, slots=True)
class SendEmail:
    """A kind the core has never heard of: params and a bound, nothing else."""

    kind: ClassVar[str] = "send_email"
    to: str
    recipients: int


@dataclass(frozen=True, slots=True)
class RecipientBound:
    max_recipients: int

    def violation(self, action: Action, current: ResourceState | None) -> str | None:
        assert isinstance(action.params, SendEmail)
        if action.params.recipients > self.max_recipients:
            return f"{action.params.recipients} recipients, more than {self.max_recipients}"
        return None


@given(st.integers(0, 20), st.integers(0, 20), targets)
def test_a_new_kind_is_bounded_by_its_own_entry_alone(
    recipients: int, limit: int, target: ResourceRef
) -> None:
    """A kind added by params and a bound object is blocked exactly when its bound says so."""
    email = Action(target, SendEmail("ops@example.com", recipients), "notify", "incident")
    ctx = GuardContext(now=NOW, killswitch=KillSwitchState(engaged=False))
    allow = AllowList([AllowRule(target.provider, "*", frozenset({"send_email"}))])
    bounded = Guard(
        allowlist=allow,
        bounds=Bounds(kinds={"send_email": RecipientBound(limit), "scale": ScaleBounds(1)}),
        retry=RetryBudget(),
    )
    unbounded = Guard(
        allowlist=allow, bounds=Bounds(kinds={"scale": ScaleBounds(1)}), retry=RetryBudget()
    )

    verdict = bounded.check(email, ctx)

    assert verdict.allowed is (recipients <= limit)
    if not verdict.allowed:
        assert verdict.reason is BlockReason.BOUNDS
        assert verdict.detail == f"{recipients} recipients, more than {limit}"
    assert unbounded.check(email, ctx).allowed


#: A replica count as a buggy policy or a hand-built action might carry it.
counts = st.one_of(
    st.none(),
    st.integers(-5, 120),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, 10).map(float),
)


def _whole_in(value: object, low: int, high: int) -> bool:
    """The oracle: a whole number (not a bool, not a float) in low..high."""
    return type(value) is int and low <= value <= high


@given(counts, counts, counts)
def test_a_scale_is_allowed_only_with_whole_consistent_counts(
    replicas: object, low: object, high: object
) -> None:
    """A scale passes only with whole counts in range, min <= max, and replicas between them."""
    params = Scale(replicas=replicas, min_replicas=low, max_replicas=high)  # type: ignore[arg-type]
    act = Action(ResourceRef("k8s", "default/api"), params, "scaling", "x")

    violation = ScaleBounds(max_replicas=100).violation(act, None)

    given_counts = [v for v in (replicas, low, high) if v is not None]
    ok = (
        bool(given_counts)
        and all(_whole_in(v, 0, 100) for v in given_counts)
        and (low is None or high is None or low <= high)  # type: ignore[operator]
        and (replicas is None or low is None or low <= replicas)  # type: ignore[operator]
        and (replicas is None or high is None or replicas <= high)  # type: ignore[operator]
    )
    assert (violation is None) is ok, (params, violation)


#: What a tenant can do to a name an operator allowed literally.
disguises: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [
        str.upper,
        lambda n: n + "/",
        lambda n: n + ".",
        lambda n: n.replace("/", "//"),
        lambda n: n.replace("/", "/../"),
        lambda n: n.replace("/", "%2F"),
        lambda n: n.replace("a", "\u0430"),  # Cyrillic a
        lambda n: unicodedata.normalize("NFD", n.replace("e", "\u00e9")),
        lambda n: n + "*",
        lambda n: n + "-" + "x" * 5000,
    ]
)


@given(st.sampled_from(["prod/api", "default/vocal-coach", "team-a/web"]), disguises)
def test_a_literal_allow_list_entry_permits_exactly_its_name(
    name: str, disguise: Callable[[str], str]
) -> None:
    """A rule naming one resource permits it, and nothing a tenant can make look like it."""
    rule = AllowRule("k8s", name, frozenset({"restart"}))
    other = disguise(name)
    assert rule.permits(Action(ResourceRef("k8s", name), Restart(), "heal", "x"))
    assert other == name or not rule.permits(
        Action(ResourceRef("k8s", other), Restart(), "heal", "x")
    )
