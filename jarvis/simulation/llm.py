"""The simulated LLM platform: routes, per-model usage and spend, in virtual time.

Built by the harness (`jarvis.simulation.harness`) from the run's ``[routing]``
and ``[cost]`` settings, which are the simulation's own
(`jarvis.simulation.llm_scenario`) when the configuration enables neither.
It stands in for the applications that send LLM requests through the routes
and record them in ``llm_usage``, and for the Redis hashes that hold the
routes' weights. The reconciler reads and changes it through the actuators of
`jarvis.simulation.llm_actuators`, which publish what this module builds in
the real actuators' shapes, so the real cost policy runs against it
unchanged: ``route://<name>`` as `jarvis.actuators.llm.routing` publishes it
(`route_states`, written by `set_weights`) and ``cost://llm`` as
`jarvis.actuators.llm.usage` does (`usage_state`).

Traffic on a route follows the fleet's day curve
(`jarvis.actuators.sim.traffic.day_factor`) times a seeded wobble, times any
``llm_surge`` fault. Usage is integrated in expectation rather than drawn per
request: `advance` adds rate x elapsed x weight to per-(route, model)
month-to-date sums and to the current hour's bucket, so a tick costs a few
dozen float operations whatever the traffic. Months are UTC calendar months;
crossing a month start files the month's total and starts again from zero.
The performance window is made of whole hours (it lags by up to one), which
lets the ``performance`` attribute be rebuilt once an hour, not every tick.

The platform was serving traffic before the run: at construction it
integrates its own history at the configured weights from the start of the
month (or of the performance window, if earlier), so the first month end a
run crosses compares a whole month's spend with the budget.

A route, its lanes (one per model) and its published state are
`jarvis.simulation.llm_routes`; this module integrates usage across them.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from jarvis.actuators.llm.routing import checked_params, format_weight
from jarvis.actuators.llm.spend import MonthRow, WindowRow, performance_of, usage_state
from jarvis.actuators.sim.traffic import day_factor
from jarvis.config import Settings
from jarvis.config.cost import RouteSettings
from jarvis.model import (
    Action,
    ModelPerformance,
    Outcome,
    ResourceState,
    month_bounds,
    month_key,
)
from jarvis.simulation.llm_routes import TAU, Lane, Route, lane_quality
from jarvis.simulation.llm_scenario import SIM_TRAFFIC, RouteTraffic

HOUR = 3600.0


class SimulatedLlm:
    """The platform: routes, their weights, and usage integrated over virtual time."""

    def __init__(
        self,
        routes: Mapping[str, RouteSettings],
        prices: Mapping[str, tuple[float, float]],
        *,
        seed: int,
        start: datetime,
        window_days: int = 7,
        traffic: Mapping[str, RouteTraffic] | None = None,
    ) -> None:
        rng = random.Random(f"{seed}:llm")  # noqa: S311 -- a reproducible simulation
        demand = SIM_TRAFFIC if traffic is None else traffic
        self._routes: list[Route] = []
        for name, config in routes.items():
            route_traffic = demand.get(name) or RouteTraffic(
                rng.uniform(10.0, 60.0), rng.uniform(500.0, 2500.0), rng.uniform(150.0, 600.0)
            )
            lanes = [
                Lane(model, route_traffic, lane_quality(model, rng), prices.get(model, (0.0, 0.0)))
                for model in config.models
            ]
            phases = (rng.uniform(0.0, TAU), rng.uniform(0.0, TAU))
            self._routes.append(Route(name, config, route_traffic, lanes, phases))
        self._by_name = {route.name: route for route in self._routes}
        self.window_days = window_days
        self._window_hours = window_days * 24
        self._buckets: deque[tuple[int, list[float]]] = deque()
        self._window = [0.0 for _ in self._lanes()]
        """Requests per lane over the whole hours of the performance window."""
        self._performance: dict[str, dict[str, ModelPerformance]] = {}
        """The window's records, rebuilt hourly as the window moves and shared by the
        states observed in between (facets are read, never changed)."""
        self.closed_months: dict[str, float] = {}
        """Each whole month the platform saw end: its total spend in USD."""
        month_start, _ = month_bounds(start)
        history = min(month_start, start - timedelta(days=window_days))
        self._history = self._now = history.timestamp()
        self._hour = math.floor(self._now / HOUR)
        self._month_start, self._month_end = (b.timestamp() for b in month_bounds(history))
        self._month = month_key(history)
        self.advance(start)

    @classmethod
    def from_settings(cls, settings: Settings, *, seed: int, start: datetime) -> SimulatedLlm:
        """The routes of ``[routing]`` (when enabled) at the prices of ``[cost]``."""
        routes = settings.routing.routes if settings.routing.enabled else {}
        prices = {m: (p.input_per_1k, p.output_per_1k) for m, p in settings.cost.prices.items()}
        window = settings.cost.performance.window_days
        return cls(routes, prices, seed=seed, start=start, window_days=window)

    # -- the world's clock -----------------------------------------------------

    @property
    def route_names(self) -> list[str]:
        return [route.name for route in self._routes]

    @property
    def now(self) -> datetime:
        """How far usage has been integrated."""
        return datetime.fromtimestamp(self._now, UTC)

    def _lanes(self) -> Iterable[Lane]:
        for route in self._routes:
            yield from route.lanes

    def advance(self, now: datetime) -> None:
        """Integrate usage up to ``now``; a clock that went back integrates nothing."""
        end = now.timestamp()
        t = self._now
        while t < end:
            boundary = (self._hour + 1) * HOUR
            stop = min(end, boundary)
            self._accrue(t, stop)
            t = stop
            if stop >= boundary:
                self._next_hour(boundary)
        self._now = max(self._now, end)

    def _accrue(self, t0: float, t1: float) -> None:
        minutes = (t1 - t0) / 60.0
        mid = (t0 + t1) / 2.0
        day = day_factor(datetime.fromtimestamp(mid, UTC))
        for route in self._routes:
            requests = route.rpm(mid, day) * minutes
            route.baseline_month += requests * route.baseline_cost
            for lane, share in zip(route.lanes, route.shares, strict=True):
                if share > 0.0:
                    n = requests * share
                    lane.month += n
                    lane.hour += n

    def _next_hour(self, boundary: float) -> None:
        lanes = list(self._lanes())
        bucket = [lane.hour for lane in lanes]
        self._buckets.append((self._hour, bucket))
        for index, lane in enumerate(lanes):
            self._window[index] += lane.hour
            lane.hour = 0.0
        self._hour += 1
        while self._buckets and self._buckets[0][0] < self._hour - self._window_hours:
            _, dropped = self._buckets.popleft()
            for index, gone in enumerate(dropped):
                # Clamped: subtracting what was added can leave -1e-13, not a request.
                self._window[index] = max(0.0, self._window[index] - gone)
        self._performance = performance_of(self._window_performance())
        if boundary >= self._month_end:
            self._close_month(boundary)

    def _close_month(self, boundary: float) -> None:
        if self._month_start >= self._history:
            self.closed_months[self._month] = self.month_to_date_usd()
        for lane in self._lanes():
            lane.month = 0.0
        for route in self._routes:
            route.baseline_month = 0.0
        start, end = month_bounds(datetime.fromtimestamp(boundary, UTC))
        self._month_start, self._month_end = start.timestamp(), end.timestamp()
        self._month = month_key(start)

    # -- what can be read --------------------------------------------------------

    @property
    def month(self) -> str:
        return self._month

    def month_to_date_usd(self) -> float:
        return math.fsum(lane.month * lane.cost for lane in self._lanes())

    def baseline_month_to_date_usd(self) -> float:
        """What this month would have cost so far had the configured weights never moved."""
        return math.fsum(route.baseline_month for route in self._routes)

    def weights(self, route: str) -> dict[str, float] | None:
        found = self._by_name.get(route)
        return None if found is None else dict(found.weights)

    def route_states(
        self, now: datetime, *, seeded: frozenset[str] = frozenset()
    ) -> list[ResourceState]:
        """Every route as the routing actuator observes it; ``seeded`` ones were just written."""
        states = []
        for route in self._routes:
            first = route.name in seeded
            if first:
                route.seed(now)
            states.append(route.state(now, seeded=first))
        return states

    def usage_state(self, now: datetime) -> ResourceState:
        """``cost://llm`` as the `llm_usage` actuator would publish it, by the same builder."""
        start = self._month_start
        return usage_state(
            self._month_rows(),
            self._performance,
            month=self._month,
            window_days=self.window_days,
            month_seconds=self._month_end - start,
            elapsed_seconds=self._now - start,
            observed_at=now,
        )

    def _month_rows(self) -> list[MonthRow]:
        rows = []
        for route in self._routes:
            for lane in route.lanes:
                count = round(lane.month)
                if count > 0:
                    rows.append(
                        MonthRow(
                            route.name,
                            lane.model,
                            count,
                            lane.month * lane.cost,
                            round(count * lane.input),
                            round(count * lane.output),
                        )
                    )
        return rows

    def _window_performance(self) -> list[WindowRow]:
        rows = []
        window = iter(self._window)
        for route in self._routes:
            for lane in route.lanes:
                count = round(next(window))
                if count > 0:
                    rows.append(
                        WindowRow(
                            route.name,
                            lane.model,
                            count,
                            lane.success,
                            lane.latency,
                            count * lane.cost,
                            round(count * lane.input),
                            round(count * lane.output),
                        )
                    )
        return rows

    # -- what can be changed -----------------------------------------------------

    def set_weights(self, action: Action, now: datetime) -> Outcome:
        """Write a route's weights, refusing what the routing actuator would refuse."""
        route = self._by_name.get(action.target.name)
        params = checked_params(
            action, None if route is None else route.config, {} if route is None else route.weights
        )
        if isinstance(params, Outcome):
            return params
        assert route is not None  # noqa: S101 - checked_params refuses an unconfigured route
        self.advance(now)
        route.write(params.weights, now)
        shown = " ".join(f"{m}={format_weight(w)}" for m, w in route.weights.items())
        return Outcome.success(f"{route.name} weights v{route.version}: {shown}")

    def surge(self, route: str | None, factor: float, until: datetime) -> bool:
        """Multiply a route's traffic (every route's, for None) by ``factor`` until ``until``.

        False when no route was struck (the platform has none, or not that one).
        """
        struck = [r for r in self._routes if route is None or r.name == route]
        for found in struck:
            found.surge = (factor, until.timestamp())
        return bool(struck)
