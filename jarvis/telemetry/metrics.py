"""Prometheus metrics for the daemon, on a registry owned by one `Metrics` object.

The composition root builds one `Metrics` and hands it to the loop (which
counts ticks, actions, observe errors and sets the gauges), the event writer
(events written and spooled) and the HTTP server (admin requests, and
``GET /metrics``, which calls `Metrics.render`). Nothing here touches the
global prometheus registry, so two daemons, or two tests, coexist in one
process. Names follow the Prometheus conventions: base units in the name,
``_total`` on counters. Beside Jarvis's own metrics the registry carries the
standard ``process_*`` and ``python_info`` series; the ``_created`` samples
prometheus_client adds to counters and histograms are left out of the
exposition (see `render`).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from jarvis.model import ActionKind, BlockReason, Movement, ResourceState, RevenueDay

__all__ = [
    "ACTION_OUTCOMES",
    "ADMIN_RESULTS",
    "DURATION_BUCKETS",
    "NOTIFICATION_OUTCOMES",
    "OBSERVE_BUCKETS",
    "RESOLVED_OUTCOMES",
    "TICK_BUCKETS",
    "TICK_OUTCOMES",
    "Metrics",
]


class BudgetLeft(Protocol):
    """What the budget gauge reads of one budget (`jarvis.safety.Remaining` is one).

    A protocol rather than the safety type, so telemetry (and notify, which
    counts through it) never imports the guard.
    """

    @property
    def budget(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def remaining(self) -> int | None: ...


#: 1 ms .. 60 s: a simulated tick takes milliseconds, a slow cloud API tens of seconds.
DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0,
)  # fmt: skip
#: DURATION_BUCKETS then up to the hour ``loop.observe_timeout`` may be (endpoint
#: probes may need minutes of it: `jarvis.config.endpoints.endpoints_fit`). Four
#: series more per actuator, since this histogram is labelled by actuator.
OBSERVE_BUCKETS: Final = (*DURATION_BUCKETS, 120.0, 300.0, 900.0, 3600.0)
#: DURATION_BUCKETS then minutes to a day: ``loop.interval`` and ``tick_timeout``
#: may each be up to a day, and a tick past the last bucket only says "+Inf"
#: (the p95 panel read 60 s for a ten-minute tick). Unlabelled, so these eight
#: buckets are eight series.
TICK_BUCKETS: Final = (
    *DURATION_BUCKETS, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
)  # fmt: skip
#: 5 ms .. 10 s around the 100 ms cross-cloud target, for endpoint probes, then up
#: to the 60 s an endpoint's ``timeout_seconds`` may be: a timed-out probe counts as
#: its timeout, which past the last bucket only says "+Inf".
ENDPOINT_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    20.0, 30.0, 60.0,
)  # fmt: skip
TICK_OUTCOMES: Final = ("ok", "failed", "timed_out")
ACTION_OUTCOMES: Final = (
    "proposed",
    "applied",
    "failed",
    "gone",
    "timed_out",
    "blocked",
    "unknown",
)
#: What an unknown outcome proved once the provider answered (`jarvis.loop.unknowns`).
RESOLVED_OUTCOMES: Final = ("applied",)
NOTIFICATION_OUTCOMES: Final = ("sent", "partial", "retried", "failed")
ADMIN_METHODS: Final = ("GET", "POST")
ADMIN_RESULTS: Final = ("ok", "unauthorized", "forbidden", "bad_request", "error")


def _jarvis_version() -> str:
    try:
        return version("jarvis")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _WithoutCreated(Collector):
    """A registry's metrics less the ``_created`` sample of each counter and histogram.

    Those samples (one per labelled series, 63 of them) carry the time a series
    was first touched; no dashboard or alert of ours reads them. Dropping them
    here, per registry, rather than through prometheus_client's
    ``disable_created_metrics()`` or ``PROMETHEUS_DISABLE_CREATED_SERIES``,
    keeps the switch out of the library's process-wide state.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            created = f"{metric.name}_created"
            # collect() builds fresh Metric objects, so filtering in place is safe.
            metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


