"""Dispatch: one guarded action to the one actuator that owns its (provider, kind).

The reconciler calls `Dispatcher.apply` after the intent is durable. The call
is shielded, so shutdown or a tick timeout cannot cut a provider call in half;
its own deadline bounds it, and the shutdown deadline (`jarvis.loop.shutdown`)
brings that deadline in.
A provider error never escapes: every failure becomes an `Outcome`.
Through `confirmed`, recovery asks the same actuator whether an orphaned
intent's change was made, and the loop whether one recorded unknown's was
(`jarvis.loop.unknowns`).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from jarvis.actuators.base import ActuatorError, ConfirmsKeys, Sensor, route_table
from jarvis.loop.events import idempotency_key
from jarvis.loop.shutdown import Shutdown
from jarvis.model import Action, ErrorKind, Event, Outcome, ResourceRef
from jarvis.store.errors import describe

log = structlog.get_logger("jarvis.reconciler")


def cut_off(apply_timeout: float) -> str:
    """The detail of an apply the loop cut at ``apply_timeout`` seconds, its provider still
    silent: recorded unknown, and named by a one-shot, which then exits 1 (`jarvis.cli.ticks`).
    """
    return f"apply did not finish within {apply_timeout:g}s"


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
            return Outcome.timed_out(cut_off(self.apply_timeout))
        return outcome

    def confirms(self, intent: Event) -> bool:
        """Whether the actuator that owns ``intent``'s (provider, kind) `ConfirmsKeys`."""
        return self._confirmer(intent) is not None

    async def confirmed(self, intent: Event) -> str | None:
        """What proves ``intent``'s change was made, asked of the actuator that owns its
        (provider, kind) if it `ConfirmsKeys`; None when that is not certain.

        Recovery asks it of an orphaned intent, the loop of one closed as
        unknown (`jarvis.loop.unknowns`). An error or a hang (bounded as an
        apply is) is not certain either: the intent then stays unknown, as it
        was before providers were asked. Unlike an apply it is not shielded: a
        read left half done changes nothing, so the tick's own bound on its
        questions (the observe timeout) cuts it.
        """
        actuator = self._confirmer(intent)
        if actuator is None or intent.action_id is None:
            return None
        target = ResourceRef.parse(intent.resource or "")
        key = idempotency_key(intent.action_id)
        proof: str | None = None
        with self.shutdown.bound(self.apply_timeout):
            try:
                proof = await actuator.confirm_applied(target, intent.action_kind or "", key)
            except Exception as exc:  # noqa: BLE001 - any failure leaves the outcome unknown
                log.warning(
                    "could not ask whether an intent's change was applied",
                    action_id=intent.action_id,
                    error=describe(exc),
                )
        return proof

    def _confirmer(self, intent: Event) -> ConfirmsKeys | None:
        try:
            target = ResourceRef.parse(intent.resource or "")
        except ValueError:
            return None
        # Typed as an object: mypy reads the two protocols as unable to meet.
        actuator: object = self._routes.get((target.provider, intent.action_kind or ""))
        return actuator if isinstance(actuator, ConfirmsKeys) else None

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
