"""One route of the simulated LLM platform: its models (lanes), weights, traffic and state.

Built and driven by `SimulatedLlm` (`jarvis.simulation.llm`), which keeps a
`Route` per configured route and integrates usage into its `Lane` counts;
`route_state` is how it publishes a route as the routing actuator
(`jarvis.actuators.llm.routing`) would observe it, and `lane_quality` draws a
model's per-route quality from the scenario's (`jarvis.simulation.llm_scenario`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import datetime

from jarvis.actuators.llm.routing import format_weight
from jarvis.config.cost import RouteSettings
from jarvis.model import (
    JSON,
    WEIGHT_TOLERANCE,
    Health,
    ResourceRef,
    ResourceState,
    RouteWeights,
)
from jarvis.simulation.llm_scenario import (
    DEFAULT_QUALITY,
    MODEL_QUALITY,
    ModelQuality,
    RouteTraffic,
)

TAU = 2.0 * math.pi


class Lane:
    """One model on one route: per-request constants and request counts.

    Tokens and cost per request are constants of the lane, so the running sums
    are request counts alone; everything else is a product at read time.
    """

    __slots__ = ("cost", "hour", "input", "latency", "model", "month", "output", "success")

    def __init__(
        self, model: str, traffic: RouteTraffic, quality: ModelQuality, price: tuple[float, float]
    ) -> None:
        self.model = model
        self.input = traffic.input_tokens
        self.output = traffic.output_tokens * quality.verbosity
        self.cost = (self.input * price[0] + self.output * price[1]) / 1000
        self.success = quality.success_rate
        self.latency = quality.latency_ms
        self.month = 0.0
        """Requests this month (fractional: usage is integrated in expectation)."""
        self.hour = 0.0
        """Requests in the hour being accrued."""


class Route:
    """A route's configuration, traffic, current weights and surge."""

    def __init__(
        self,
        name: str,
        config: RouteSettings,
        traffic: RouteTraffic,
        lanes: list[Lane],
        phases: tuple[float, float],
    ) -> None:
        self.name = name
        self.traffic = traffic
        self.lanes = lanes
        self.phases = phases
        self.ref = ResourceRef("route", name, kind="route")
        self.config = config
        self.models = list(config.models)
        self.configured = dict(config.weights)
        self.floors = dict(config.floors)
        self.baseline_cost = math.fsum(
            config.weights.get(lane.model, 0.0) * lane.cost for lane in lanes
        )
        self.baseline_month = 0.0
        self.weights: dict[str, float] = {}
        self.shares: list[float] = []
        self.version = 0
        self.updated_at: str | None = None
        self.health = Health.HEALTHY
        self.detail = ""
        """The state's health and detail: they follow the weights, so `write` sets them."""
        self.attributes: dict[str, JSON] = {}
        """The state's attributes on every tick but the seeded one, built by `write` and `seed`."""
        self.surge = (1.0, -math.inf)
        """(factor, until epoch seconds)."""
        self.facet = RouteWeights({}, 0, self.floors)
        """The weights facet, built by `write` and shared by every state until the next."""
        self.seen: tuple[datetime, bool, ResourceState] | None = None
        """(now, seeded, state) of the last `state`; None once `write` or `seed` changed it."""
        self.write(self.configured, None)

    def write(self, weights: Mapping[str, float], at: datetime | None) -> None:
        # Stored as the routing actuator writes Redis: six-decimal text, read back.
        self.weights = {m: float(format_weight(w)) for m, w in weights.items()}
        self.shares = [self.weights.get(lane.model, 0.0) for lane in self.lanes]
        self.version += 1
        self.facet = RouteWeights(self.weights, self.version, self.floors)
        self.updated_at = None if at is None else at.isoformat()
        shown = " ".join(f"{m}={format_weight(w)}" for m, w in self.weights.items())
        total = math.fsum(self.weights.values())
        healthy = bool(self.weights) and abs(total - 1) <= WEIGHT_TOLERANCE
        self.health = Health.HEALTHY if healthy else Health.DEGRADED
        self.detail = f"v{self.version} {shown}"
        if not healthy:
            self.detail += f" (weights sum to {total:g}, not 1)"
        self._changed()

    def _changed(self) -> None:
        """What a state shows changed: its attributes are rebuilt and the last state dropped."""
        self.attributes = {
            "configured_weights": self.configured,
            "models": self.models,
            "updated_at": self.updated_at,
            "seeded": False,
        }
        self.seen = None

    def state(self, now: datetime, *, seeded: bool = False) -> ResourceState:
        """`route_state` at ``now``, reused while the route and ``now`` stay the same.

        The simulation reads every route twice per tick at the same instant
        (the routing actuator's observe, then the invariant checker's ground
        truth); building one is a frozen dataclass of sixteen fields.
        ``now`` must be the very object the last build used (the virtual clock
        hands out one per instant); `write` and `seed`, the only changes to
        what a state shows, drop the cache.
        """
        seen = self.seen
        if seen is not None and seen[0] is now and seen[1] is seeded:
            return seen[2]
        state = route_state(self, now, seeded=seeded)
        self.seen = (now, seeded, state)
        return state

    def seed(self, at: datetime) -> None:
        """The routing actuator wrote the route's hash at ``at``, if nothing had before."""
        if self.updated_at is None:
            self.updated_at = at.isoformat()
            self._changed()

    def rpm(self, epoch: float, day: float) -> float:
        """Requests per minute at ``epoch``: the day curve, a +-8 % wobble, any surge."""
        a, b = self.phases
        wobble = (
            1.0 + 0.05 * math.sin(TAU * epoch / 2220 + a) + 0.03 * math.sin(TAU * epoch / 6780 + b)
        )
        factor, until = self.surge
        return self.traffic.peak_rpm * day * wobble * (factor if epoch < until else 1.0)


def lane_quality(model: str, rng: random.Random) -> ModelQuality:
    known = MODEL_QUALITY.get(model, DEFAULT_QUALITY)
    # A little per-route spread, drawn once: the same model does not score
    # identically on chat and on code.
    return ModelQuality(
        min(1.0, known.success_rate + rng.uniform(-0.002, 0.002)),
        known.latency_ms * rng.uniform(0.95, 1.05),
        known.verbosity,
    )


def route_state(route: Route, now: datetime, *, seeded: bool = False) -> ResourceState:
    """The route at ``now``: what `Route.write` and `Route.seed` built, observed now.

    States share the route's attributes (read, never changed) but for the
    seeded flag, which the routing actuator raises on one tick only.
    """
    return ResourceState(
        ref=route.ref,
        health=route.health,
        observed_at=now,
        detail=route.detail,
        attributes={**route.attributes, "seeded": True} if seeded else route.attributes,
        weights=route.facet,
    )
