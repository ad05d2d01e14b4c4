"""The `Policy` protocol: a pure function from what is observed to what to change.

Called by the reconciler once per tick with the current snapshot, the history
passed in as data, and ``now`` from the loop's clock. A policy does no I/O,
reads no clock and draws no unseeded randomness; it returns an `Evaluation`
of proposed actions and notes (things worth recording that are not actions,
such as "no metrics for this service, no scaling decision").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeGuard, TypeVar

from jarvis.model import (
    CUSTOMER_SCHEME,
    JSON,
    Action,
    ActionParams,
    Customer,
    History,
    ResourceState,
    Snapshot,
)


@dataclass(frozen=True, slots=True)
class Note:
    """Something a policy wants recorded that is not an action.

    ``alert`` notes become `alert` events (and reach notification channels);
    the rest become `policy.note` events.
    """

    message: str
    resource: str | None = None
    alert: bool = False
    key: str = ""
    """Distinguishes notes for idempotency; the same key in one tick is one event."""
    payload: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation: ...


T = TypeVar("T")


def usable_reading(value: float | None) -> TypeGuard[float]:
    """Whether a metric reading can be reasoned with: present, finite and not negative.

    Providers can report NaN (a rate over no requests), infinity or a negative
    sentinel; the policies leave such a reading out rather than compare or
    average with it.
    """
    return value is not None and math.isfinite(value) and value >= 0


def customers_of(snapshot: Snapshot) -> Iterator[tuple[str, ResourceState, Customer]]:
    """Every ``customer://`` resource with its facet, in the snapshot's (unsorted) order.

    The customer policies each walk every customer each tick; sorting what they
    propose (`by_uri`), not the 100,000 customers, keeps their output in URI order.
    """
    for uri, state in snapshot.resources.items():
        customer = state.customer
        if customer is not None and state.ref.provider == CUSTOMER_SCHEME:
            yield uri, state, customer


def by_uri(pairs: Iterable[tuple[str, T]]) -> tuple[T, ...]:
    """The items of (URI, item) pairs in URI order; one URI's items keep their order."""
    return tuple(item for _, item in sorted(pairs, key=lambda pair: pair[0]))


def step_each(
    snapshot: Snapshot,
    policy: str,
    step: Callable[[Customer], tuple[ActionParams, str] | None],
) -> Evaluation:
    """At most one action per customer, ``step``'s (params and reason), sorted by URI."""
    actions: list[tuple[str, Action]] = []
    for uri, state, customer in customers_of(snapshot):
        found = step(customer)
        if found is not None:
            params, reason = found
            action = Action(target=state.ref, params=params, policy=policy, reason=reason)
            actions.append((uri, action))
    return Evaluation(actions=by_uri(actions))
