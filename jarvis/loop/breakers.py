"""The loop's circuit breakers: one per provider and one for the fleet.

The reconciler (`jarvis.loop.reconciler`) owns one `Breakers`. It feeds every
observe (`observed`) and every apply outcome (`settle`) in, asks for a hold
before each action (`hold`, which the guard turns into a block) and says when a
probe goes out (`probing`). The state machine and its decisions are pure
(`jarvis.safety.breakers`); this class keeps one state per provider, raises
the one `alert` event per opening and per closing, sets the
``jarvis_breaker_open`` gauge, and refunds to the retry ledger the failures a
degraded provider caused, so a provider-wide fault never pages a human per
resource.

The alerts are the record of its state: at start, `restore` re-opens every
breaker whose last alert says open (as of that alert; the cool-down it then
counts from may already be over, so the first tick may probe). The failure
window is not kept: after a restart it starts empty, so a breaker that was
closing in on its threshold needs ``threshold`` failures again.

With shards the fleet breaker is the fleet's, not the replica's: `observed`
is given the size of the whole fleet (every replica observes it all before
keeping its shards), and `peer_failed` counts the failures other replicas
recorded (`jarvis.loop.peers.PeerFailures`, read at the start of each tick),
so the breaker opens on every replica once failures across all shards reach
the fleet's threshold. A peer's failure is inhibited as one's own is: not
counted while this replica's breaker of its provider is not closed. Each
replica then probes on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from jarvis.loop import events as ev
from jarvis.loop.ledger import Key, RetryLedger
from jarvis.loop.record import Recorder
from jarvis.model import (
    Action,
    BlockReason,
    ErrorKind,
    Event,
    Outcome,
    OutcomeStatus,
    ResourceRef,
    Verdict,
)
from jarvis.safety.breakers import (
    BreakerPolicy,
    BreakerState,
    Phase,
    Transition,
    admits,
    counts,
    failed,
    fleet_threshold,
    provider_wide,
    rebased,
    succeeded,
)
from jarvis.telemetry.metrics import Metrics

Refund = tuple[str, str, datetime]
"""(resource, action kind, attempt start) of a failure not charged to its budget."""

FLEET = "all"
"""The ``provider`` label of the fleet breaker's gauge."""


