"""The fault plan: which faults strike the simulated cloud, when, where and for how long.

Built once per run by the harness (`jarvis.simulation.harness`) from the seed,
before the first tick. Each fault kind arrives as a Poisson process with its
own random stream, seeded from the run's seed and the kind's name, so turning
one kind off (``--faults crash,outage``) leaves the others exactly where they
were. The harness applies a fault when its time has come; the plan itself
does nothing. The process faults (`PROCESS_FAULTS`: Jarvis itself killed, its
Redis restarted, a second process beside it) strike only when named or with
``--faults all``: `DEFAULT_FAULTS`, what a run gets unless told, leaves them
out, so the pinned seeds' records stay what they were. ``region_dark`` strikes
only when named (`OPT_IN_FAULTS`), for the same reason.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


class FaultKind(enum.StrEnum):
    CRASH = "crash"
    """A service crashes; a restart heals it."""
    BAD_DEPLOY = "bad_deploy"
    """A deploy from outside Jarvis crash-loops; restarts fail, a rollback mends it."""
    NEVER_RECOVERS = "never_recovers"
    """A service crashes and every restart fails until an operator repairs it."""
    THROTTLING = "throttling"
    """The provider API throttles: observe and apply fail with ``Throttling`` at a rate."""
    API_ERRORS = "api_errors"
    """Applies fail with a 5xx-like temporary error at a rate."""
    TIMEOUTS = "timeouts"
    """Applies hang until the reconciler's apply timeout cuts them off."""
    OUTAGE = "outage"
    """The whole provider API is down: every observe and apply fails."""
    CLOCK_JUMP = "clock_jump"
    """The wall clock jumps: forwards (a paused VM) or a little backwards (NTP)."""
    KILLSWITCH = "killswitch"
    """The simulated operator engages the kill switch, then releases it."""
    SPIKE = "spike"
    """One service's traffic multiplies for a while."""
    DATABASE_OUTAGE = "database_outage"
    """The event database is unreachable: events wait in the spool, retries are kept in memory."""
    REDIS_OUTAGE = "redis_outage"
    """The kill switch's Redis is unreachable: the switch reads as engaged, nothing is applied."""
    LLM_SURGE = "llm_surge"
    """One LLM route's traffic (and so its spend) multiplies for a while."""
    LEADER_CRASH = "leader_crash"
    """The leading replica's process dies (SIGKILL) and restarts later as a follower."""
    LEADER_PAUSE = "leader_pause"
    """The leading replica freezes (SIGSTOP, a long GC) past its lease, between its
    leadership check and its tick's first write, and then wakes and ticks."""
    REPLICA_PARTITION = "replica_partition"
    """The leading replica loses the database for a while; the others still reach it."""
    CRASH_IN_OUTAGE = "crash_in_outage"
    """The event database goes away; midway the Jarvis process is killed and restarted."""
    REDIS_RESTART = "redis_restart"
    """The kill switch's Redis restarts empty while the switch is engaged."""
    SECOND_PROCESS = "second_process"
    """A one-shot ``jarvis plan`` or ``jarvis tick --dry-run`` runs beside the daemon."""
    REGION_DARK = "region_dark"
    """One of two regions behind a weighted DNS name goes dark, then comes back
    (`jarvis.simulation.dns`); opt-in."""


REPLICA_FAULTS = frozenset(
    {FaultKind.LEADER_CRASH, FaultKind.LEADER_PAUSE, FaultKind.REPLICA_PARTITION}
)
"""Faults that strike replicas: a run that names one runs several (`jarvis.simulation.replicas`)."""
PROCESS_FAULTS = frozenset(
    {FaultKind.CRASH_IN_OUTAGE, FaultKind.REDIS_RESTART, FaultKind.SECOND_PROCESS}
)
"""Faults of Jarvis's own processes and of its Redis (`jarvis.simulation.process_faults`)."""
OPT_IN_FAULTS = frozenset({FaultKind.REGION_DARK})
"""Faults that bring their own part of the world (two DNS regions): only when named."""
ALL_FAULTS: tuple[FaultKind, ...] = tuple(
    k for k in FaultKind if k not in REPLICA_FAULTS and k not in OPT_IN_FAULTS
)
"""What ``all`` means: every fault but the replica faults, which run only when named, so
a single-replica run stays one, and the opt-in ones (`OPT_IN_FAULTS`)."""
DEFAULT_FAULTS: tuple[FaultKind, ...] = tuple(k for k in ALL_FAULTS if k not in PROCESS_FAULTS)
"""What a run gets unless told: ``all`` less the process faults (so the pinned digests hold)."""

