"""Who mended what: Jarvis by itself, or a human, and why a human was needed.

The harness's run (`jarvis.simulation.run`) feeds every escalation with the
service fault open on its target at that moment (the cause, as the fault plan
knows it: the simulation can tell what Jarvis cannot), and every breaker alert.
The report (`jarvis.simulation.report`) prints the split with the remediation
table: faults mended without the operator, faults the operator's repair
mended, and the escalations by cause. An escalation with no service fault open
is one a provider-wide fault caused: exactly what the breakers are for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jarvis.model import Event

PROVIDER_WIDE = "no service fault (provider-wide API faults)"
"""The cause of an escalation on a service that had no fault of its own open."""

_WHY = {
    "never_recovers": "the service never recovers until repaired (no automation can fix it)",
    "bad_deploy": "a bad deploy that restarts and rollback did not mend",
    "crash": "a crash that restarts did not mend in time",
    "spike": "a traffic spike that scaling could not absorb",
}


@dataclass
class Handoff:
    escalations: Counter[str] = field(default_factory=Counter)
    breaker_alerts: Counter[str] = field(default_factory=Counter)

    def escalated(self, cause: str | None) -> None:
        self.escalations[cause or PROVIDER_WIDE] += 1

    def alert(self, event: Event) -> None:
        payload = event.payload
        scope, state = payload.get("breaker"), payload.get("state")
        if isinstance(scope, str) and isinstance(state, str):
            self.breaker_alerts[f"{scope} {'tripped' if state == 'open' else 'closed'}"] += 1

    def as_dict(self, remediation: dict[str, Any]) -> dict[str, Any]:
        by_fault = remediation.get("by_fault", {})
        by_jarvis = {
            kind: row["count"] - row["mended_after_operator"] for kind, row in by_fault.items()
        }
        by_human = {kind: row["mended_after_operator"] for kind, row in by_fault.items()}
        return {
            "mended_by_jarvis": by_jarvis,
            "mended_after_operator": by_human,
            "escalations_by_cause": {
                cause: {"count": count, "why": _WHY.get(cause, cause)}
                for cause, count in sorted(self.escalations.items())
            },
            "breaker_alerts": dict(sorted(self.breaker_alerts.items())),
        }
