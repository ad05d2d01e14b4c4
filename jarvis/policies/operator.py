"""The operator's overrides as actions: one builder for the CLI and the status page.

`jarvis restart|rollback|scale|deploy` (`jarvis.cli.override`) and the status
page's override form (`jarvis.telemetry.web`) both turn what a person asked
for into an `Action` here, so the two record the same policy (``operator``),
the same actor and reason, and win over a policy's proposal for the same
resource in the same tick alike. `OneShot` is the policy a one-shot tick runs
with; the daemon queues the page's actions instead (`jarvis.loop.overrides`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Final

from jarvis.model import (
    Action,
    ActionParams,
    History,
    ResourceRef,
    Restart,
    Rollback,
    Scale,
    Snapshot,
)
from jarvis.policies.base import Evaluation, Note

__all__ = [
    "ASK_VERSION",
    "OPERATOR",
    "OVERRIDE_KINDS",
    "UNSETTLED",
    "OneShot",
    "nobody_has",
    "operator_action",
    "override_params",
    "settled",
    "unknown",
]

OPERATOR: Final = "operator"
#: Higher than any policy's: what an operator asked for is planned over a policy's proposal.
PRIORITY: Final = 1000
#: The key of the note a one-shot leaves when `settled` refuses its action.
UNSETTLED: Final = f"{OPERATOR}:unsettled"
#: How `settled` ends its refusal of a rollback naming no version (the CLI adds ``--to``).
ASK_VERSION: Final = "name the one to return to"
#: The overrides the status page offers (``deploy`` needs an image: the CLI only).
OVERRIDE_KINDS: Final = ("restart", "rollback", "scale")


def operator_action(
    target: ResourceRef, params: ActionParams, *, actor: str, reason: str | None
) -> Action:
    """The action an operator asked for, recorded with them as its actor."""
    return Action(
        target,
        params,
        policy=OPERATOR,
        reason=reason or f"operator {params.kind} by {actor}",
        priority=PRIORITY,
        actor=actor,
    )


def override_params(kind: str, *, replicas: str = "", version: str = "") -> ActionParams:
    """The params of a page override; ValueError (said to the operator) when malformed."""
    if kind == "restart":
        return Restart()
    if kind == "rollback":
        return Rollback(version.strip())
    if kind == "scale":
        try:
            count = int(replicas.strip())
        except ValueError:
            raise ValueError(f"replicas: {replicas.strip()!r} is not a whole number") from None
        if count < 0:
            raise ValueError("replicas: must be 0 or more")
        return Scale(replicas=count)
    raise ValueError(f"action: {kind!r} is not one of {', '.join(OVERRIDE_KINDS)}")


def nobody_has(target: ResourceRef, snapshot: Snapshot) -> bool:
    """``target``'s own provider answered and does not have it: a typo, or a resource
    that is gone, whatever the other providers did (`Snapshot.answered`).

    With an observe error of a sensor on its scheme it is not known: the one
    that failed may have it.
    """
    return str(target) not in snapshot.resources and snapshot.answered(target.provider)


def unknown(uri: str, snapshot: Snapshot) -> str:
    """What the operator is told when `nobody_has` ``uri``: nothing was proposed."""
    return f"{uri}: no such resource among the {len(snapshot.resources)} observed; nothing proposed"


def settled(
    action: Action, snapshot: Snapshot, schemes: Mapping[str, frozenset[str]] | None = None
) -> Action | str:
    """The action to propose in this tick, or why none: a rollback naming no version is made
    to name the version its provider reports before the current one, read now.

    Named, the version is what the event records and what every provider can
    apply (ECS and the simulated fleet take no empty one). With none reported,
    sent empty it would fail as terminal, escalate and quarantine the resource
    the operator meant to mend; the operator is asked to name one instead. So
    is a kind no provider applies on the resource's scheme (``schemes``, each
    scheme some provider acts on with its kinds: `jarvis start sim://…`), and so is any
    override of a resource its provider answered is not there (`Snapshot.not_found`: a
    Cloud Run service's 404, a service of a deleted ECS cluster), which no policy acts
    on either: sent, it would fail as
    terminal, escalate and quarantine it. A resource read UNKNOWN for another reason,
    or not read at all (its provider failed), may be there: its override is sent.
    """
    uri = str(action.target)
    why = snapshot.not_found(uri)
    if why is not None:
        return f"{uri}: its provider reports it not found ({why}); nothing sent"
    if schemes is not None and action.kind not in schemes.get(action.target.provider, ()):
        takes = ", ".join(sorted(schemes.get(action.target.provider, ()))) or "nothing"
        return (
            f"{uri}: no provider applies {action.kind} on {action.target.provider}:// "
            f"(it takes {takes})"
        )
    if not isinstance(action.params, Rollback) or action.params.version:
        return action
    state = snapshot.get(uri)
    previous = None if state is None or state.versions is None else state.versions.previous
    if not previous:
        return f"{uri}: its provider reports no version before this one; {ASK_VERSION}"
    return replace(action, params=Rollback(previous))


class OneShot:
    """A policy that proposes exactly one operator-supplied action."""

    name = OPERATOR

    def __init__(
        self, action: Action, *, schemes: Mapping[str, frozenset[str]] | None = None
    ) -> None:
        self.action = action
        self.schemes = schemes
        """Each scheme some provider acts on, with its kinds (`settled`); None: not checked."""

    def evaluate(self, snapshot: Snapshot, history: History, now: datetime) -> Evaluation:  # noqa: ARG002 - the Policy protocol
        uri = str(self.action.target)
        if nobody_has(self.action.target, snapshot):
            # Proposed, it would fail at the provider as terminal, escalate
            # (paging on-call for a typo) and quarantine the name for whatever
            # resource later takes it.
            message = unknown(uri, snapshot)
            return Evaluation(notes=(Note(message, resource=uri, key=f"{OPERATOR}:unknown"),))
        action = settled(self.action, snapshot, self.schemes)
        if isinstance(action, str):
            return Evaluation(notes=(Note(action, resource=uri, key=UNSETTLED),))
        return Evaluation(actions=(action,))