# (events per simulated day for the whole fleet, per service) per kind.
_RATES: dict[FaultKind, tuple[float, float]] = {
    FaultKind.CRASH: (0.0, 0.08),
    FaultKind.BAD_DEPLOY: (0.5, 0.01),
    FaultKind.NEVER_RECOVERS: (0.2, 0.0),
    FaultKind.THROTTLING: (2.0, 0.0),
    FaultKind.API_ERRORS: (2.0, 0.0),
    FaultKind.TIMEOUTS: (0.5, 0.0),
    FaultKind.OUTAGE: (0.3, 0.0),
    FaultKind.CLOCK_JUMP: (0.5, 0.0),
    FaultKind.KILLSWITCH: (1.0, 0.0),
    FaultKind.SPIKE: (2.0, 0.0),
    FaultKind.DATABASE_OUTAGE: (0.5, 0.0),
    FaultKind.REDIS_OUTAGE: (0.5, 0.0),
    FaultKind.LLM_SURGE: (0.5, 0.0),
    FaultKind.LEADER_CRASH: (2.0, 0.0),
    FaultKind.LEADER_PAUSE: (2.0, 0.0),
    FaultKind.REPLICA_PARTITION: (2.0, 0.0),
    FaultKind.CRASH_IN_OUTAGE: (0.3, 0.0),
    FaultKind.REDIS_RESTART: (0.5, 0.0),
    FaultKind.SECOND_PROCESS: (2.0, 0.0),
    FaultKind.REGION_DARK: (4.0, 0.0),
}
_DAY = 86_400.0
# Provider-wide episodes: (shortest, longest minutes, failure probability per call).
_EPISODES: dict[FaultKind, tuple[float, float, float]] = {
    FaultKind.THROTTLING: (5, 20, 0.5),
    FaultKind.API_ERRORS: (5, 15, 0.3),
    FaultKind.TIMEOUTS: (2, 10, 0.2),
    FaultKind.OUTAGE: (10, 45, 0.0),
    FaultKind.DATABASE_OUTAGE: (2, 20, 0.0),
    FaultKind.REDIS_OUTAGE: (1, 10, 0.0),
    # Replica faults, as seconds: a restart, a pause past the 15 s lease, a partition.
    FaultKind.LEADER_CRASH: (20 / 60, 3, 0.0),
    FaultKind.LEADER_PAUSE: (20 / 60, 2, 0.0),
    FaultKind.REPLICA_PARTITION: (5 / 60, 5, 0.0),
    FaultKind.CRASH_IN_OUTAGE: (2, 20, 0.0),
}


@dataclass(frozen=True, slots=True)
class Fault:
    at: datetime
    kind: FaultKind
    target: str | None = None
    """The service it strikes, for service faults; the route, for an LLM surge; the
    command (``plan`` or ``tick``) for a second process."""
    duration: timedelta = timedelta(0)
    """How long an episode (API faults, kill switch, spike) lasts."""
    magnitude: float = 0.0
    """Failure probability for API faults, traffic factor for spikes and surges, seconds for
    clock jumps; for a crash in an outage, how far into the outage (0..1) the kill lands."""
    mid_tick: bool = False
    """For kill-switch flips: during an apply rather than between ticks."""

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "target": self.target,
            "duration_seconds": self.duration.total_seconds(),
            "magnitude": round(self.magnitude, 4),
            "mid_tick": self.mid_tick,
        }


