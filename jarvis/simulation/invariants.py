"""The safety invariants, checked after every simulated tick from what was recorded.

The harness (`jarvis.simulation.harness`) feeds the checker two independent
records: the event store's rows in id order (`feed_events`) and the simulated
provider's own log of the calls it received and of the operator's kill-switch
flips (`feed_calls`, the witness). `end_tick` then checks what only holds at a
tick's end and the state of the world. The checker re-derives every rule from
the settings with its own small code (fnmatch, plain counting) rather than
calling `jarvis.safety`, so a bug in the guard cannot hide itself here.

The invariants, as issue 6 numbers them:

1. ``killswitch`` — no action started (store) or applied (witness) while the
   kill switch was engaged, or while its store could not be read (fail-safe);
2. ``retry_budget`` — never more than ``max_attempts`` attempts per (resource,
   action kind) within the retry window (an operator's ``retries.reset`` starts over);
3. ``allowlist_bounds`` — nothing started outside the allow-list or the bounds
   (actions per tick, one action per resource per tick, replica limits, weights
   that sum to 1, and no SET_WEIGHTS moving a model's share by more than
   ``max_traffic_shift`` from what the route held when the write arrived);
4. ``one_outcome`` — every ``action.started`` has exactly one outcome, in its
   tick, and every provider call has a recorded intent (``witness``); an
   ``action.unknown`` may be followed by one ``action.applied`` that confirms
   it later (`jarvis.loop.unknowns`), and nothing else may;
5. ``capacity_bounds`` — replicas never outside min/max; every route's actual
   weights (the simulated LLM platform's, `jarvis.simulation.llm`) each in
   [0, 1], summing to 1, none below its floor;
6. ``breakers`` — nothing started on a provider whose breaker is open until
   its cool-down has passed, then one probe per tick; no escalation on it
   while open (`jarvis.simulation.invariant_breakers`);
7. ``stale_epoch`` — with several replicas, nothing started or applied under
   an epoch a newer one had replaced (`jarvis.simulation.invariant_epochs`);
8. ``restart`` and ``second_process`` — after a kill in a database outage no
   intent stays open; a one-shot process beside the daemon applies and records
   no action, and ``plan`` writes nothing (`jarvis.simulation.invariant_processes`).
   While Redis has restarted empty under an engaged switch, ``killswitch``
   holds as ever and counts those ticks as ``killswitch.redis_restart``;
9. ``failover`` — no DNS weight write raises a dark region's weight, leaves the
   regions that were up without weight while one was, or moves a record by more
   than ``max_dns_weight_shift`` (`jarvis.simulation.invariant_failover`);
10. ``email_window``, ``email_opt_out``, ``email_cancelled``,
    ``email_killswitch``, ``stripe_key`` and ``access_billing`` — with simulated
    customers, what a customer may receive, how Stripe is called and when access
    moves (`jarvis.simulation.invariant_customers`).

``checks`` counts what each invariant looked at; a key ``<invariant>.<part>``
counts a part of one apart (``capacity_bounds.weights``: route states, not
services) and adds to that invariant's total in the report.

What the checker is fed and reports (`Rules`, `ProviderCall`, `Violation`)
is `jarvis.simulation.invariant_records`; the pure bound checks it applies to
params, provider calls and weights are `jarvis.simulation.invariant_bounds`.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from jarvis.model import Action, Event, EventKind, ResourceState, SetDnsWeights
from jarvis.simulation.customer_scenario import AccessChange, Sent, StripeCall
from jarvis.simulation.invariant_bounds import (
    call_problem,
    floors_problem,
    params_problem,
    weights_problem,
)
from jarvis.simulation.invariant_breakers import NAME as BREAKERS
from jarvis.simulation.invariant_breakers import BreakerWatch
from jarvis.simulation.invariant_customers import CustomerWatch
from jarvis.simulation.invariant_epochs import NAME as STALE_EPOCH
from jarvis.simulation.invariant_epochs import EpochWatch
from jarvis.simulation.invariant_failover import NAME as FAILOVER
from jarvis.simulation.invariant_failover import dns_write_problem
from jarvis.simulation.invariant_processes import ProcessWatch
from jarvis.simulation.invariant_records import ProviderCall, Rules, Violation

_OUTCOMES = frozenset({EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN})
_CLOSED_MEMORY = 10_000
"""How many closed action ids are remembered to catch a late second outcome."""


@dataclass
class InvariantChecker:
    rules: Rules
    violations: list[Violation] = field(default_factory=list)
    checks: Counter[str] = field(default_factory=Counter)
    _engaged: bool = False
    _witness_engaged: bool = False
    _witness_unreadable: bool = False
    _witness_wiped: bool = False
    _attempts: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    _open: dict[str, Event] = field(default_factory=dict)
    _closed: set[str] = field(default_factory=set)
    _closed_order: deque[str] = field(default_factory=deque)
    _unknown: set[str] = field(default_factory=set)
    """Closed action ids whose outcome was unknown, not yet confirmed."""
    _tick_started: Counter[tuple[str, str]] = field(default_factory=Counter)
    _tick_applied: Counter[tuple[str, str]] = field(default_factory=Counter)
    _touched: dict[str, set[str]] = field(default_factory=dict)
    _per_tick: Counter[str] = field(default_factory=Counter)
    _breakers: BreakerWatch = field(init=False)
    _epochs: EpochWatch = field(default_factory=EpochWatch)
    processes: ProcessWatch = field(default_factory=ProcessWatch)
    customers: CustomerWatch = field(default_factory=CustomerWatch)

    def __post_init__(self) -> None:
        self._breakers = BreakerWatch(self.rules.breaker_cooldown)

    @property
    def ok(self) -> bool:
        return not self.violations

    def _fail(self, invariant: str, message: str, event: Event | None = None) -> None:
        self.violations.append(
            Violation(
                invariant,
                message,
                at=None if event is None else event.ts,
                tick_id=None if event is None else event.tick_id,
            )
        )

    # -- the store's record ---------------------------------------------------

    def feed_events(self, events: Iterable[Event]) -> None:
        """Check events in the order the store assigned their ids."""
        for event in events:
            for message, stale in self._epochs.feed(event):
                self._fail(STALE_EPOCH, message, stale)
            kind = event.kind
            if kind is EventKind.KILLSWITCH_ENGAGED:
                self._engaged = True
            elif kind is EventKind.KILLSWITCH_RELEASED:
                self._engaged = False
            elif kind is EventKind.RETRIES_RESET and event.resource is not None:
                for key in [k for k in self._attempts if k[0] == event.resource]:
                    del self._attempts[key]
            elif kind is EventKind.ACTION_STARTED:
                self.processes.event(event)
                self._started(event)
            elif kind in _OUTCOMES:
                self.processes.event(event)
                self._outcome(event)
            elif kind is EventKind.ALERT:
                for resource, action_kind, at in self._breakers.alert(event):
                    self._uncharge(resource, action_kind, at)
            elif kind is EventKind.ACTION_ESCALATED:
                self._breakers.escalated(event)

    def _uncharge(self, resource: str, kind: str, at: datetime) -> None:
        """An attempt a breaker explains: the retry budget does not count it (see breakers)."""
        attempts = self._attempts.get((resource, kind))
        if attempts is not None and at in attempts:
            attempts.remove(at)

    def _started(self, event: Event) -> None:
        resource, kind = event.resource or "", event.action_kind or ""
        self.checks["killswitch"] += 1
        if self._engaged:
            self._fail("killswitch", f"{kind} on {resource} started while engaged", event)
        self._check_budget(event, resource, kind)
        self._check_allowed(event, resource, kind)
        self._breakers.started(event)
        self.checks["one_outcome"] += 1
        action_id = event.action_id or event.idempotency_key
        if action_id in self._open or action_id in self._closed:
            self._fail("one_outcome", f"action {action_id} started twice", event)
        self._open[action_id] = event
        self._tick_started[(resource, kind)] += 1

    def _check_budget(self, event: Event, resource: str, kind: str) -> None:
        self.checks["retry_budget"] += 1
        # The same rule as the budget's: an attempt counts while it is later than
        # now - window, including one "later than now" after a backward clock jump.
        horizon = event.ts - self.rules.retry_window
        attempts = [t for t in self._attempts.get((resource, kind), ()) if t > horizon]
        if len(attempts) >= self.rules.max_attempts:
            self._fail(
                "retry_budget",
                f"attempt {len(attempts) + 1} of {kind} on {resource} within "
                f"{self.rules.retry_window} (limit {self.rules.max_attempts})",
                event,
            )
        attempts.append(event.ts)
        self._attempts[(resource, kind)] = attempts

    def _check_allowed(self, event: Event, resource: str, kind: str) -> None:
        self.checks["allowlist_bounds"] += 1
        if not self.rules.allowed(resource, kind):
            self._fail("allowlist_bounds", f"{kind} on {resource} is not allow-listed", event)
        tick = event.tick_id or ""
        self._per_tick[tick] += 1
        if self._per_tick[tick] > self.rules.max_actions_per_tick:
            self._fail(
                "allowlist_bounds",
                f"{self._per_tick[tick]} actions started in one tick "
                f"(limit {self.rules.max_actions_per_tick})",
                event,
            )
        touched = self._touched.setdefault(tick, set())
        if resource in touched:
            self._fail("allowlist_bounds", f"second action on {resource} in one tick", event)
        touched.add(resource)
        params = event.payload.get("params")
        if isinstance(params, dict):
            problem = params_problem(params, self.rules.max_replicas)
            if problem is not None:
                self._fail("allowlist_bounds", f"{kind} on {resource}: {problem}", event)

    def _outcome(self, event: Event) -> None:
        action_id = event.action_id or ""
        started = self._open.get(action_id)
        if started is not None and self._breakers.forgiven(event):
            self._uncharge(started.resource or "", started.action_kind or "", started.ts)
        if started is not None and _withheld(event):
            self._unsent(started)
        if self._open.pop(action_id, None) is not None:
            self._closed.add(action_id)
            if event.kind is EventKind.ACTION_UNKNOWN:
                self._unknown.add(action_id)
            self._closed_order.append(action_id)
            if len(self._closed_order) > _CLOSED_MEMORY:
                forgotten = self._closed_order.popleft()
                self._closed.discard(forgotten)
                self._unknown.discard(forgotten)
            return
        if action_id in self._unknown and event.payload.get("confirmed") is True:
            self._unknown.discard(action_id)  # the provider proved the unknown change made
            return
        what = "a second outcome" if action_id in self._closed else "an outcome with no intent"
        self._fail("one_outcome", f"{what} for action {action_id or '?'}", event)

    def _unsent(self, intent: Event) -> None:
        """An intent closed as never sent: no attempt, no action of its tick, no provider call."""
        resource, kind = intent.resource or "", intent.action_kind or ""
        self._uncharge(resource, kind, intent.ts)
        self._tick_started[(resource, kind)] -= 1
        self._per_tick[intent.tick_id or ""] -= 1

    # -- the provider's record ------------------------------------------------

    def feed_calls(self, calls: Iterable[ProviderCall]) -> None:
        """Check the witness: what the provider received, interleaved with the operator's flips."""
        for call in calls:
            self.customers.call(call)
            if call.what in {"engage", "release"}:
                self._witness_engaged = call.what == "engage"
                self._witness_wiped = False  # the flip wrote a record again
            elif call.what == "switch_wiped":
                self._witness_wiped = True
            elif call.what == "switch_down":
                self._witness_unreadable = True
            elif call.what == "switch_up":
                self._witness_unreadable = False
            elif call.action is not None:
                self._applied(call, call.action)

    def _applied(self, call: ProviderCall, action: Action) -> None:
        uri, kind = str(action.target), action.kind
        self.checks["witness"] += 1
        self._tick_applied[(uri, kind)] += 1
        if self._witness_engaged or self._witness_unreadable:
            why = "engaged" if self._witness_engaged else "unreadable"
            if self._witness_wiped:
                why += " (its Redis had restarted empty)"
            self.violations.append(
                Violation(
                    "killswitch",
                    f"the provider received {kind} on {uri} while the kill switch was {why}",
                    call.at,
                )
            )
        if not self.rules.allowed(uri, kind):
            self.violations.append(
                Violation("allowlist_bounds", f"the provider received {kind} on {uri}", call.at)
            )
        problem = call_problem(call, action, self.rules.max_traffic_shift)
        if problem is not None:
            self.violations.append(
                Violation("allowlist_bounds", f"the provider was asked {problem}", at=call.at)
            )
        if isinstance(action.params, SetDnsWeights):
            self.checks[FAILOVER] += 1
            before = call.weights_before or {}
            dns = dns_write_problem(
                action.params, before, call.dark, self.rules.max_dns_weight_shift
            )
            if dns is not None:
                self.violations.append(Violation(FAILOVER, f"{uri}: {dns}", at=call.at))

    def feed_customers(
        self,
        sends: Iterable[Sent],
        stripe_calls: Iterable[StripeCall],
        access: Iterable[AccessChange] = (),
    ) -> None:
        """The simulated mailer's, Stripe's and access's records (`jarvis.simulation.customers`)."""
        for sent in sends:
            self.customers.sent(sent)
        for call in stripe_calls:
            self.customers.stripe(call)
        for change in access:
            self.customers.access(change)

    # -- the end of a tick ----------------------------------------------------

    def end_tick(
        self, tick_id: str | None, states: Sequence[ResourceState], *, settled: bool = True
    ) -> None:
        """Intents closed, intents matching provider calls, and the world within bounds.

        ``settled=False``: the store's record is incomplete (events wait in the
        spool while the database is away), so only the world is checked now;
        the record is checked, across all the ticks it spans, at the first
        settled tick after the replay.
        """
        services = 0
        for state in states:
            if state.ref.provider == "route":
                self._check_route(state, tick_id)
                continue
            services += 1
            # `_check_state`'s passing case written out, every check still made: this
            # runs for every service every tick, and nearly every one passes. Any
            # other state goes to `_check_state`, which checks it again and says why.
            replicas = state.replicas
            if state.weights is None and (
                replicas is None
                or (
                    (replicas.min or 0) <= replicas.desired
                    and (replicas.max is None or replicas.desired <= replicas.max)
                )
            ):
                continue
            self._check_state(state, tick_id)
        if services:  # a key only for what was checked, as the report lists them
            self.checks["capacity_bounds"] += services
        if self._breakers.checks:
            self.checks[BREAKERS] += self._breakers.checks
            self._breakers.checks = 0
        if self._epochs.checks:
            self.checks[STALE_EPOCH] += self._epochs.checks
            self._epochs.checks = 0
        for message, event in self._breakers.problems:
            self._fail(BREAKERS, message, event)
        self._breakers.problems.clear()
        self._breakers.end_tick()
        if self._witness_wiped and self._witness_engaged:
            self.checks["killswitch.redis_restart"] += 1
        self._end_processes()
        self._end_customers(tick_id)
        if settled:
            self._settle(tick_id)

    def _end_processes(self) -> None:
        watch = self.processes
        for name, count in watch.checks.items():
            if count:
                self.checks[name] += count
                watch.checks[name] = 0
        for name, message, event in watch.problems:
            if event is None:
                self.violations.append(Violation(name, message))
            else:
                self._fail(name, message, event)
        watch.problems.clear()

    def _end_customers(self, tick_id: str | None) -> None:
        watch = self.customers
        if watch.checks:  # nearly always empty, and `Counter.update` is Python code
            self.checks.update(watch.checks)
            watch.checks.clear()
        for name, message, at in watch.problems:
            self.violations.append(Violation(name, message, at=at, tick_id=tick_id))
        watch.problems.clear()

    def _settle(self, tick_id: str | None) -> None:
        # The reconciler records each outcome in the tick that started the action.
        for action_id, intent in self._open.items():
            self._fail("one_outcome", f"action {action_id} has no outcome", intent)
        self._open.clear()
        # Most ticks start nothing: skip `Counter`'s Python-level comparison then.
        if (self._tick_started or self._tick_applied) and self._tick_started != self._tick_applied:
            missing = self._tick_applied - self._tick_started
            extra = self._tick_started - self._tick_applied
            self.violations.append(
                Violation(
                    "witness",
                    f"provider calls without a recorded intent: {sorted(missing)}; "
                    f"intents the provider never received: {sorted(extra)}",
                    tick_id=tick_id,
                )
            )
        self._tick_started.clear()
        self._tick_applied.clear()
        self._touched.clear()
        self._per_tick.clear()

    def _check_state(self, state: ResourceState, tick_id: str | None) -> None:
        """A service's replicas within its bounds and its weights whole (counted by the caller)."""
        replicas = state.replicas
        if replicas is not None:
            low = 0 if replicas.min is None else replicas.min
            high = math.inf if replicas.max is None else replicas.max
            if not low <= replicas.desired <= high:
                self.violations.append(
                    Violation(
                        "capacity_bounds",
                        f"{state.ref} wants {replicas.desired} replicas, outside "
                        f"{replicas.min}..{replicas.max}",
                        at=state.observed_at,
                        tick_id=tick_id,
                    )
                )
        if state.weights is not None and state.weights.weights:
            weights: dict[object, object] = {}
            weights.update(state.weights.weights)
            problem = weights_problem(weights)
            if problem is not None:
                self.violations.append(
                    Violation("capacity_bounds", f"{state.ref}: {problem}", tick_id=tick_id)
                )

    def _check_route(self, state: ResourceState, tick_id: str | None) -> None:
        self.checks["capacity_bounds.weights"] += 1
        facet = state.weights
        if facet is None or not facet.weights:
            problem: str | None = "no weights"
        else:
            weights: dict[object, object] = dict(facet.weights.items())
            problem = weights_problem(weights) or floors_problem(weights, dict(facet.floors))
        if problem is not None:
            self.violations.append(
                Violation(
                    "capacity_bounds",
                    f"{state.ref}: {problem}",
                    at=state.observed_at,
                    tick_id=tick_id,
                )
            )


def _withheld(event: Event) -> bool:
    """An ``action.failed`` that closes an intent the kill switch stopped before any call.

    Read from the payload with this module's own code, as the loop writes it
    (`jarvis.model.Outcome.withheld`): no error kind, the block reason as code.
    """
    payload = event.payload
    return (
        event.kind is EventKind.ACTION_FAILED
        and payload.get("error_kind") is None
        and payload.get("error_code") == "killswitch"
    )
