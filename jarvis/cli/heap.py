"""Python's cyclic garbage collector, tuned for a process that starts once and then ticks.

`jarvis.cli.main` calls `pause` before a command imports anything: start-up
imports and builds about 100,000 objects that live as long as the process,
and with the collector on, the allocation count alone set off a full
collection over them (~0.1 s of CPU here) and younger ones all along: 6 % of
the instructions of a `jarvis run --ticks 1` on an existing database.
`settle` runs once start-up is done (`jarvis.cli.common.run`, before the
command's body, and again in the daemon before its first tick): it moves
everything built so far to the permanent generation (`gc.freeze`), where no
collection looks at it again, then switches the collector back on with a
youngest generation of `YOUNG` objects instead of 700.

What that gives a tick: a 50-service simulated tick allocates a few
thousand container objects, nearly all freed by reference counting; at 700
the collector still ran every few ticks over the history the policies keep,
and a full collection walked the start-up objects too. The cost is memory
held a little longer: at most `YOUNG` young objects in cycles before they are
collected, and the few cycles start-up made (about 2,400 objects, read with
`gc.collect()` before `freeze`), kept for good instead of paying that full
collection at every start. Measured in docs/benchmarks.md, benchmark 2.

Only processes call these: a test process running many simulations must not
freeze each one's objects (freezing is for good), so the simulation harness
leaves the collector alone.
"""

from __future__ import annotations

import gc

YOUNG = 10_000
"""Container allocations, net of deallocations, between young collections (CPython: 700)."""


def pause() -> None:
    """Start-up begins: no collection until `settle`."""
    gc.disable()


def settle() -> None:
    """Start-up is done: keep what it built out of every later collection, and collect again."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, oldest)
    gc.enable()
