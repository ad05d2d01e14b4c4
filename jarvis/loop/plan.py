"""Planning: from every policy's proposals to at most one action per resource.

Called by the reconciler between evaluate and guard. Where several proposals
target one resource, the highest ``priority`` wins (a rollback beats a
scale-up), then the earlier policy; the losers are returned with a BOUNDS
verdict so they are recorded as blocked, not silently dropped. The plan is
ordered by priority, then resource, so a tick is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

from jarvis.model import Action, BlockReason, Verdict


def plan_actions(
    proposals: Sequence[Action],
) -> tuple[list[Action], list[tuple[Action, Verdict]]]:
    winners: dict[str, tuple[int, Action]] = {}
    superseded: list[tuple[Action, Verdict]] = []
    for index, proposal in enumerate(proposals):
        uri = str(proposal.target)
        current = winners.get(uri)
        if current is None:
            winners[uri] = (index, proposal)
            continue
        loser, keep = proposal, current[1]
        if proposal.priority > keep.priority:
            winners[uri] = (index, proposal)
            loser, keep = keep, proposal
        superseded.append(
            (
                loser,
                Verdict.block(
                    BlockReason.BOUNDS,
                    f"one action per resource per tick: superseded by {keep.policy} {keep.kind}",
                ),
            )
        )
    ordered = sorted(
        winners.values(), key=lambda item: (-item[1].priority, str(item[1].target), item[0])
    )
    return [action for _, action in ordered], superseded
