"""Alertmanager's inhibition: while a source alert fires, matching target alerts stay quiet.

A tripped provider breaker already tells a human that the provider is down;
the escalations of that provider's resources it causes are symptoms, and
paging each of them again is the noise inhibition exists to remove. A rule
names its source and target by cause glob and severities, and ``equal``
labels that must agree between the two (``provider``: only that provider's
escalations). Pure: the `Grouper` keeps the firing sources (whatever routes
they reach, even none, as Alertmanager does) and asks `Inhibitor.inhibited`
when it flushes a group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jarvis.config.notify import InhibitMatcher, InhibitRuleSettings
from jarvis.model import globs
from jarvis.notify.alerts import Severity, resolves

__all__ = ["DEFAULT_RULES", "LABELS", "InhibitRule", "Inhibitor", "Matcher", "rules_from"]

LABELS = ("cause", "severity", "provider", "resource")
"""The labels an alert carries that rules may match or compare."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """A cause glob and, optionally, the severities that match (empty: any)."""

    cause: str = "*"
    severities: frozenset[Severity] = frozenset()

    def matches(self, alert: Mapping[str, Any]) -> bool:
        severity_ok = not self.severities or Severity(alert["severity"]) in self.severities
        return severity_ok and globs.matches(str(alert["cause"]), self.cause)


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """A firing ``source`` mutes every ``target`` whose ``equal`` labels agree with it.

    Unless both match the rule's source and its target: then neither mutes the other.
    """

    source: Matcher
    target: Matcher
    equal: tuple[str, ...] = ()

    def mutes(self, source: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
        return (
            self.target.matches(target)
            and self.source.matches(source)
            and all(source.get(label, "") == target.get(label, "") for label in self.equal)
            # As in Alertmanager: alerts on both sides of a rule would mute each other
            # (and the rule itself), and nobody would hear of any of them.
            and not (self.source.matches(target) and self.target.matches(source))
        )


DEFAULT_RULES: tuple[InhibitRule, ...] = (
    # A provider held by its breaker: its resources' escalations are the breaker's symptoms.
    InhibitRule(Matcher("breaker:provider:*"), Matcher("escalated"), equal=("provider",)),
    # The fleet breaker holds every provider: no escalation says more than it does.
    InhibitRule(Matcher("breaker:fleet:*"), Matcher("escalated")),
)
"""The rules when ``[[notify.inhibit]]`` names none.

The kill switch inhibits nothing by default: an engaged switch blocks
actions, so nothing escalates behind it, and a loop that stops finishing
ticks meanwhile is a different fault that someone must still hear about.
"""


@dataclass(slots=True)
class Inhibitor:
    """The rules, and the firing alerts that may be sources, by fingerprint."""

    rules: tuple[InhibitRule, ...] = DEFAULT_RULES
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fired(self, fingerprint: str, labels: Mapping[str, Any]) -> None:
        """Remember a firing alert if some rule could take it as a source."""
        if any(rule.source.matches(labels) for rule in self.rules):
            self.sources[fingerprint] = {k: labels.get(k, "") for k in LABELS}

    def resolved(self, fingerprint: str, *, prefix: bool) -> None:
        for key in [k for k in self.sources if resolves(fingerprint, k, prefix=prefix)]:
            del self.sources[key]

    def inhibited(self, fingerprint: str, alert: Mapping[str, Any]) -> bool:
        """Whether a firing source other than the alert itself mutes ``alert``."""
        return any(
            rule.mutes(source, alert)
            for rule in self.rules
            for key, source in self.sources.items()
            if key != fingerprint
        )

    def load(self, sources: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self.sources = dict(sources)


def rules_from(settings: list[InhibitRuleSettings] | None) -> tuple[InhibitRule, ...]:
    """``[[notify.inhibit]]`` as rules; unset means the defaults, empty means none."""
    if settings is None:
        return DEFAULT_RULES

    def matcher(m: InhibitMatcher) -> Matcher:
        return Matcher(m.cause, frozenset(Severity(s) for s in m.severities))

    return tuple(
        InhibitRule(matcher(r.source), matcher(r.target), tuple(r.equal)) for r in settings
    )
