"""The breakers' invariant, re-derived from the record by the invariant checker.

`jarvis.simulation.invariants.InvariantChecker` hands this watch the events it
reads: breaker alerts, intents, failures and escalations. From the alerts alone
(never from `jarvis.safety.breakers`) it knows when a provider's breaker is
open and checks that, while it is:

- no action on that provider starts before the cool-down after the opening
  has passed, and at most one (the probe) starts per tick after it;
- no action on that provider escalates: its failures are the provider's, not
  the resources', so they must not spend a retry budget.

It also tells the checker which attempts are not charged to a retry budget
(the refunds an opening lists, and a probe's temporary failure while open),
so the ``retry_budget`` invariant counts what the budget counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jarvis.model import Event

NAME = "breakers"


@dataclass
class BreakerWatch:
    cooldown: timedelta | None
    """The configured cool-down; None when breakers are off (then nothing may be open)."""
    opened: dict[str, datetime] = field(default_factory=dict)
    """Provider -> when its breaker opened, while it is open."""
    _probes: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[tuple[str, Event]] = field(default_factory=list)
    checks: int = 0

    def alert(self, event: Event) -> list[tuple[str, str, datetime]]:
        """Follow an alert; return the attempts an opening says it did not charge."""
        payload = event.payload
        provider = payload.get("provider")
        if payload.get("breaker") != "provider" or not isinstance(provider, str):
            return []
        if payload.get("state") == "closed":
            self.opened.pop(provider, None)
            return []
        self.opened[provider] = event.ts
        refunds: list[tuple[str, str, datetime]] = []
        raw = payload.get("refunded")
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, list) and len(item) == 3:
                resource, kind, at = item
                refunds.append((str(resource), str(kind), datetime.fromisoformat(str(at))))
        return refunds

    def started(self, event: Event) -> None:
        provider = _provider(event)
        opened = self.opened.get(provider)
        self.checks += 1
        if opened is None:
            return
        if self.cooldown is None or event.ts < opened + self.cooldown:
            self.problems.append(
                (f"{event.action_kind} on {event.resource} started while {provider} is held", event)
            )
            return
        tick = (provider, event.tick_id or "")
        self._probes[tick] += 1
        if self._probes[tick] > 1:
            self.problems.append((f"a second probe on {provider} in one tick", event))

    def forgiven(self, event: Event) -> bool:
        """Whether a failed outcome is the open provider's, so its attempt is not charged."""
        temporary = event.payload.get("error_kind") == "temporary"
        return temporary and _provider(event) in self.opened

    def escalated(self, event: Event) -> None:
        self.checks += 1
        provider = _provider(event)
        if provider in self.opened:
            self.problems.append(
                (f"{event.resource} escalated while {provider}'s breaker is open", event)
            )

    def end_tick(self) -> None:
        self._probes.clear()


def _provider(event: Event) -> str:
    return (event.resource or "").partition("://")[0]
