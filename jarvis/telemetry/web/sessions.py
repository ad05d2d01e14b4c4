"""Status-page logins: a session per login, each with its own CSRF token.

A login (`Sessions.create`) trades a token for a random session id, sent as an
HttpOnly, SameSite=Strict cookie, so the token itself never sits in the
browser and script on the page cannot read the session. Every form carries
the session's CSRF token and a change is refused unless it matches (compared
in constant time): with SameSite=Strict that is two independent defences
against a cross-site form. Sessions live in this process only; a daemon
restart logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Final

from jarvis.telemetry.auth import Identity
from jarvis.telemetry.clients import throttle_key

__all__ = ["COOKIE", "SESSION_SECONDS", "Notice", "Session", "Sessions"]

COOKIE: Final = "jarvis_session"
SESSION_SECONDS: Final = 12 * 3600
#: Sessions kept at most; the oldest goes first, so a login flood cannot fill memory.
MAX_SESSIONS: Final = 1000


@dataclass(frozen=True, slots=True)
class Notice:
    """One message for the next page: the outcome of a form, shown red unless it is ``ok``."""

    text: str
    ok: bool = True


@dataclass(slots=True)
class Session:
    id: str
    identity: Identity
    csrf: str
    expires: float
    flash: list[Notice] = field(default_factory=list)
    """Messages to show once on the next page (the outcome of a form)."""

    def take_flash(self) -> list[Notice]:
        """The messages to show now; each is shown once."""
        messages, self.flash = self.flash, []
        return messages

    def csrf_ok(self, presented: str | None) -> bool:
        # A field may decode to lone surrogates (a part in UTF-7): unequal, never a 500.
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), self.csrf.encode())


class Sessions:
    """The logged-in sessions of one server."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def create(self, identity: Identity) -> Session:
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session = Session(
            id=secrets.token_urlsafe(32),
            identity=identity,
            csrf=secrets.token_urlsafe(32),
            expires=time.monotonic() + SESSION_SECONDS,
        )
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if time.monotonic() >= session.expires:
            del self._by_id[session_id]
            return None
        return session

    def drop(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)


#: Failed logins from one address within `THROTTLE_SECONDS` before logins from it are refused.
MAX_FAILED_LOGINS: Final = 5
THROTTLE_SECONDS: Final = 60.0


class LoginThrottle:
    """Slows token guessing: after five failures from an address, a minute of refusals.

    Operators choose the tokens, and a short one could be guessed online;
    this caps guessing at five a minute per address (the client's behind a
    trusted proxy), an IPv6 client per /64 (`jarvis.telemetry.clients.throttle_key`).
    A refused login is refused whatever token it carries, so the throttle says nothing about
    whether a guess was right.
    """

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}

    def _recent(self, remote: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(remote, []) if now - t < THROTTLE_SECONDS]
        if recent:
            self._failures[remote] = recent
        else:
            self._failures.pop(remote, None)
        return recent

    def blocked(self, remote: str) -> bool:
        return len(self._recent(throttle_key(remote), time.monotonic())) >= MAX_FAILED_LOGINS

    def failed(self, remote: str) -> None:
        now = time.monotonic()
        remote = throttle_key(remote)
        if len(self._failures) >= MAX_SESSIONS and remote not in self._failures:
            del self._failures[next(iter(self._failures))]
        self._failures[remote] = [*self._recent(remote, now), now]
