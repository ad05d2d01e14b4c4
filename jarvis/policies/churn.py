"""The churn policy: a customer going quiet gets one win-back email with a one-time discount.

Called by the reconciler once per tick, like every policy; pure. It reads only
the `Customer` facet of ``customer://ID`` resources. `assess` scores the risk
from three things the facet carries: how long since the customer last used
the product (high at 30 days, medium at 14), the trend of the weekly request
counts (the last complete week against the weeks before it), and the plan (a
paying customer whose use is falling fast is high risk from 14 days on). The
daily report lists the medium-risk ones (`jarvis.report`); a high-risk one is
won back in two steps, one per tick, since the planner takes one action per
resource: ``create_discount`` (a Stripe promotion code only that customer can
redeem, once), then ``send_email`` with the ``win_back`` template, which
carries the code.

At most once per customer per ``cooldown`` (30 days), level-triggered like
onboarding: the mailer writes ``reengaged_at`` back to the customer's row and
the sensor reads it the next tick. Never to a customer who opted out of
marketing email, never to one whose subscription is cancelled, and only to one
with a Stripe customer (the code is restricted to it). The guard holds the
rest: the allow-list, the kill switch, a ``[[budgets]]`` entry on
``send_email``, the retry budget and dry run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from jarvis.model import (
    ActionParams,
    CreateDiscount,
    Customer,
    History,
    SendEmail,
    Snapshot,
)
from jarvis.policies.base import Evaluation, step_each

__all__ = ["WIN_BACK", "ChurnPolicy", "ChurnRules", "Risk", "RiskLevel", "assess", "medium_risk"]

WIN_BACK = "win_back"
"""The win-back email's template name."""

CANCELLED = frozenset({"canceled", "incomplete_expired"})
"""Stripe subscription statuses of a customer who has left: never won back by email."""


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class ChurnRules:
    """The thresholds, from ``[customers.churn]``."""

    high_after: timedelta = timedelta(days=30)
    medium_after: timedelta = timedelta(days=14)
    cooldown: timedelta = timedelta(days=30)
    """At most one win-back per customer in this long."""
    steep_decline: float = 0.5
    """A last week below half the weeks before it is a steep decline."""
    free_plans: frozenset[str] = frozenset({"free"})
    percent_off: int = 20
    valid_days: int = 14
    """How long the promotion code can be redeemed; an older one is replaced."""


@dataclass(frozen=True, slots=True)
class Risk:
    level: RiskLevel
    inactive: timedelta
    decline: float
    """0 (steady or growing) to 1 (stopped): the last complete week against the mean before it."""


def decline(weekly: tuple[int, ...]) -> float:
    """How far the last complete week fell below the mean of the weeks before it."""
    if len(weekly) < 2:
        return 0.0
    *before, last = weekly
    mean = sum(before) / len(before)
    if mean <= 0:
        return 0.0
    return max(0.0, min(1.0, 1 - last / mean))


def assess(customer: Customer, now: datetime, rules: ChurnRules) -> Risk:
    """The customer's churn risk at ``now``: inactivity first, trend and plan after."""
    since = customer.last_active_at or customer.signed_up_at
    inactive = max(timedelta(0), now - since)
    paying = customer.plan not in rules.free_plans
    if inactive < rules.medium_after and not paying:
        return Risk(RiskLevel.LOW, inactive, 0.0)  # the trend alone never moves a free plan
    falling = decline(customer.weekly_usage)
    steep = falling >= rules.steep_decline
    if inactive >= rules.high_after or (inactive >= rules.medium_after and steep and paying):
        level = RiskLevel.HIGH
    elif inactive >= rules.medium_after or (steep and paying):
        level = RiskLevel.MEDIUM
    else:
        level = RiskLevel.LOW
    return Risk(level, inactive, falling)


def may_win_back(customer: Customer, now: datetime, rules: ChurnRules) -> bool:
    """Whether a win-back may go to this customer now, whatever the risk."""
    if customer.opted_out or customer.subscription_status in CANCELLED or not customer.billing:
        return False
    return customer.reengaged_at is None or now - customer.reengaged_at >= rules.cooldown


def next_step(
    customer: Customer, now: datetime, rules: ChurnRules
) -> tuple[ActionParams, str] | None:
    """The next win-back step for this customer, with the reason; None when there is none."""
    if not may_win_back(customer, now, rules):
        return None
    risk = assess(customer, now, rules)
    if risk.level is not RiskLevel.HIGH:
        return None
    why = f"churn risk high: inactive {risk.inactive.days} days, usage down {risk.decline:.0%}"
    offered = customer.discount_at
    fresh = (
        offered is not None
        and (customer.reengaged_at is None or offered > customer.reengaged_at)
        and now - offered < timedelta(days=rules.valid_days)
    )
    if not fresh:
        return CreateDiscount(percent_off=rules.percent_off, valid_days=rules.valid_days), why
    return SendEmail(template=WIN_BACK), why


def medium_risk(customers: dict[str, Customer], now: datetime, rules: ChurnRules) -> list[str]:
    """The ids of medium-risk customers, sorted: the daily report's list."""
    return sorted(
        cid for cid, c in customers.items() if assess(c, now, rules).level is RiskLevel.MEDIUM
    )


class ChurnPolicy:
    """Proposes each high-risk customer's next win-back step."""

    name = "churn"

    def __init__(self, rules: ChurnRules | None = None) -> None:
        self.rules = rules or ChurnRules()

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 -- the Policy signature; the facet carries what was done
        """At most one action per high-risk customer, sorted by resource URI."""
        return step_each(snapshot, self.name, lambda customer: next_step(customer, now, self.rules))
