"""What a simulation run is set up from: its start, its `SimulationConfig`, settings and rules.

Used by the harness (`jarvis.simulation.harness.run_simulation`) and the run it
drives (`jarvis.simulation.run`); `simulation_settings` is also called by
`jarvis simulate` (`jarvis.cli.simulate`), the seed-sweep tests and the
benchmarks to build the settings a run gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jarvis.config import Settings, load_settings
from jarvis.simulation.customers import SIM_PLANS
from jarvis.simulation.faults import DEFAULT_FAULTS, FaultKind
from jarvis.simulation.invariant_records import Rules
from jarvis.simulation.llm_scenario import sim_llm_settings

START = datetime.fromisoformat("2026-01-05T08:00:00+00:00")
"""A Monday morning; a 30-day run crosses a month end."""

ProgressCallback = Callable[[float, float], None]
"""Called after each tick with (simulated seconds done, simulated seconds in all)."""

#: Scaling and rollback rules for the simulated fleet, used unless the
#: configuration already enables those policies (they join the run once the
#: composition root builds them).
SIM_SCALING: dict[str, Any] = {
    "enabled": True,
    "rules": [
        {"match": "sim://*", "min_replicas": 1, "max_replicas": 20, "target_cpu_utilization": 70}
    ],
}
SIM_ROLLBACK: dict[str, Any] = {"enabled": True, "match": ["sim://*"]}


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    seed: int = 1
    days: float = 1.0
    services: int = 50
    faults: tuple[FaultKind, ...] = DEFAULT_FAULTS
    intensity: float = 1.0
    """Multiplies every fault rate: short CI runs see as many faults as long ones."""
    database_url: str | None = None
    """None: the in-memory store (fast; the default). A URL: that SQLite or PostgreSQL
    database, migrated if needed, so the run also exercises the SQL store."""
    fencing: bool = True
    customers: int = 0
    """Simulated customers, about half there at the start, the rest signing up over the run
    (`jarvis.simulation.customers`); 0: none.
    Their settings come from ``simulation_settings(customers=True)``."""
    """With replica faults: False lets the replicas write without the epoch fence, to
    show what fencing prevents (a woken leader's actions fail ``stale_epoch``)."""


def simulation_settings(
    config_path: str | Path | None = None,
    *,
    spool_path: Path,
    customers: bool = False,
    **overrides: Any,
) -> Settings:
    """The configuration's policies and guards, on a private store and the simulated fleet only.

    Redis is left out on purpose: a simulation must never touch a real kill
    switch (it runs on an in-memory one). The store is chosen by
    `SimulationConfig.database_url`; ``database_url`` may still be overridden
    here for callers that build an app from these settings themselves. With
    ``customers``, ``[customers]`` is enabled (with `SIM_PLANS` unless the
    configuration prices its own plans) and the allow-list lets the customer
    action kinds through on ``customer://*``.
    """
    base = load_settings(config_path)
    extra: dict[str, Any] = {
        "spool_path": spool_path,
        "redis_url": None,
        "dry_run": False,
    }
    if not base.scaling.enabled:
        extra["scaling"] = SIM_SCALING
    if not base.rollback.enabled:
        extra["rollback"] = SIM_ROLLBACK
    extra.update(sim_llm_settings(base))
    if customers:
        extra.update(_sim_customers(base, extra.get("allowlist")))
    extra.update(overrides)
    return load_settings(config_path, **extra)


def _sim_customers(base: Settings, allowlist: list[dict[str, Any]] | None) -> dict[str, Any]:
    section = base.customers.model_dump(exclude_none=True)
    section.update(enabled=True, plans=section.get("plans") or SIM_PLANS)
    allow = allowlist if allowlist is not None else [e.model_dump() for e in base.allowlist]
    kinds = [
        "create_billing_customer",
        "create_discount",
        "send_email",
        "grant_access",
        "revoke_access",
    ]
    entry = {"provider": "customer", "resources": "*", "actions": kinds}
    return {"customers": section, "allowlist": [*allow, entry]}


def rules_from(settings: Settings) -> Rules:
    return Rules(
        allow=tuple(
            (entry.provider, entry.resources, frozenset(entry.actions))
            for entry in settings.allowlist
        ),
        max_actions_per_tick=settings.bounds.max_actions_per_tick,
        max_replicas=settings.bounds.max_replicas,
        max_attempts=settings.retry.max_attempts,
        retry_window=timedelta(seconds=settings.retry.window_seconds),
        max_traffic_shift=settings.bounds.max_traffic_shift,
        max_dns_weight_shift=settings.bounds.max_dns_weight_shift,
        breaker_cooldown=timedelta(seconds=settings.breakers.cooldown_seconds)
        if settings.breakers.enabled
        else None,
    )
