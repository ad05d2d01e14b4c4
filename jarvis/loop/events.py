"""Event constructors for the reconciler: one place that decides kinds,
idempotency keys and payload shapes, so replays never duplicate a row and
every reader (CLI, policies' history, simulation invariants) sees one format."""

from __future__ import annotations

import hashlib
from datetime import datetime

from jarvis.model import (
    JSON,
    Action,
    Event,
    EventKind,
    Outcome,
    OutcomeStatus,
    ResourceState,
    Verdict,
)
from jarvis.policies.base import Note
from jarvis.store.storable import safe_text

_OUTCOME_KINDS = {
    OutcomeStatus.OK: EventKind.ACTION_APPLIED,
    OutcomeStatus.FAILED: EventKind.ACTION_FAILED,
    OutcomeStatus.TIMED_OUT: EventKind.ACTION_UNKNOWN,
}


def tick_id_for(now: datetime, run_id: str) -> str:
    return f"{now:%Y%m%dT%H%M%S.%f}"[:-3] + f"Z-{run_id}"


def action_id_for(tick_id: str, action: Action) -> str:
    return f"{tick_id}:{action.target}:{action.kind}"


def idempotency_key(action_id: str) -> str:
    """The key an actuator sends (or records) with the change for ``action_id``.

    ``jarvis-`` and the first 40 hex digits of the id's SHA-256: 47 ASCII
    characters, stable across processes and restarts, so every attempt of one
    action id (an actuator's own retry, a replay after a crash) sends the same
    key. Short and plain enough for every provider: ECS client tokens take at
    most 64 ASCII characters, Kubernetes and Cloud Run annotation values and
    Redis hash fields take any string. 160 bits make a collision between two
    action ids negligible.

    The id is hashed as the store records it (`safe_text`: a NUL or a lone
    surrogate in a resource's name replaced), so recovery, which reads the
    recorded id back, derives the key the provider was sent, and a name no
    UTF-8 encoder takes cannot stop the tick between its intent and its call.
    """
    digest = hashlib.sha256(safe_text(action_id).encode()).hexdigest()
    return f"jarvis-{digest[:40]}"


def tick_event(kind: EventKind, tick_id: str, now: datetime, **payload: JSON) -> Event:
    return Event(
        kind=kind,
        ts=now,
        idempotency_key=f"{tick_id}:{kind.value}",
        tick_id=tick_id,
        payload=payload,
    )


def resource_changed(
    tick_id: str, now: datetime, state: ResourceState, previous: ResourceState | None
) -> Event:
    replicas = state.replicas
    payload: dict[str, JSON] = {
        "health": state.health.value,
        "version": state.version,
        "replicas": None
        if replicas is None
        else {
            "desired": replicas.desired,
            "running": replicas.running,
            "pending": replicas.pending,
            "min": replicas.min,
            "max": replicas.max,
        },
        "detail": state.detail,
        "attributes": state.record_attributes(),
        "previous": None
        if previous is None
        else {"health": previous.health.value, "version": previous.version},
    }
    return Event(
        kind=EventKind.RESOURCE_CHANGED,
        ts=now,
        idempotency_key=f"{tick_id}:changed:{state.ref}",
        tick_id=tick_id,
        resource=str(state.ref),
        reason=state.detail or None,
        payload=payload,
    )


def observe_failed(
    tick_id: str, now: datetime, actuator: str, error: str, code: str | None
) -> Event:
    return Event(
        kind=EventKind.OBSERVE_FAILED,
        ts=now,
        idempotency_key=f"{tick_id}:observe.failed:{actuator}",
        tick_id=tick_id,
        reason=error,
        payload={"actuator": actuator, "error": error, "code": code},
    )


def action_event(
    kind: EventKind,
    tick_id: str,
    now: datetime,
    action: Action,
    *,
    key: str,
    action_id: str | None = None,
    reason: str | None = None,
    **extra: JSON,
) -> Event:
    return Event(
        kind=kind,
        ts=now,
        idempotency_key=key,
        tick_id=tick_id,
        resource=str(action.target),
        action_kind=action.kind,
        policy=action.policy,
        reason=reason if reason is not None else action.reason,
        payload={
            "params": action.params_json(),
            "proposal": action.reason,
            # Only an operator's action names one, so policy events keep their shape.
            **({"actor": action.actor} if action.actor else {}),
            **extra,
        },
        action_id=action_id,
    )


def proposed(tick_id: str, now: datetime, action: Action) -> Event:
    key = f"{tick_id}:proposed:{action.policy}:{action.target}:{action.kind}"
    return action_event(EventKind.ACTION_PROPOSED, tick_id, now, action, key=key)


