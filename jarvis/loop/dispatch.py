"""Dispatch: one guarded action to the one actuator that owns its (provider, kind).

The reconciler calls `Dispatcher.apply` after the intent is durable. The call
is shielded, so shutdown or a tick timeout cannot cut a provider call in half;
its own deadline bounds it, and the shutdown deadline (`jarvis.loop.shutdown`)
brings that deadline in.
A provider error never escapes: every failure becomes an `Outcome`.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from jarvis.actuators.base import ActuatorError, Sensor, route_table
from jarvis.loop.shutdown import Shutdown
from jarvis.model import Action, ErrorKind, Outcome

log = structlog.get_logger("jarvis.reconciler")


class Dispatcher:
    def __init__(
        self,
        observers: Iterable[Sensor],
        *,
        apply_timeout: float,
        shutdown: Shutdown | None = None,
    ) -> None:
        # Sensors (probes, cost, usage) own no action kinds and never receive an
        # action; two actuators claiming one (provider, kind) is refused here.
        self._routes = route_table(observers)
        self.apply_timeout = apply_timeout
        self.shutdown = shutdown or Shutdown()

    async def apply(self, action: Action, key: str) -> Outcome:
        actuator = self._routes.get((action.target.provider, action.kind))
        if actuator is None:
            return self._unrouted(action)
        with self.shutdown.bound(self.apply_timeout, shield=True) as scope:
            try:
                outcome = await actuator.apply(action, key)
            except ActuatorError as exc:
                outcome = exc.outcome()
            except Exception as exc:
                log.exception("actuator raised", actuator=actuator.name)
                outcome = Outcome.failure(f"{type(exc).__name__}: {exc}")
        if scope.cancelled_caught:
            if self.shutdown.ended(scope):
                return Outcome.timed_out("apply cut short by the shutdown (loop.shutdown_grace)")
            return Outcome.timed_out(f"apply did not finish within {self.apply_timeout:g}s")
        return outcome

    def _unrouted(self, action: Action) -> Outcome:
        provider = action.target.provider
        owners = sorted(a.name for (p, _), a in self._routes.items() if p == provider)
        if not owners:
            return Outcome.failure(
                f"no actuator for provider {provider!r}", kind=ErrorKind.TERMINAL
            )
        return Outcome.failure(
            f"actuator {owners[0]} cannot {action.kind}", kind=ErrorKind.TERMINAL
        )