class Breakers:
    """Per-provider breakers and the fleet breaker, as the loop holds them."""

    def __init__(
        self,
        *,
        policies: tuple[BreakerPolicy, BreakerPolicy] | None,
        providers: Mapping[str, str],
        ledger: RetryLedger,
        recorder: Recorder,
        metrics: Metrics,
    ) -> None:
        self.enabled = policies is not None
        """Off (``[breakers] enabled = false``): nothing is held and every failure is charged."""
        self.provider_policy, self.fleet_policy = policies or (BreakerPolicy(), BreakerPolicy())
        self._providers = dict(providers)
        """Actuator name -> provider, to attribute a failed observe."""
        self._ledger = ledger
        self._recorder = recorder
        self._metrics = metrics
        self._states: dict[str, BreakerState] = {}
        self._fleet = BreakerState()
        self._charged: dict[str, list[tuple[datetime, Key, datetime]]] = {}
        """Per provider: (failed at, ledger key, attempt start) of failures charged
        to a resource's budget while its breaker was closed, refunded if it trips."""
        self._probed: set[str] = set()
        self._fleet_size = 0
        self._tick_id = ""
        if not self.enabled:
            return
        for provider in sorted(set(self._providers.values())):
            metrics.breaker_open.labels(scope="provider", provider=provider).set(0)
        metrics.breaker_open.labels(scope="fleet", provider=FLEET).set(0)

    def restore(self, alerts: Iterable[Event]) -> None:
        """Take each breaker's state from its last recorded alert (oldest first).

        A provider no actuator of this process has any more is left out: no
        action of it is routed, so nothing would ever close its breaker, and a
        gauge restored at 1 would hold its alert firing for good.
        """
        if not self.enabled:
            return
        known = set(self._providers.values())
        for event in alerts:
            payload = event.payload
            scope, provider, state = (payload.get(k) for k in ("breaker", "provider", "state"))
            opened = state == "open"
            restored = BreakerState(opened_at=event.ts) if opened else BreakerState()
            if scope == "fleet":
                self._fleet = restored
            elif scope == "provider" and isinstance(provider, str) and provider in known:
                self._states[provider] = restored
            else:
                continue
            label = provider if isinstance(provider, str) else FLEET
            self._metrics.breaker_open.labels(scope=scope, provider=label).set(1 if opened else 0)

    def state(self, provider: str) -> BreakerState:
        return self._states.get(provider, BreakerState())

    @property
    def fleet(self) -> BreakerState:
        return self._fleet

    def observed(
        self, tick_id: str, now: datetime, resources: int, errors: Mapping[str, str]
    ) -> None:
        """A tick's observe: each failed actuator counts against its provider.

        A successful observe does not close a breaker: a provider may answer
        reads while its writes are throttled, so only a successful probe does.
        First, each breaker is `rebased` on ``now``, in case the wall clock stepped back.
        """
        if not self.enabled:
            return
        self._states = {p: rebased(state, now) for p, state in self._states.items()}
        self._fleet = rebased(self._fleet, now)
        self._tick_id = tick_id
        self._probed.clear()
        self._fleet_size = resources
        for name in sorted(errors):
            provider = self._providers.get(name)
            if provider is not None:
                self._provider_failed(provider, f"observe:{name}:{tick_id}", now)

    def hold(self, action: Action, now: datetime) -> Verdict | None:
        """The block an open breaker puts on ``action``, or None when it may pass."""
        if not self.enabled:
            return None
        if not admits(self._fleet, self.fleet_policy, now, probed=FLEET in self._probed):
            return Verdict.block(
                BlockReason.FLEET_PAUSED,
                "fleet breaker open: actions failed on too many resources at once; "
                "resumes after a successful probe",
            )
        provider = action.target.provider
        state = self.state(provider)
        if not admits(state, self.provider_policy, now, probed=provider in self._probed):
            return Verdict.block(
                BlockReason.PROVIDER_DEGRADED,
                f"provider {provider} degraded: its calls keep failing temporarily; "
                "held until a probe succeeds",
            )
        return None

    def probing(self, action: Action, now: datetime) -> None:
        """``action`` is about to be applied: a half-open breaker has sent its probe."""
        if not self.enabled:
            return
        if self._fleet.phase(self.fleet_policy, now) is Phase.HALF_OPEN:
            self._probed.add(FLEET)
        provider = action.target.provider
        if self.state(provider).phase(self.provider_policy, now) is Phase.HALF_OPEN:
            self._probed.add(provider)

    def settle(self, action: Action, outcome: Outcome, attempt: datetime, now: datetime) -> bool:
        """Feed an apply's outcome; False when its failure is the degraded provider's.

        The caller charges the retry budget only when this returns True; for
        False the attempt is to be taken back (``RetryLedger.forgive``).
        """
        if not self.enabled:
            return True
        provider = action.target.provider
        charge = True
        if outcome.ok:
            self._provider_succeeded(provider, now)
        elif counts(outcome):
            before = self.state(provider).phase(self.provider_policy, now)
            tripping = (*action.key, attempt)
            source = str(action.target)
            if provider_wide(outcome):
                source = f"{source}@{attempt.isoformat()}"
            opened = self._provider_failed(provider, source, now, tripping)
            charge = before is Phase.CLOSED and not opened
            if charge:
                horizon = now - self.provider_policy.window
                charged = [c for c in self._charged.get(provider, []) if c[0] > horizon]
                self._charged[provider] = [*charged, (now, action.key, attempt)]
        if outcome.ok or charge:
            # Inhibition: a failure its provider's breaker explains is not the fleet's.
            self._fleet_outcome(action, outcome, now)
        return charge

    def peer_failed(self, event: Event) -> None:
        """Count another replica's recorded failure (an ``action.failed`` event, or an
        ``action.unknown`` one whose call timed out) for the fleet."""
        if not self.enabled or event.resource is None:
            return
        payload = event.payload
        try:
            target = ResourceRef.parse(event.resource)
            kind = payload.get("error_kind")
            outcome = Outcome(
                status=OutcomeStatus(str(payload.get("outcome"))),
                error_kind=None if kind is None else ErrorKind(str(kind)),
            )
        except ValueError:
            return
        closed = self.state(target.provider).phase(self.provider_policy, event.ts) is Phase.CLOSED
        if counts(outcome) and closed:
            self._fleet_failed(event.resource, event.ts)

    # -- transitions ---------------------------------------------------------

    def _provider_failed(
        self, provider: str, source: str, now: datetime, tripping: Refund | None = None
    ) -> bool:
        """Count one failure; True when it opened the breaker.

        ``tripping`` is the failed attempt being settled, if any: when it opens
        the breaker it is named in the alert with the refunds, since it is not
        charged either.
        """
        state, transition = failed(self.state(provider), self.provider_policy, source, now)
        self._states[provider] = state
        if transition is not Transition.OPENED:
            return False
        refunded = self._refund(provider, now)
        if self._fleet.opened_at is None:
            # The failures this provider's breaker explains leave the fleet's count.
            mine = f"{provider}://"
            kept = tuple(f for f in self._fleet.failures if not f[1].startswith(mine))
            self._fleet = BreakerState(failures=kept)
        if tripping is not None:
            refunded.append(tripping)
        sources = len({src for _, src in state.failures})
        self._alert("provider", provider, opened=True, failures=sources, now=now, refunded=refunded)
        return True

    def _provider_succeeded(self, provider: str, now: datetime) -> None:
        state, transition = succeeded(self.state(provider), self.provider_policy, now)
        self._states[provider] = state
        if transition is Transition.CLOSED:
            self._alert("provider", provider, opened=False, failures=0, now=now)

    def _fleet_outcome(self, action: Action, outcome: Outcome, now: datetime) -> None:
        if outcome.ok:
            self._fleet, transition = succeeded(self._fleet, self.fleet_policy, now)
        else:
            self._fleet_failed(str(action.target), now)
            return
        self._fleet_alert(transition, now)

    def _fleet_failed(self, resource: str, now: datetime) -> None:
        # Distinct resources, as for a provider: one resource failing again
        # and again is its retry budget's business, not a reason to pause all.
        limit = fleet_threshold(self._fleet_size)
        self._fleet, transition = failed(
            self._fleet, self.fleet_policy, resource, now, threshold=limit
        )
        self._fleet_alert(transition, now)

    def _fleet_alert(self, transition: Transition, now: datetime) -> None:
        if transition is not Transition.NONE:
            failures = len({src for _, src in self._fleet.failures})
            opened = transition is Transition.OPENED
            self._alert("fleet", None, opened=opened, failures=failures, now=now)

    def _refund(self, provider: str, now: datetime) -> list[Refund]:
        """Take back the budget charged for this provider's failures in the window."""
        horizon = now - self.provider_policy.window
        refunded: list[Refund] = []
        for failed_at, key, attempt in self._charged.pop(provider, []):
            if failed_at > horizon:
                self._ledger.forgive(key, attempt, now, charged=True)
                refunded.append((*key, attempt))
        return refunded

    def _alert(
        self,
        scope: str,
        provider: str | None,
        *,
        opened: bool,
        failures: int,
        now: datetime,
        refunded: Sequence[Refund] = (),
    ) -> None:
        subject = provider or "the fleet"
        if opened:
            detail = (
                f"breaker tripped: {subject} held after {failures} failures; "
                "retry budgets are not charged while it is open"
            )
        else:
            detail = f"breaker closed: {subject} is acting again"
        self._recorder.record(
            ev.breaker_alert(
                self._tick_id,
                now,
                scope=scope,
                provider=provider,
                opened=opened,
                failures=failures,
                detail=detail,
                refunded=[[resource, kind, at.isoformat()] for resource, kind, at in refunded],
            )
        )
        label = provider or FLEET
        self._metrics.breaker_open.labels(scope=scope, provider=label).set(1 if opened else 0)


def provider_map(actuators: Iterable[object]) -> dict[str, str]:
    """Actuator name -> provider, for every actuator that states both."""
    out: dict[str, str] = {}
    for actuator in actuators:
        name, provider = getattr(actuator, "name", None), getattr(actuator, "provider", None)
        if isinstance(name, str) and isinstance(provider, str):
            out[name] = provider
    return out