def blocked(tick_id: str, now: datetime, action: Action, verdict: Verdict) -> Event:
    key = f"{tick_id}:blocked:{action.policy}:{action.target}:{action.kind}"
    reason = verdict.reason.value if verdict.reason else "unknown"
    return action_event(
        EventKind.ACTION_BLOCKED,
        tick_id,
        now,
        action,
        key=key,
        reason=reason,
        blocked=reason,
        detail=verdict.detail,
    )


def started(tick_id: str, now: datetime, action: Action, action_id: str) -> Event:
    return action_event(
        EventKind.ACTION_STARTED,
        tick_id,
        now,
        action,
        key=f"{action_id}:started",
        action_id=action_id,
    )


def outcome_event(
    tick_id: str, now: datetime, action: Action, action_id: str, outcome: Outcome
) -> Event:
    """``action.applied``, ``action.failed``, or ``action.unknown`` for a call that may
    have reached the provider but had no answer in time (``timed_out``)."""
    kind = _OUTCOME_KINDS[outcome.status]
    return action_event(
        kind,
        tick_id,
        now,
        action,
        key=f"{action_id}:outcome",
        action_id=action_id,
        outcome=outcome.status.value,
        detail=outcome.detail,
        error_kind=outcome.error_kind.value if outcome.error_kind else None,
        error_code=outcome.error_code,
    )


def escalated(
    tick_id: str | None,
    now: datetime,
    subject: Action | Event,
    action_id: str | None,
    *,
    attempts: int,
    error: str,
    terminal: bool = False,
) -> Event:
    """A retry budget is spent, or a terminal error ended it: the pair is quarantined.

    ``subject`` is the action whose budget ran out in this tick, or the
    `action.started` intent a previous process left open (recovery). The kind,
    key and the ``attempts``/``last_error`` payload are decided here for both;
    an orphaned intent has no `Action` to repeat, so its event carries the
    intent's names and no ``params``/``proposal``, and its reason is the
    shorter one recovery has always written (changing it would rewrite history).
    """
    if isinstance(subject, Event):
        return Event(
            kind=EventKind.ACTION_ESCALATED,
            ts=now,
            idempotency_key=f"{action_id}:escalated",
            tick_id=tick_id,
            resource=subject.resource,
            action_kind=subject.action_kind,
            policy=subject.policy,
            reason=f"{attempts} failed attempts; quarantined",
            payload={"attempts": attempts, "last_error": error},
            action_id=action_id,
        )
    if tick_id is None or action_id is None:
        raise ValueError("an action's escalation needs its tick id and action id")
    return action_event(
        EventKind.ACTION_ESCALATED,
        tick_id,
        now,
        subject,
        key=f"{action_id}:escalated",
        action_id=action_id,
        reason=(
            "a terminal error (retrying cannot help); quarantined until `jarvis retries reset`"
            if terminal
            else f"{attempts} failed attempts; quarantined until `jarvis retries reset`"
        ),
        attempts=attempts,
        last_error=error,
    )


def unknown_outcome(intent: Event, now: datetime) -> Event:
    """Closes an intent a previous process left without an outcome."""
    return Event(
        kind=EventKind.ACTION_UNKNOWN,
        ts=now,
        # Its own key, not the outcome's: a real outcome that arrives later (a
        # paused process waking) is then recorded beside it, not dropped.
        idempotency_key=f"{intent.action_id}:unknown",
        tick_id=intent.tick_id,
        resource=intent.resource,
        action_kind=intent.action_kind,
        policy=intent.policy,
        reason="the process ended between intent and outcome; counted as a failed attempt",
        payload={"outcome": OutcomeStatus.FAILED.value, "intent_id": intent.id},
        action_id=intent.action_id,
    )


def recovered_applied(intent: Event, now: datetime, proof: str) -> Event:
    """Closes an intent a previous process left open whose change the provider proves made.

    Shaped as the outcome that process would have written (its key, the
    intent's params and reason), with ``recovered`` and the proof in ``detail``:
    a real outcome arriving later is the same fact and is not written twice.
    """
    detail = f"applied before the process ended, found at start: {proof}"
    return _proven_applied(intent, now, f"{intent.action_id}:outcome", detail, "recovered")


