"""Known secrets kept out of the store: one `Redactor` for every write path.

The composition root builds a `Redactor` from the settings' secrets (the admin
and read tokens, database and Redis passwords, every other ``SecretStr`` such
as probe URLs or webhook URLs) and hands it to the `EventStore`, which applies
it to every event it buffers and every retry-ledger row it stages, and to the
kill switch, which applies it before the backend writes a flip. Text from
outside (an admin request's reason, a provider's error message) therefore
reaches neither the database, the spool nor Redis with a secret in it, however
it was pasted. Tokens are compared as substrings, so a secret shorter than
`MIN_SECRET_CHARS` is not redacted: it would shred ordinary words, and a
secret that short is no secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, overload

from jarvis.model import Event, RetryState
from jarvis.store.storable import payload_json, safe_event, storable_text, text_fields

__all__ = ["MIN_SECRET_CHARS", "REDACTED", "Redactor", "Storable"]

REDACTED: Final = "[redacted]"
MIN_SECRET_CHARS: Final = 4


class Redactor:
    """Replaces each known secret in outside text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first: a secret that contains another is replaced whole.
        unique = {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        self._secrets = tuple(sorted(unique, key=len, reverse=True))
        self._plain = all(payload_json({"": s}) == f'{{"":"{s}"}}' for s in self._secrets)
        """No secret holds a character JSON escapes, so each is found in encoded text as is."""

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        """``value`` with every known secret replaced; usually itself."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def json(self, value: Any) -> Any:
        """A JSON-like value with secrets replaced in every string, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value

    def event(self, event: Event) -> Event:
        """The event with secrets replaced in its strings and payload; itself when clean."""
        if not self._secrets or not self._leaks(event):
            return event
        cleaned = {
            "idempotency_key": self.text(event.idempotency_key),
            "tick_id": self.optional(event.tick_id),
            "resource": self.optional(event.resource),
            "action_kind": self.optional(event.action_kind),
            "policy": self.optional(event.policy),
            "reason": self.optional(event.reason),
            "action_id": self.optional(event.action_id),
            "payload": self.json(event.payload),
        }
        if all(value == getattr(event, name) for name, value in cleaned.items()):
            return event
        return replace(event, **cleaned)

    def storable(self, event: Event) -> Event:
        """``safe_event(self.event(event))``: what the store buffers; itself when clean.

        The store's hottest step at ``append``. The two checks each encoded
        the payload and scanned the fields; here a clean event (nearly every
        one) costs one C encoding of its payload and one join of its fields,
        scanned for each secret and for what `safe_event` replaces. Anything
        found, or a payload the encoder refuses, takes the two exact paths in
        turn, so the answer is theirs (tests/store/test_fast_checks.py).
        """
        if self.clean_json(event) is not None:
            return event
        return safe_event(self.event(event))

    def clean_json(self, event: Event) -> str | None:
        """The payload's JSON (`payload_json`) when the event is storable as it is; else None.

        `storable`'s fast check, whose encoding a backend that reads payloads
        back through JSON (`jarvis.store.memory`) reuses. None says only that
        the check could not vouch for the event: it may still come back clean.
        """
        if not self._plain:
            return None
        try:
            payload = payload_json(event.payload)
        except (TypeError, ValueError, RecursionError):
            return None
        joined = "\n".join((*text_fields(event), payload))
        # JSON escapes a NUL in the payload as \u0000; a literal one only costs the walk.
        if "\\u0000" in joined or not storable_text(joined):
            return None
        for secret in self._secrets:
            if secret in joined:
                return None
        return payload

    def _found(self, value: Any) -> bool:
        """Whether a secret occurs anywhere in ``value``; allocates nothing."""
        if isinstance(value, str):
            return any(secret in value for secret in self._secrets)
        if isinstance(value, Mapping):
            return any(self._found(k) or self._found(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self._found(v) for v in value)
        return False

    def _leaks(self, event: Event) -> bool:
        """Whether a secret occurs in the event; one scan per secret for a clean one.

        Nearly every event is clean: look first, copy only one that needs it.
        The fields and the payload's JSON are joined and searched once; a
        secret JSON would not escape appears verbatim there wherever it occurs.
        A match may also span two fields, so only a match pays for the exact
        walk (`_found`), and so does a secret JSON escapes.
        """
        texts = text_fields(event)
        if self._plain:
            try:
                joined = "\n".join((*texts, payload_json(event.payload)))
            except (TypeError, ValueError, RecursionError):
                pass
            else:
                if not any(secret in joined for secret in self._secrets):
                    return False
        return any(self._found(t) for t in texts) or self._found(event.payload)

    def retry(self, state: RetryState) -> RetryState:
        """The ledger row with secrets replaced in its error text; itself when clean."""
        last_error = self.text(state.last_error)
        resource = self.text(state.resource)
        if (last_error, resource) == (state.last_error, state.resource):
            return state
        return replace(state, last_error=last_error, resource=resource)


class Storable(Sequence[Event]):
    """Events as the store writes them: each through `Redactor.storable` as it is read.

    What `EventStore.flush` hands its backend and its spool. The work is done
    where the events are read, not at ``append``: PostgreSQL's writer reads
    them as its COPY streams (`jarvis.store.writer`), so the client redacts
    and checks one event while the server parses the rows before it, on the
    other core, instead of before the COPY starts (docs/benchmarks.md,
    benchmark 3). Every read gives the storable event, so no backend can
    write one that is not; reading twice does the work twice and gives the
    same events.
    """

    __slots__ = ("_events", "_redactor", "_storable")

    def __init__(self, events: Sequence[Event], redactor: Redactor) -> None:
        self._events = events
        self._redactor = redactor
        self._storable = redactor.storable

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return map(self._storable, self._events)

    def encoded(self) -> Iterator[tuple[Event, str | None]]:
        """Each storable event with its payload's JSON when the check made it (`clean_json`)."""
        clean_json = self._redactor.clean_json
        for event in self._events:
            payload = clean_json(event)
            if payload is None:
                yield self._redactor.storable(event), None
            else:
                yield event, payload

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        if isinstance(index, slice):
            return [self._storable(event) for event in self._events[index]]
        return self._storable(self._events[index])
