"""The retry budget: at most N attempts per (resource, action kind) in a window.

Pure transitions over `RetryState`: the reconciler keeps the ledger, persists it
through the store, and calls `check` before an action, `attempted` when it starts
and `finished` with its outcome. After ``max_attempts`` consecutive failures the
pair is quarantined until an operator resets it, and `finished` says to escalate;
a terminal error (access denied, a validation error: retrying cannot help)
quarantines and escalates at once. A target that is gone (`ErrorKind.GONE`:
deleted since it was observed) is no failure: its attempt stays in the window,
so an observe that keeps seeing what apply cannot find is still held to the
budget, but nothing is counted as failed, backed off or quarantined. Backoff
between attempts is counted in ticks (1, 2, 4 … by default) from the attempt's
start, not from when a slow apply ended, and turned into seconds with the loop
interval, so it survives a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from jarvis.model import BlockReason, ErrorKind, Outcome, RetryState, Verdict
from jarvis.text import command


@dataclass(frozen=True, slots=True)
class RetryBudget:
    max_attempts: int = 3
    window: timedelta = timedelta(hours=1)
    backoff_ticks: tuple[int, ...] = (1, 2, 4)
    interval: timedelta = timedelta(seconds=30)

    def in_window(self, state: RetryState, now: datetime) -> tuple[datetime, ...]:
        """The attempts that still count at ``now``."""
        horizon = now - self.window
        return tuple(t for t in state.attempts if t > horizon)

    def check(self, state: RetryState | None, now: datetime) -> Verdict:
        if state is None:
            return Verdict.allow()
        if state.quarantined:
            reset = command("jarvis", "retries", "reset", state.resource)
            return Verdict.block(
                BlockReason.QUARANTINE,
                f"quarantined after {state.consecutive_failures} failures "
                f"({state.last_error}); reset with `{reset}`",
            )
        attempts = self.in_window(state, now)
        if len(attempts) >= self.max_attempts:
            return Verdict.block(
                BlockReason.RETRY_BUDGET,
                f"{len(attempts)} attempts in the last {_human(self.window)} "
                f"(limit {self.max_attempts})",
            )
        if state.retry_after is not None and now < state.retry_after:
            return Verdict.block(
                BlockReason.RETRY_BUDGET,
                f"backing off after failure {state.consecutive_failures} "
                f"until {state.retry_after.isoformat()}",
            )
        return Verdict.allow()

    def exhausted(self, state: RetryState | None, now: datetime) -> bool:
        """All attempts of the window are spent and the pair is not yet quarantined.

        This catches the fix that "succeeds" without fixing: three successful
        restarts of a service that stays broken escalate like three failures.
        """
        return (
            state is not None
            and not state.quarantined
            and len(self.in_window(state, now)) >= self.max_attempts
        )

    def quarantine(self, state: RetryState, now: datetime, reason: str) -> RetryState:
        return replace(state, quarantined=True, retry_after=None, last_error=reason, updated_at=now)

    def attempted(
        self, state: RetryState | None, resource: str, action_kind: str, now: datetime
    ) -> RetryState:
        """The ledger after an attempt starts at ``now``."""
        base = state or RetryState(resource=resource, action_kind=action_kind)
        attempts = (*self.in_window(base, now), now)[-self.max_attempts :]
        return replace(base, attempts=attempts, updated_at=now)

    def finished(
        self, state: RetryState, outcome: Outcome, now: datetime
    ) -> tuple[RetryState, bool]:
        """The ledger after an outcome, and whether to escalate now."""
        if outcome.ok:
            return replace(state, consecutive_failures=0, retry_after=None, updated_at=now), False
        if outcome.gone:
            return replace(state, updated_at=now), False
        failures = state.consecutive_failures + 1
        if failures >= self.max_attempts or outcome.error_kind is ErrorKind.TERMINAL:
            return (
                replace(
                    state,
                    consecutive_failures=failures,
                    retry_after=None,
                    quarantined=True,
                    last_error=outcome.detail,
                    updated_at=now,
                ),
                True,
            )
        ticks = self.backoff_ticks[min(failures, len(self.backoff_ticks)) - 1]
        # Skip `ticks` ticks after the one that started the attempt, then try on
        # the next; half an interval of slack keeps a jittered tick from missing
        # its turn. Counting from the end of a slow apply would cost a tick.
        started = state.attempts[-1] if state.attempts else now
        retry_after = started + self.interval * (ticks + 1) - self.interval / 2
        return (
            replace(
                state,
                consecutive_failures=failures,
                retry_after=retry_after,
                last_error=outcome.detail,
                updated_at=now,
            ),
            False,
        )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