class _RevenueGauges(Collector):
    """``jarvis_mrr_usd``, ``jarvis_mrr_movement_usd`` and ``jarvis_customers``, from the last
    settlement, while this replica does the fleet-wide duties; no sample otherwise.

    One replica settles the revenue book for the fleet. Another that exported a
    value (its own last settlement before it lost the duties, or 0 before any)
    would be counted twice by a sum, or stay stale forever under a max: the
    series go the moment the duty rule says they are not this replica's, read
    at each scrape rather than at the keeper's next check (an hour away).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.settled: RevenueDay | None = None
        """The revenue ledger's last settlement here; None: none (or the duties went)."""
        self.held: Callable[[], bool] = lambda: True
        """The fleet-wide duties' rule (`Metrics.fleet_duties`); one node holds them."""
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        mrr = GaugeMetricFamily(
            "jarvis_mrr_usd",
            "Monthly recurring revenue at the last settlement of the revenue ledger, in USD; "
            "exported only by the replica doing the fleet-wide duties.",
        )
        movement = GaugeMetricFamily(
            "jarvis_mrr_movement_usd",
            "MRR moved so far in the current UTC day (at the last settlement), by kind.",
            labels=["kind"],
        )
        customers = GaugeMetricFamily(
            "jarvis_customers",
            "Customers at the last revenue settlement, by subscription status (none: none yet).",
            labels=["status"],
        )
        day = self.settled
        if day is not None and self.held():
            mrr.add_metric([], day.mrr_usd)
            for kind in Movement:
                movement.add_metric([kind.value], day.usd(kind))
            for status, count in sorted(day.customers.items()):
                customers.add_metric([status], count)
        yield from (mrr, movement, customers)


