"""The reconcile loop: clocks, the scheduler that paces ticks, and the reconciler
that runs one tick (observe, evaluate, plan, guard, apply, record)."""
