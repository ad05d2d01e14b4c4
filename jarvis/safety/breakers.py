"""Circuit breakers: hold a provider's (or the whole fleet's) actions while calls keep failing.

Modelled on the ECS deployment circuit breaker and Alertmanager's inhibition:
when a provider throttles or is down, every resource's action fails for the
same reason, and charging each resource's retry budget would page a human per
resource for one provider-wide fault. A breaker counts the failing *sources*
in a sliding window (a resource whose action failed temporarily, or one failed
observe of the provider); when ``threshold`` distinct sources have failed it
opens: the provider's actions are held (`BlockReason.PROVIDER_DEGRADED`), one
alert is raised, and the failures that tripped it are not charged to the
resources' retry budgets. Counting distinct resources keeps one crash-looping
service from tripping its provider's breaker: that is the retry budget's job.

After ``cooldown`` without a new failure the breaker is half-open: one probe
action per tick may go through; a successful probe closes it, with one alert,
and a failure (a probe's, or an observe's) re-opens it and restarts the
cool-down, without a new alert. A successful observe does not close it: a
provider may answer reads while it throttles writes. The fleet breaker is the same machine over
every failed action, any provider, with a threshold of max(3, half the fleet)
distinct resources.

Pure (imports `jarvis.model` only): the loop (`jarvis.loop.breakers`) feeds
outcomes in and turns transitions into events, metrics and ledger refunds.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from jarvis.model import ErrorKind, Outcome, OutcomeStatus, RetryState


class Phase(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Transition(enum.StrEnum):
    """What one fed call did to the breaker; OPENED and CLOSED are alerted, once each."""

    NONE = "none"
    OPENED = "opened"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    threshold: int = 3
    """Distinct failing sources in ``window`` that open the breaker."""
    window: timedelta = timedelta(minutes=5)
    cooldown: timedelta = timedelta(minutes=5)
    """How long an open breaker holds everything before it lets one probe through."""


@dataclass(frozen=True, slots=True)
class BreakerState:
    failures: tuple[tuple[datetime, str], ...] = ()
    """(when, source) of the failures inside the window, oldest first."""
    opened_at: datetime | None = None
    """When it opened, or last re-opened on a failed probe; None while closed."""

    def phase(self, policy: BreakerPolicy, now: datetime) -> Phase:
        if self.opened_at is None:
            return Phase.CLOSED
        return Phase.OPEN if now < self.opened_at + policy.cooldown else Phase.HALF_OPEN


def rebased(state: BreakerState, now: datetime) -> BreakerState:
    """``state`` with nothing stamped after ``now``.

    A failure or an opening later than ``now`` means the wall clock stepped back
    (NTP, a hand-set date): its cool-down and window then count from ``now``, at
    most their length more, not from a time the clock may take hours or days to
    reach again, which would hold the provider's actions (or the fleet's) that
    long, a restart included (`restore` takes the opening's time from its alert).
    """
    opened = state.opened_at
    if (opened is None or opened <= now) and all(t <= now for t, _ in state.failures):
        return state
    return BreakerState(
        failures=tuple((min(t, now), source) for t, source in state.failures),
        opened_at=None if opened is None else min(opened, now),
    )


#: Error codes (lower case) by which AWS, Kubernetes and Google APIs say the provider
#: itself is throttling or failing, whatever the resource; HTTP 429 and 5xx too.
PROVIDER_CODES = frozenset(
    {
        "throttling",
        "throttlingexception",
        "toomanyrequests",
        "toomanyrequestsexception",
        "requestlimitexceeded",
        "requestthrottled",
        "slowdown",
        "internalerror",
        "internalfailure",
        "internalservererror",
        "serviceunavailable",
        "serviceunavailableexception",
        "serverexception",
        "servertimeout",
        "timeout",
        "connectionerror",
        "unavailable",
        "resource_exhausted",
        "deadline_exceeded",
        "internal",
    }
)
_HTTP_PROVIDER = re.compile(r"(http)?(429|5\d\d)")


def counts(outcome: Outcome) -> bool:
    """Whether an apply outcome counts against its provider's breaker.

    Temporary failures and timeouts do (throttling, 5xx, an API that is down);
    a terminal error is about the request, not the provider, and a success
    never does.
    """
    if outcome.status is OutcomeStatus.TIMED_OUT:
        return True
    return outcome.status is OutcomeStatus.FAILED and outcome.error_kind is ErrorKind.TEMPORARY


def provider_wide(outcome: Outcome) -> bool:
    """Whether a counted failure is the provider's by its nature: a timeout, throttling, a 5xx.

    Such a failure counts by itself, however many times one resource meets it
    (an API answering 5xx three times in five minutes is degraded); any other
    temporary failure counts once per resource, so a crash-looping service is
    left to its retry budget.
    """
    if outcome.status is OutcomeStatus.TIMED_OUT:
        return True
    code = (outcome.error_code or "").lower()
    return counts(outcome) and (code in PROVIDER_CODES or bool(_HTTP_PROVIDER.fullmatch(code)))


def failed(
    state: BreakerState, policy: BreakerPolicy, source: str, now: datetime, *, threshold: int = 0
) -> tuple[BreakerState, Transition]:
    """The breaker after ``source`` failed at ``now``; ``threshold`` > 0 overrides the policy's."""
    if state.opened_at is not None:
        # Open or half-open: a failure (a failed probe, a failed observe) restarts the cool-down.
        return replace(state, opened_at=max(state.opened_at, now)), Transition.NONE
    horizon = now - policy.window
    failures = (*(f for f in state.failures if f[0] > horizon), (now, source))
    limit = threshold or policy.threshold
    if len({src for _, src in failures}) >= limit:
        return BreakerState(failures=failures, opened_at=now), Transition.OPENED
    return BreakerState(failures=failures), Transition.NONE


def succeeded(
    state: BreakerState, policy: BreakerPolicy, now: datetime
) -> tuple[BreakerState, Transition]:
    """The breaker after a call succeeded at ``now``: a half-open breaker closes."""
    if state.phase(policy, now) is Phase.HALF_OPEN:
        return BreakerState(), Transition.CLOSED
    return state, Transition.NONE


def admits(state: BreakerState, policy: BreakerPolicy, now: datetime, *, probed: bool) -> bool:
    """Whether an action may pass: always when closed, one probe per tick when half-open."""
    phase = state.phase(policy, now)
    return phase is Phase.CLOSED or (phase is Phase.HALF_OPEN and not probed)


def forgive(state: RetryState, attempt: datetime, now: datetime, *, charged: bool) -> RetryState:
    """The retry ledger row without the failed attempt started at ``attempt``.

    Used for a failure attributed to a degraded provider: the attempt is taken
    back, and, when its failure was already ``charged``, the consecutive
    failure it added and its backoff too. A quarantined row stays so: an
    escalation is never silently undone.
    """
    if state.quarantined or attempt not in state.attempts:
        return state
    attempts = tuple(t for t in state.attempts if t != attempt)
    if not charged:
        return replace(state, attempts=attempts, updated_at=now)
    return replace(
        state,
        attempts=attempts,
        consecutive_failures=max(0, state.consecutive_failures - 1),
        retry_after=None,
        updated_at=now,
    )


def fleet_threshold(fleet_size: int) -> int:
    """Failed actions in the window that pause the fleet: max(3, half the fleet)."""
    return max(3, (fleet_size + 1) // 2)