class Metrics:
    """Every metric Jarvis exports, as attributes, on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)

        self.ticks = Counter(
            "jarvis_ticks_total", "Ticks finished, by outcome.", ["outcome"], registry=reg
        )
        self.tick_duration = Histogram(
            "jarvis_tick_duration_seconds",
            "Wall time of one tick, observe to record.",
            buckets=TICK_BUCKETS,
            registry=reg,
        )
        self.tick_overruns = Counter(
            "jarvis_tick_overruns_total",
            "Ticks that ran past the next tick's start; the next one was skipped, not stacked.",
            registry=reg,
        )
        self.actions = Counter(
            "jarvis_actions_total",
            "Actions by kind and by what became of them.",
            ["kind", "outcome"],
            registry=reg,
        )
        self.unknown_resolved = Counter(
            "jarvis_unknown_outcomes_resolved_total",
            "Actions counted unknown (timed_out, or unknown after a restart) in "
            "jarvis_actions_total whose outcome was proven later, by kind and by what it "
            "proved (applied); jarvis_actions_total keeps its one count of each action.",
            ["kind", "outcome"],
            registry=reg,
        )
        self.actions_blocked = Counter(
            "jarvis_actions_blocked_total",
            "Actions the guard refused, by reason.",
            ["reason"],
            registry=reg,
        )
        self.escalations = Counter(
            "jarvis_escalations_total",
            "Resources escalated after exhausting their retry budget.",
            registry=reg,
        )
        self.policy_failures = Counter(
            "jarvis_policy_failures_total",
            "Policy evaluations that raised, by policy; the tick went on without them.",
            ["policy"],
            registry=reg,
        )
        self.killswitch_engaged = Gauge(
            "jarvis_killswitch_engaged",
            "1 while the kill switch is engaged (or unreadable), else 0.",
            registry=reg,
        )
        self.breaker_open = Gauge(
            "jarvis_breaker_open",
            "1 while a circuit breaker holds actions (open or half-open), else 0; "
            'scope="provider" per provider, scope="fleet" with provider="all".',
            ["scope", "provider"],
            registry=reg,
        )
        self.quarantined_resources = Gauge(
            "jarvis_quarantined_resources",
            "Resources quarantined until an operator resets them.",
            registry=reg,
        )
        self.notifications = Counter(
            "jarvis_notifications_total",
            "Notification delivery attempts by channel and outcome (sent, partial: sent but "
            "refused for some email recipients, retried, failed).",
            ["channel", "outcome"],
            registry=reg,
        )
        self.stripe_webhooks = Counter(
            "jarvis_stripe_webhooks_total",
            "Stripe webhook deliveries by outcome (applied, replayed, stale, ignored, "
            "unknown_customer, bad_signature, bad_payload, too_large, unavailable).",
            ["outcome"],
            registry=reg,
        )
        self.observe_errors = Counter(
            "jarvis_observe_errors_total",
            "Failed observations, by actuator.",
            ["actuator"],
            registry=reg,
        )
        self.observe_duration = Histogram(
            "jarvis_observe_duration_seconds",
            "Wall time of one actuator's observe().",
            ["actuator"],
            buckets=OBSERVE_BUCKETS,
            registry=reg,
        )
        self.resources = Gauge(
            "jarvis_resources",
            "Resources seen in the last tick, by provider and health.",
            ["provider", "health"],
            registry=reg,
        )
        # Bound children of the per-tick series, kept: `labels()` per call
        # (keyword parsing, a lock, a dict lookup) cost ~2 % of a simulated tick.
        # A child removed from its metric is dropped here too.
        self._resource_series: dict[tuple[str, str], Gauge] = {}
        self._observe_series: dict[str, Histogram] = {}
        self._tick_series: dict[str, Counter] = {}
        self.budget_remaining = Gauge(
            "jarvis_disruption_budget_remaining",
            "Changes a disruption budget still allows in its window (+Inf outside its schedule).",
            ["kind", "provider", "budget"],
            registry=reg,
        )
        self.budget_limit = Gauge(
            "jarvis_disruption_budget_limit",
            "Changes a disruption budget allows in its window (+Inf outside its schedule); "
            "0 forbids them (max = 0, or max_percent of no matching resource).",
            ["kind", "provider", "budget"],
            registry=reg,
        )
        self.last_tick_timestamp = Gauge(
            "jarvis_last_tick_timestamp_seconds",
            "Unix time at which the last tick finished.",
            registry=reg,
        )
        self.loop_interval = Gauge(
            "jarvis_loop_interval_seconds",
            "loop.interval: the seconds between tick starts (what JarvisLoopStalled measures by).",
            registry=reg,
        )
        self.events_written = Counter(
            "jarvis_events_written_total", "Events written to the event store.", registry=reg
        )
        self.events_spooled = Counter(
            "jarvis_events_spooled_total",
            "Events spooled to the local file while the store was unreachable.",
            registry=reg,
        )
        self.events_pruned = Counter(
            "jarvis_events_pruned_total",
            "Events deleted by retention, by kind.",
            ["kind"],
            registry=reg,
        )
        self.spool_dead_letters = Counter(
            "jarvis_spool_dead_letters_total",
            "Spool lines that could not be read, set aside in the dead-letter file.",
            registry=reg,
        )
        self.admin_requests = Counter(
            "jarvis_admin_requests_total",
            "Admin API requests, by method and result.",
            ["method", "result"],
            registry=reg,
        )
        self.leader = Gauge(
            "jarvis_leader",
            "1 while this replica holds the leader lease and runs the loop, else 0.",
            registry=reg,
        )
        self.shards_held = Gauge(
            "jarvis_shards_held",
            "Shards of the fleet this replica holds the lease of and ticks (loop.shards > 1).",
            registry=reg,
        )
        self.shards_unheld = Gauge(
            "jarvis_shards_unheld",
            "Shards of the fleet no replica holds a live lease of, as this replica last read "
            "the leases (loop.shards > 1).",
            registry=reg,
        )
        self.shards_unheld_seconds = Gauge(
            "jarvis_shards_unheld_seconds",
            "How long the shard longest without a holder has been so, as this replica has "
            "watched the leases (database clock); 0 while every shard is held.",
            registry=reg,
        )
        self.lease_duration = Gauge(
            "jarvis_lease_duration_seconds",
            "lease.duration: how long a lease lasts unrenewed (set with shards, where "
            "JarvisShardUnheld measures by it).",
            registry=reg,
        )
        self.leader_transitions = Counter(
            "jarvis_leader_transitions_total",
            "Times this replica became leader or stepped down, by direction.",
            ["direction"],
            registry=reg,
        )
        self.endpoint_latency = Histogram(
            "jarvis_endpoint_latency_seconds",
            "Round trip of one endpoint probe from where Jarvis runs (a timeout counts as it).",
            ["endpoint", "region", "cloud"],
            buckets=ENDPOINT_BUCKETS,
            registry=reg,
        )
        self.endpoint_up = Gauge(
            "jarvis_endpoint_up",
            "1 when an endpoint's last probe met its expectations (status, body, time), else 0.",
            ["endpoint", "region", "cloud"],
            registry=reg,
        )
        self.slo_ok = Gauge(
            "jarvis_slo_ok",
            "1 while a latency SLO is met over its window, 0 while broken; absent while its window "
            "holds too few probes to judge.",
            ["slo"],
            registry=reg,
        )
        self._revenue = _RevenueGauges(reg)
        # No model label: applications name the models, so their number has no bound.
        self.llm_unpriced_models = Gauge(
            "jarvis_llm_unpriced_models",
            "Models used this UTC month that no [cost.prices] entry matches (their requests "
            "are counted at the priciest price), at the last read of cost://llm.",
            registry=reg,
        )
        self.llm_unpriced_requests = Gauge(
            "jarvis_llm_unpriced_requests",
            "Requests this UTC month to models no [cost.prices] entry matches, at the last "
            "read of cost://llm.",
            registry=reg,
        )
        self.build_info = Gauge(
            "jarvis_build_info",
            "Always 1; the labels say which Jarvis and which Python are running.",
            ["version", "python"],
            registry=reg,
        )
        self.build_info.labels(version=_jarvis_version(), python=platform.python_version()).set(1)
        self._initialise_series()

    def _initialise_series(self) -> None:
        # Known label values start at 0 so rate() and alerts see a series
        # before the first increment, rather than "no data".
        for outcome in TICK_OUTCOMES:
            self.ticks.labels(outcome=outcome)
        for kind in ActionKind:
            for outcome in ACTION_OUTCOMES:
                self.actions.labels(kind=kind.value, outcome=outcome)
            for outcome in RESOLVED_OUTCOMES:
                self.unknown_resolved.labels(kind=kind.value, outcome=outcome)
        for reason in BlockReason:
            self.actions_blocked.labels(reason=reason.value)
        for direction in ("elected", "stepped_down"):
            self.leader_transitions.labels(direction=direction)
        for method in ADMIN_METHODS:
            for result in ADMIN_RESULTS:
                self.admin_requests.labels(method=method, result=result)

    def revenue(self, day: RevenueDay | None) -> None:
        """Export the revenue gauges of one settlement; None: export none (the duties went)."""
        self._revenue.settled = day

    def fleet_duties(self, held: Callable[[], bool]) -> None:
        """Export the gauges of a fleet-wide duty (the revenue's) only while ``held()`` says
        this replica does the duties (`jarvis.loop.duties.FleetDuties.held`), read at each
        scrape; until this is called, always (one node)."""
        self._revenue.held = held

    def llm_usage(self, state: ResourceState | None, *, ours: bool = True) -> None:
        """Set the unpriced-model gauges from this tick's ``cost://llm``; kept as they were
        when it was not read (its sensor failed, or there is none). Not ``ours`` (with shards,
        another replica holds its shard): 0, as on a follower, since its holder exports them."""
        if not ours:
            self.llm_unpriced_models.set(0)
            self.llm_unpriced_requests.set(0)
            return
        usage = None if state is None else state.llm_usage
        if usage is not None:
            self.llm_unpriced_models.set(len(usage.unpriced))
            self.llm_unpriced_requests.set(sum(s.requests for s in usage.unpriced.values()))

    def known_actuators(self, names: Iterable[str]) -> None:
        """Start the per-actuator series at zero for the actuators the daemon runs."""
        for name in names:
            self.observe_errors.labels(actuator=name)
            self.observe_duration.labels(actuator=name)

    def known_channels(self, names: Iterable[str]) -> None:
        """Start the per-channel notification series at zero for the configured channels."""
        for name in names:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(channel=name, outcome=outcome)

    def known_policies(self, names: Iterable[str]) -> None:
        """Start the per-policy failure series at zero for the policies the daemon runs."""
        for name in names:
            self.policy_failures.labels(policy=name)

    def set_resources(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the resource gauge with this tick's counts by (provider, health).

        A provider or health that vanished is removed, so it does not linger at
        its last value; the others keep their series, since clearing and
        re-creating every series each tick cost 2 % of a simulated tick.
        """
        series = self._resource_series
        for provider, health in [key for key in series if key not in counts]:
            self.resources.remove(provider, health)
            del series[provider, health]
        for key, count in counts.items():
            child = series.get(key)
            if child is None:
                provider, health = key
                child = series[key] = self.resources.labels(provider=provider, health=health)
            child.set(count)

    def stepped_down(self) -> None:
        """Put the gauges a leader's ticks set back to what a replica that never led shows.

        A follower ticks nothing, so nothing would ever move them again: an
        ex-leader exporting its last kill switch, breaker, quarantine, budget
        or SLO reading kept that alert firing after the new leader cleared it,
        and its resources were counted twice. Counters and histograms keep
        their counts, as they must within a process; the next term's first
        tick (and `Breakers.restore`) sets the gauges again.
        """
        self.killswitch_engaged.set(0)
        self.quarantined_resources.set(0)
        self.llm_usage(None, ours=False)
        self.set_resources({})
        for family in self.breaker_open.collect():
            for held in family.samples:
                self.breaker_open.labels(**held.labels).set(0)
        self.budget_remaining.clear()
        self.budget_limit.clear()
        self.endpoint_up.clear()
        self.slo_ok.clear()

    def observed(self, actuator: str, seconds: float) -> None:
        """Count one actuator's observe() and how long it took."""
        child = self._observe_series.get(actuator)
        if child is None:
            child = self._observe_series[actuator] = self.observe_duration.labels(actuator=actuator)
        child.observe(seconds)

    def ticked(self, outcome: str) -> None:
        """Count one tick by its outcome."""
        child = self._tick_series.get(outcome)
        if child is None:
            child = self._tick_series[outcome] = self.ticks.labels(outcome=outcome)
        child.inc()

    def set_budgets(self, rows: Iterable[BudgetLeft]) -> None:
        """Set each budget's limit and remaining changes; a budget whose schedule is not
        in force reads +Inf for both, since it does not limit then.

        The limit is what tells a freeze (0 allowed, so 0 left by design) from a
        budget that changes have spent; the alert on spent budgets reads both.
        """
        for row in rows:
            labels = {"kind": row.kind, "provider": row.provider, "budget": row.budget}
            for gauge, value in (
                (self.budget_limit, row.limit),
                (self.budget_remaining, row.remaining),
            ):
                gauge.labels(**labels).set(math.inf if value is None else value)

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every metric, less ``_created``, and its content type."""
        return generate_latest(_WithoutCreated(self.registry)), CONTENT_TYPE_LATEST