def parse_faults(text: str) -> tuple[FaultKind, ...]:
    """``all``, ``default``, ``none`` or a comma-separated list of kinds.

    ValueError names an unknown one. ``default`` is `DEFAULT_FAULTS` (every
    kind but the process and replica faults); ``all`` adds the process faults;
    the replica faults (`REPLICA_FAULTS`) run only when named.
    """
    spec = text.strip().lower()
    if spec == "all":
        return ALL_FAULTS
    if spec == "default":
        return DEFAULT_FAULTS
    if spec in {"none", ""}:
        return ()
    kinds: list[FaultKind] = []
    for part in spec.split(","):
        name = part.strip()
        try:
            kinds.append(FaultKind(name))
        except ValueError:
            known = ", ".join(kind.value for kind in FaultKind)
            raise ValueError(
                f"unknown fault {name!r}; expected all, default, none or any of {known}"
            ) from None
    return tuple(dict.fromkeys(kinds))


def plan_faults(
    *,
    seed: int,
    start: datetime,
    days: float,
    services: Sequence[str],
    kinds: Iterable[FaultKind],
    intensity: float = 1.0,
    routes: Sequence[str] = (),
) -> list[Fault]:
    """Every fault of the run, in time order (ties by kind, for determinism).

    ``routes`` are the LLM routes an ``llm_surge`` may strike; with none it names no target.
    """
    end = start + timedelta(days=days)
    faults: list[Fault] = []
    for kind in kinds:
        rng = random.Random(f"{seed}:{kind.value}")  # noqa: S311 -- a reproducible simulation
        fleet_rate, per_service = _RATES[kind]
        per_second = intensity * (fleet_rate + per_service * len(services)) / _DAY
        if per_second <= 0:
            continue
        at = start + timedelta(seconds=rng.expovariate(per_second))
        while at < end:
            faults.append(_draw(rng, kind, at, services, routes))
            at += timedelta(seconds=rng.expovariate(per_second))
    faults.sort(key=lambda fault: (fault.at, fault.kind.value))
    return faults


def _draw(
    rng: random.Random,
    kind: FaultKind,
    at: datetime,
    services: Sequence[str],
    routes: Sequence[str],
) -> Fault:
    target: str | None = rng.choice(services)
    if kind in {FaultKind.CRASH, FaultKind.BAD_DEPLOY, FaultKind.NEVER_RECOVERS}:
        return Fault(at, kind, target)
    if kind in PROCESS_FAULTS or kind in OPT_IN_FAULTS:
        return _draw_apart(rng, kind, at)
    if kind in _EPISODES:
        low, high, rate = _EPISODES[kind]
        return Fault(at, kind, duration=timedelta(minutes=rng.uniform(low, high)), magnitude=rate)
    if kind is FaultKind.CLOCK_JUMP:
        # Mostly forwards (a suspended VM wakes up), sometimes back (an NTP step).
        jump = rng.uniform(60, 1200) if rng.random() < 0.8 else -rng.uniform(5, 120)
        return Fault(at, kind, magnitude=jump)
    if kind is FaultKind.KILLSWITCH:
        hold = timedelta(minutes=rng.uniform(5, 90))
        return Fault(at, kind, duration=hold, mid_tick=rng.random() < 0.5)
    if kind is FaultKind.LLM_SURGE:
        target = rng.choice(routes) if routes else None
    duration = timedelta(minutes=rng.uniform(15, 120))
    return Fault(at, kind, target, duration=duration, magnitude=rng.uniform(2, 4))


def _draw_apart(rng: random.Random, kind: FaultKind, at: datetime) -> Fault:
    """A process fault or an opt-in one: each draws its own shape."""
    if kind is FaultKind.REGION_DARK:
        region = rng.choice(("region-a", "region-b"))
        return Fault(at, kind, region, duration=timedelta(minutes=rng.uniform(3, 60)))
    if kind is FaultKind.CRASH_IN_OUTAGE:
        low, high, _ = _EPISODES[kind]
        outage = timedelta(minutes=rng.uniform(low, high))
        return Fault(at, kind, duration=outage, magnitude=rng.uniform(0.3, 0.8))
    if kind is FaultKind.SECOND_PROCESS:
        return Fault(at, kind, rng.choice(("plan", "tick")))
    return Fault(at, kind)
