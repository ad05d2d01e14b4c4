"""The ``failover`` invariant: every DNS weight write, judged against the regions' truth.

Called by the invariant checker (`jarvis.simulation.invariants`) for every
``set_dns_weights`` apply the simulated provider witnessed, with the regions
that were dark and the weights the zone held when the write arrived
(`jarvis.simulation.dns`). It reads only the witness, never the policy, so a
bug in the policy cannot hide itself here.

It judges writes, not every tick: detecting a dark region takes the policy's
``fail_ticks`` on purpose, and a kill switch, the retry budget or an API
outage may hold a write for longer; what must never happen is a write that
makes things worse. A write breaks it when it

- raises the weight of a region that was dark;
- leaves every region that was up with weight 0 while one was up (total
  weight only on dark regions while a healthy one exists); or
- moves a record's weight by more than ``max_dns_weight_shift`` from what the
  zone held, or sets every weight to 0.
"""

from __future__ import annotations

from collections.abc import Mapping

from jarvis.model import SetDnsWeights

NAME = "failover"


def dns_write_problem(
    params: SetDnsWeights,
    before: Mapping[str, float],
    dark: frozenset[str],
    max_shift: int,
) -> str | None:
    """What in one write breaks the invariant, in words, or None."""
    after = params.record_weights
    if not any(after.values()):
        return f"every weight set to 0: {dict(after)}"
    raised = sorted(r for r in after if r in dark and after[r] > before.get(r, 0))
    if raised:
        return f"weight raised on dark {', '.join(raised)}: {dict(before)} → {dict(after)}"
    up = [r for r in after if r not in dark]
    if up and not any(after[r] for r in up):
        return f"every weight on dark regions while {', '.join(up)} was up: {dict(after)}"
    moved = {r: abs(after[r] - before.get(r, 0)) for r in after}
    record = max(sorted(moved), key=lambda r: moved[r])
    if moved[record] > max_shift:
        return f"weight of {record} moved by {moved[record]:g}, more than {max_shift} in one write"
    return None