def confirmed_applied(intent: Event, now: datetime, proof: str, *, quarantined: bool) -> Event:
    """An ``action.applied`` for an intent already closed as ``action.unknown``: the provider
    proves its change made (`jarvis.loop.unknowns`).

    Its own key, beside the unknown's outcome (``{action_id}:outcome``, or
    recovery's ``:unknown``), which would otherwise drop it. ``confirmed`` and
    the proof in ``detail``; when the unknown had already escalated, the
    detail says the quarantine stays for an operator to lift.
    """
    detail = f"confirmed after an unknown outcome: {proof}"
    if quarantined:
        detail += "; the quarantine the unknown outcome led to stays until `jarvis retries reset`"
    return _proven_applied(intent, now, f"{intent.action_id}:confirmed", detail, "confirmed")


def _proven_applied(intent: Event, now: datetime, key: str, detail: str, marker: str) -> Event:
    """``action.applied`` for ``intent``, shaped as its outcome would have been (the intent's
    params and reason), with ``detail`` and ``marker`` set true in the payload."""
    kept = {k: v for k, v in intent.payload.items() if k in ("params", "proposal", "actor")}
    return Event(
        kind=EventKind.ACTION_APPLIED,
        ts=now,
        idempotency_key=key,
        tick_id=intent.tick_id,
        resource=intent.resource,
        action_kind=intent.action_kind,
        policy=intent.policy,
        reason=intent.reason,
        payload={
            **kept,
            "outcome": OutcomeStatus.OK.value,
            "detail": detail,
            "error_kind": None,
            "error_code": None,
            marker: True,
            "intent_id": intent.id,
        },
        action_id=intent.action_id,
    )


def spool_dead_letters(
    now: datetime, count: int, total: int, dead_letter_file: str | None
) -> Event:
    """Spool lines that could not be replayed were set aside: an operator should look at them.

    ``total`` (this process's running count) keeps two alerts at one instant apart.
    """
    return Event(
        kind=EventKind.ALERT,
        ts=now,
        idempotency_key=f"spool.dead-letters:{now.isoformat()}:{total}",
        reason=f"{count} damaged spool line(s) set aside in {dead_letter_file}",
        payload={
            "cause": "spool.dead_letters",
            "severity": "warning",
            "dead_letters": count,
            "dead_letter_file": dead_letter_file,
        },
    )


def note_event(tick_id: str, now: datetime, policy: str, note: Note) -> Event:
    discriminator = (
        note.key
        or hashlib.sha1(  # noqa: S324 - a key, not a secret
            f"{note.resource}|{note.message}".encode()
        ).hexdigest()[:12]
    )
    kind = EventKind.ALERT if note.alert else EventKind.POLICY_NOTE
    return Event(
        kind=kind,
        ts=now,
        idempotency_key=f"{tick_id}:{kind.value}:{policy}:{discriminator}",
        tick_id=tick_id,
        resource=note.resource,
        policy=policy,
        reason=note.message,
        payload=dict(note.payload),
    )


def breaker_alert(
    tick_id: str,
    now: datetime,
    *,
    scope: str,
    provider: str | None,
    opened: bool,
    failures: int,
    detail: str,
    refunded: list[JSON] | None = None,
) -> Event:
    """One `alert` when a breaker opens and one when it closes (``scope``: provider or fleet).

    ``refunded`` lists [resource, action kind, attempt start] of the failures
    not charged to their retry budgets because this opening explains them.
    """
    state = "open" if opened else "closed"
    subject = provider or "fleet"
    return Event(
        kind=EventKind.ALERT,
        ts=now,
        idempotency_key=f"{tick_id}:alert:breaker:{scope}:{subject}:{state}",
        tick_id=tick_id,
        resource=None,
        policy="breaker",
        reason=detail,
        payload={
            # What the notifier reads (`jarvis.notify.alerts`): one incident per
            # breaker, resolved by its closing. A warning, not a page: a held
            # provider is Jarvis coping, and the escalations it spares are the pages.
            "cause": f"breaker:{scope}:{subject}",
            "severity": "warning",
            "resolved": not opened,
            "breaker": scope,
            "provider": provider,
            "state": state,
            "failures": failures,
            "refunded": refunded or [],
        },
    )


def metrics_sampled(tick_id: str, now: datetime, rpm: dict[str, JSON]) -> Event:
    """One hour's traffic sample: each resource URI's ``requests_per_minute``.

    One event for the whole fleet, not one per resource, so a day holds 24 of
    them; the daily report draws them beside the replicas (`jarvis.report`).
    """
    return Event(
        kind=EventKind.METRICS_SAMPLED,
        ts=now,
        idempotency_key=f"{tick_id}:{EventKind.METRICS_SAMPLED.value}",
        tick_id=tick_id,
        payload={"requests_per_minute": rpm},
    )
