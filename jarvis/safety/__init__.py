"""Safety: the guard every proposed action passes before it may be applied.

Pure code (it imports `jarvis.model` only): the reconciler reads the kill switch
and the retry ledger, hands them in as a `GuardContext`, and records the verdict.
"""

from jarvis.safety.allowlist import AllowList, AllowRule
from jarvis.safety.bounds import Bounds, DnsWeightBounds, KindBound, ScaleBounds, WeightBounds
from jarvis.safety.budgets import Budgets, Change, DisruptionBudget, Remaining
from jarvis.safety.guard import Guard, GuardContext
from jarvis.safety.retry import RetryBudget

__all__ = [
    "AllowList",
    "AllowRule",
    "Bounds",
    "Budgets",
    "Change",
    "DisruptionBudget",
    "DnsWeightBounds",
    "Guard",
    "GuardContext",
    "KindBound",
    "Remaining",
    "RetryBudget",
    "ScaleBounds",
    "WeightBounds",
]
