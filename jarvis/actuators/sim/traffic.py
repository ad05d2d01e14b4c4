"""Traffic and load for the simulated fleet: a day/night curve and what load does to a service.

Called by `jarvis.actuators.sim.fleet` when it builds observed states. Everything
here is a pure function of time and of per-service constants drawn once from the
seed (`Profile.draw`), so an observation costs a handful of float operations per
service and the same instant always shows the same traffic, however many times
or in whatever order the fleet is observed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from jarvis.model import Metric

PEAK_HOUR_UTC = 15.0
"""Traffic peaks mid-afternoon UTC and bottoms out twelve hours later."""
NIGHT_FLOOR = 0.2
"""Night traffic as a fraction of the afternoon peak."""
DEGRADED_CPU = 90.0
"""Above this CPU percentage a service reports itself DEGRADED (overloaded)."""

_TAU = 2.0 * math.pi
# Two incommensurate periods (37 and 113 minutes) give a wobble that never
# visibly repeats, bounded to +-8 %: noise without a random draw per observation.
_NOISE_A = (0.05, _TAU / (37 * 60))
_NOISE_B = (0.03, _TAU / (113 * 60))
# The metric names, hoisted: `Profile.metrics` runs for every service every
# tick, and an enum member read from its class costs ten times a module global.
_RPM = Metric.REQUESTS_PER_MINUTE
_CPU = Metric.CPU_UTILIZATION
_P95 = Metric.P95_LATENCY_MS
_ERRORS = Metric.ERROR_RATE


def day_factor(now: datetime) -> float:
    """The fleet-wide traffic multiplier at ``now``: 1.0 at the peak, NIGHT_FLOOR at night."""
    utc = now.astimezone(UTC)
    hours = utc.hour + utc.minute / 60 + (utc.second + utc.microsecond / 1e6) / 3600
    swing = (1.0 + math.cos(_TAU * (hours - PEAK_HOUR_UTC) / 24.0)) / 2.0
    return NIGHT_FLOOR + (1.0 - NIGHT_FLOOR) * swing


@dataclass(frozen=True, slots=True)
class Profile:
    """The constants of one simulated service, drawn once from the fleet's seed."""

    peak_rpm: float
    """Requests per minute at the daily peak, before noise."""
    capacity_rpm: float
    """Requests per minute one replica serves at 100 % CPU."""
    base_latency_ms: float
    base_error_rate: float
    phase_a: float
    phase_b: float

    @classmethod
    def draw(cls, rng: random.Random, replicas: int) -> Profile:
        """Draw a service whose initial ``replicas`` run it at 55-80 % CPU at the peak.

        The margin keeps the default fleet healthy all day (noise adds at most
        8 %), so the newcomer's show is about crashes, not overload.
        """
        peak_rpm = rng.uniform(600.0, 6000.0)
        peak_utilization = rng.uniform(0.55, 0.80)
        return cls(
            peak_rpm=peak_rpm,
            capacity_rpm=peak_rpm / (replicas * peak_utilization),
            base_latency_ms=rng.uniform(40.0, 180.0),
            base_error_rate=rng.uniform(0.0005, 0.003),
            phase_a=rng.uniform(0.0, _TAU),
            phase_b=rng.uniform(0.0, _TAU),
        )

    def metrics(
        self, epoch_seconds: float, day: float, load: float, running: int
    ) -> dict[str, float]:
        """What the service's traffic at ``epoch_seconds`` offered to ``running`` replicas
        looks like from outside; ``day`` is `day_factor` then, ``load`` its surge factor.

        The traffic wobbles smoothly around the day's curve (within +-8 %,
        deterministic in time). With nothing running every request fails at
        the load balancer: CPU is 0, the error rate 1 and no request
        completes, so p95 latency reads 0. Past saturation the excess is
        dropped (errors) and latency climbs. One method, not a noise method
        and a metrics method: this runs per service per tick.
        """
        amp_a, freq_a = _NOISE_A
        amp_b, freq_b = _NOISE_B
        wobble = (
            1.0
            + amp_a * math.sin(freq_a * epoch_seconds + self.phase_a)
            + amp_b * math.sin(freq_b * epoch_seconds + self.phase_b)
        )
        rpm = self.peak_rpm * day * wobble * load
        if running <= 0:
            return {
                _RPM: rpm,
                _CPU: 0.0,
                _P95: 0.0,
                _ERRORS: 1.0 if rpm > 0 else 0.0,
            }
        # Plain float arithmetic on the common path: this runs per service per tick.
        base = self.base_latency_ms
        utilization = rpm / (running * self.capacity_rpm)
        errors = self.base_error_rate * wobble
        if utilization > 1.0:
            cpu = 100.0
            latency = base * (2.5 + 4.0 * (utilization - 1.0))
            errors += 1.0 - 1.0 / utilization
            errors = min(errors, 1.0)
        else:
            cpu = 100.0 * utilization
            latency = base * (1.0 + 1.5 * utilization * utilization * utilization)
        # Unrounded on purpose: rounding four floats costs more than the rest of
        # this function, and metrics are not part of a state's transition key.
        return {_RPM: rpm, _CPU: cpu, _P95: latency, _ERRORS: errors}
