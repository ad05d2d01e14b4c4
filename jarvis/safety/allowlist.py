"""The allow-list: deny by default; an entry names a provider, a resource glob
and the action kinds it permits. Built from settings by the composition root."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jarvis.model import Action, globs


@dataclass(frozen=True, slots=True)
class AllowRule:
    provider: str
    resources: str
    """A glob over the resource path (the part after ``provider://``), `jarvis.model.globs`:
    its ``*`` crosses ``/``."""
    actions: frozenset[str]
    """Action kinds, or ``{"*"}`` for all."""

    def permits(self, action: Action) -> bool:
        return (
            action.target.provider == self.provider
            and globs.matches(action.target.name, self.resources)
            and ("*" in self.actions or action.kind in self.actions)
        )


class AllowList:
    """An ordered set of rules; an action is allowed when any rule permits it."""

    def __init__(self, rules: Iterable[AllowRule]) -> None:
        self._rules = tuple(rules)

    @property
    def rules(self) -> tuple[AllowRule, ...]:
        return self._rules

    def permits(self, action: Action) -> bool:
        return any(rule.permits(action) for rule in self._rules)
