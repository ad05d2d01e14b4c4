"""The three promises (kill switch, allow-list, retry limit) and dry run as properties over
hostile input: every action kind any path proposes, names a tenant or a provider chose,
any guard context, and a retry ledger written and read back between attempts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import (
    Action,
    BlockReason,
    Deploy,
    ErrorKind,
    KillSwitchState,
    Outcome,
    ResourceRef,
    Restart,
    RetryState,
    Rollback,
    Scale,
    SetDnsWeights,
    SetWeights,
    Start,
    Stop,
    Verdict,
)
from jarvis.model.customers import (
    CreateBillingCustomer,
    CreateDiscount,
    GrantAccess,
    RevokeAccess,
    SendEmail,
)
from jarvis.safety import AllowList, AllowRule, Bounds, Guard, GuardContext, RetryBudget
from jarvis.store.codec import retry_from_row, retry_row

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEMES = ["sim", "ecs", "k8s", "cloudrun", "route", "route53", "customer"]
GLOB_CHARS = "*?["

#: Text a tenant, a product's table or an operator's typo can put in a name.
#: Joined by hand: `st.text` leaves lone surrogates out of any alphabet.
hostile_text = st.lists(
    st.one_of(
        st.sampled_from([*"/.*?[]!\\-_ \t\n\x00AaZz09", "\u0430", "\u00e9", "\u202e", "\ud800"]),
        st.characters(),
    ),
    max_size=40,
).map("".join)
long_text = st.integers(1000, 20_000).map(lambda n: "x" * n)
names = st.one_of(hostile_text, long_text, hostile_text.map(lambda t: f"prod/{t}"))
#: A glob's literal part: text with no character fnmatch reads as a pattern.
literals = hostile_text.filter(lambda t: t != "" and not any(c in t for c in GLOB_CHARS))

params = st.one_of(
    st.just(Restart()),
    st.just(Start()),
    st.just(Stop()),
    st.builds(Scale, replicas=st.integers(0, 10)),
    st.builds(Rollback, version=st.sampled_from(["", "v1"])),
    st.builds(Deploy, image=st.just("registry/app:v2")),
    st.builds(SetWeights, weights=st.just({"gpt-4o": 0.5, "gemini": 0.5})),
    st.builds(SetDnsWeights, record_weights=st.just({"eu": 128, "us": 127})),
    st.just(CreateBillingCustomer()),
    st.builds(CreateDiscount, percent_off=st.just(20), valid_days=st.just(30)),
    st.builds(SendEmail, template=st.sampled_from(["welcome", "payment_failed", "win_back"])),
    st.just(GrantAccess()),
    st.just(RevokeAccess()),
)
#: Every kind that reaches a provider: a policy's, an operator's (CLI, page), a customer's.
actions = st.builds(
    Action,
    target=st.builds(ResourceRef, st.sampled_from(SCHEMES), names),
    params=params,
    policy=st.sampled_from(["heal", "scaling", "cost", "churn", "dunning", "operator"]),
    reason=st.just("because"),
    priority=st.sampled_from([0, 1000]),
    actor=st.sampled_from([None, "cli:alice", "admin-token"]),
)
moments = st.integers(-7200, 7200).map(lambda s: NOW + timedelta(seconds=s))
retry_states = st.one_of(
    st.none(),
    st.builds(
        RetryState,
        resource=st.just("sim://api"),
        action_kind=st.just("restart"),
        attempts=st.lists(moments, max_size=3).map(lambda a: tuple(sorted(a))),
        consecutive_failures=st.integers(0, 3),
        retry_after=st.one_of(st.none(), moments),
        quarantined=st.booleans(),
    ),
)
#: Whatever the loop knows when it guards one action, on any path.
contexts = st.builds(
    GuardContext,
    now=st.just(NOW),
    killswitch=st.builds(KillSwitchState, engaged=st.just(False)),
    retry=retry_states,
    applied_this_tick=st.integers(0, 20),
    touched=st.frozensets(st.sampled_from(["sim://api", "prod/api"])),
    dry_run=st.booleans(),
    held=st.one_of(st.none(), st.just(Verdict.allow())),
)
allow_all = AllowList([AllowRule(scheme, "*", frozenset("*")) for scheme in SCHEMES])


def guard(allowlist: AllowList = allow_all) -> Guard:
    return Guard(allowlist=allowlist, bounds=Bounds(max_actions_per_tick=100), retry=RetryBudget())


# -- kill switch and dry run -------------------------------------------------------


@given(actions, contexts, st.sampled_from(["", "cli:alice", "admin-token"]))
def test_an_engaged_kill_switch_blocks_every_kind_on_every_path_whatever_else_is_known(
    action: Action, ctx: GuardContext, actor: str
) -> None:
    """Operator, customer and routing actions alike, in any context: the kill switch blocks."""
    engaged = replace(ctx, killswitch=KillSwitchState(engaged=True, actor=actor, reason="x"))
    verdict = guard().check(action, engaged)
    assert not verdict.allowed
    assert verdict.reason is BlockReason.KILLSWITCH


@given(actions, contexts)
def test_a_dry_run_never_allows_an_action_so_plan_applies_nothing(
    action: Action, ctx: GuardContext
) -> None:
    """`jarvis plan` and `--dry-run` ticks guard with dry_run: no action is ever allowed."""
    assert not guard().check(action, replace(ctx, dry_run=True)).allowed


# -- allow-list -----------------------------------------------------------------------


@settings(max_examples=300)
@given(literals, names, st.sampled_from(SCHEMES))
def test_a_prefix_glob_permits_exactly_the_names_that_begin_with_its_prefix(
    prefix: str, name: str, scheme: str
) -> None:
    """``prefix/*`` permits a name exactly when it starts with ``prefix/`` as written: case,
    look-alike letters, NUL and line breaks never let a name in or out."""
    rule = AllowRule(scheme, f"{prefix}/*", frozenset({"restart"}))
    for candidate in (name, f"{prefix}/{name}", f"{prefix.upper()}/{name}", f"{prefix}{name}"):
        action = Action(ResourceRef(scheme, candidate), Restart(), "heal", "x")
        assert rule.permits(action) is candidate.startswith(f"{prefix}/"), candidate


@settings(max_examples=300)
@given(literals, names)
def test_a_literal_entry_permits_its_name_alone_whatever_the_other_name_spells(
    literal: str, name: str
) -> None:
    """A name spelling a glob (``*``, ``?``, ``[``), a path (``..``) or a NUL is text, not a
    pattern: an entry naming one resource permits nothing else."""
    rule = AllowRule("k8s", literal, frozenset("*"))
    assert rule.permits(Action(ResourceRef("k8s", literal), Restart(), "operator", "x"))
    for other in (name, f"{literal}*", f"{literal}/../{name}", f"{literal}\x00", literal + "?"):
        action = Action(ResourceRef("k8s", other), Restart(), "operator", "x")
        assert rule.permits(action) is (other == literal), other


@given(
    actions,
    st.lists(
        st.builds(
            AllowRule,
            provider=st.sampled_from([*SCHEMES, "SIM", "sim ", "ecs:"]),
            resources=st.one_of(literals, literals.map(lambda t: t + "*"), st.just("*")),
            actions=st.frozensets(
                st.sampled_from(["restart", "scale", "send_email", "*"]), min_size=1
            ),
        ),
        max_size=4,
    ),
)
def test_an_action_is_allowed_only_by_a_rule_naming_its_scheme_and_kind_exactly(
    action: Action, rules: list[AllowRule]
) -> None:
    """A rule for another scheme (by case or a stray character) or other kinds permits nothing."""
    verdict = guard(AllowList(rules)).check(
        action, GuardContext(now=NOW, killswitch=KillSwitchState(engaged=False))
    )
    if verdict.reason is not BlockReason.ALLOWLIST:
        assert any(
            rule.provider == action.target.provider
            and (action.kind in rule.actions or "*" in rule.actions)
            for rule in rules
        )


# -- retry limit ------------------------------------------------------------------------


def restarted(state: RetryState | None) -> RetryState | None:
    """``state`` as a new process reads it back from the ledger's row."""
    return None if state is None else retry_from_row(retry_row(state))


@settings(max_examples=300)
@given(
    outcomes=st.lists(
        st.sampled_from([ErrorKind.TEMPORARY, ErrorKind.GONE, None]), min_size=1, max_size=30
    ),
    gaps=st.lists(st.integers(1, 1800), min_size=30, max_size=30),
    restarts=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_a_restart_between_attempts_never_lets_a_fourth_into_a_window(
    outcomes: list[ErrorKind | None], gaps: list[int], restarts: list[bool]
) -> None:
    """Read back from its row before any attempt, the ledger holds every window to three
    attempts, and the third consecutive failure quarantines for good."""
    budget = RetryBudget()
    state: RetryState | None = None
    now = NOW
    attempts: list[datetime] = []
    failures = 0
    for kind, gap, restart in zip(outcomes, gaps, restarts, strict=False):
        now += timedelta(seconds=gap)
        if restart:
            state = restarted(state)
        if not budget.check(state, now).allowed:
            continue
        attempts.append(now)
        state = budget.attempted(state, "sim://a", "restart", now)
        outcome = Outcome.success() if kind is None else Outcome.failure("no", kind=kind)
        state, _ = budget.finished(state, outcome, now)
        failures = 0 if kind is None else failures + (kind is ErrorKind.TEMPORARY)
    for i, start in enumerate(attempts):
        assert len([t for t in attempts[i:] if t < start + budget.window]) <= 3
    if failures >= 3:
        assert state is not None and restarted(state) == state and state.quarantined


@given(
    offsets=st.lists(st.integers(0, 3599), min_size=3, max_size=3, unique=True),
    past=st.integers(-2, 2),
)
def test_the_window_edge_is_the_same_before_and_after_a_restart(
    offsets: list[int], past: int
) -> None:
    """Three attempts, the oldest exactly a window (give or take a microsecond) before now:
    read back from the row or not, the fourth waits until the oldest is a full window old."""
    budget = RetryBudget()
    start = NOW - budget.window
    times = sorted(start + timedelta(seconds=o) for o in offsets)
    times[0] = start + timedelta(microseconds=past)
    state = RetryState("sim://a", "restart", attempts=tuple(times))
    allowed = budget.check(state, NOW).allowed
    assert allowed is (times[0] <= start)
    assert budget.check(restarted(state), NOW).allowed is allowed
