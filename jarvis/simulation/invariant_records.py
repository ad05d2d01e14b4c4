"""What the invariant checker is fed and what it reports: rules, witness entries, violations.

`Rules` are taken from the run's settings by the harness
(`jarvis.simulation.run_config.rules_from`); the simulated provider
(`jarvis.simulation.provider`) logs a `ProviderCall` for every apply it
receives and every kill-switch flip, the witness the checker
(`jarvis.simulation.invariants`) reads; a `Violation` names the broken
invariant, one of `INVARIANTS`, for the report (`jarvis.simulation.report`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from jarvis.model import Action, Replicas

INVARIANTS = (
    "killswitch",
    "retry_budget",
    "allowlist_bounds",
    "one_outcome",
    "witness",
    "capacity_bounds",
    "breakers",
    "stale_epoch",
    "restart",
    "second_process",
    "failover",
)
"""The invariants by name, as the checker (`jarvis.simulation.invariants`) describes them."""
CUSTOMER_INVARIANTS = (
    "email_window",
    "email_opt_out",
    "email_cancelled",
    "email_killswitch",
    "stripe_key",
    "access_billing",
)
"""The invariants of simulated customers (`jarvis.simulation.invariant_customers`): in the
report only of a run that has them."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What the invariants are checked against, taken from the run's settings."""

    allow: tuple[tuple[str, str, frozenset[str]], ...]
    """(provider, resource glob, action kinds or ``{"*"}``) per allow-list entry."""
    max_actions_per_tick: int
    max_replicas: int
    max_attempts: int
    retry_window: timedelta
    max_traffic_shift: float = 0.5
    """The largest move of any one model's weight in one SET_WEIGHTS."""
    breaker_cooldown: timedelta | None = None
    """How long an open provider breaker holds everything; None: breakers are off."""
    max_dns_weight_shift: int = 128
    """The largest move of any one DNS record's weight in one SET_DNS_WEIGHTS."""

    def allowed(self, resource: str, kind: str) -> bool:
        provider, _, name = resource.partition("://")
        return any(
            provider == p and fnmatch.fnmatchcase(name, glob) and ("*" in kinds or kind in kinds)
            for p, glob, kinds in self.allow
        )


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One entry of the witness: an apply the provider received, or an operator's flip."""

    seq: int
    at: datetime
    what: str
    """``apply``, ``engage``, ``release``, or ``switch_down`` / ``switch_up`` when the
    kill switch's store becomes unreadable / readable again, ``switch_wiped`` when it
    restarts empty (the record is gone until the next flip writes one)."""
    action: Action | None = None
    before: Replicas | None = None
    """The target's replicas as the provider held them when the apply arrived."""
    weights_before: Mapping[str, float] | None = None
    """For a route: its weights as the platform held them when the apply arrived; for
    a DNS record group, its records' weights as the zone held them."""
    dark: frozenset[str] = frozenset()
    """For a DNS record group: the regions that were dark when the apply arrived."""


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    message: str
    at: datetime | None = None
    tick_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "invariant": self.invariant,
            "message": self.message,
            "at": None if self.at is None else self.at.isoformat(),
            "tick_id": self.tick_id,
        }
