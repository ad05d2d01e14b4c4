"""Who is asking: the admin and read tokens, shared by the admin API and the status page.

The actor recorded for a change comes from the credential, never from the
request body: the admin token acts as ``admin-token``, the read token reads
as ``read-token`` and may change nothing. Tokens are compared in constant
time; an empty token counts as unset, so ``Authorization: Bearer `` never
matches it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from aiohttp import web

__all__ = ["ADMIN", "READER", "Credentials", "Identity", "bearer_token"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified credential: the actor name it records and whether it may change things."""

    actor: str
    may_change: bool


ADMIN: Final = Identity("admin-token", may_change=True)
READER: Final = Identity("read-token", may_change=False)


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    # The auth scheme is case-insensitive (RFC 7235 section 2.1).
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Credentials:
    """The configured tokens; `identify` maps a presented token to an `Identity`."""

    def __init__(self, *, admin_token: str | None, read_token: str | None = None) -> None:
        self._admin = admin_token.encode() if admin_token else None
        self._read = read_token.encode() if read_token else None

    @property
    def enabled(self) -> bool:
        """Whether any token is configured; with none, everything is refused."""
        return self._admin is not None or self._read is not None

    @property
    def admin_enabled(self) -> bool:
        return self._admin is not None

    def identify(self, presented: str | None) -> Identity | None:
        if not presented:
            return None
        # A header that is not UTF-8 arrives with lone surrogates (aiohttp decodes
        # with surrogateescape); it must compare unequal, not fail to encode.
        raw = presented.encode("utf-8", "surrogatepass")
        # Both comparisons always run, so timing does not say which token was close.
        is_admin = self._admin is not None and hmac.compare_digest(raw, self._admin)
        is_reader = self._read is not None and hmac.compare_digest(raw, self._read)
        if is_admin:
            return ADMIN
        return READER if is_reader else None

    def redact(self, text: str) -> str:
        """``text`` without the tokens: the fallback when no store redactor is given."""
        for token in (self._admin, self._read):
            if token is not None:
                text = text.replace(token.decode(), "[redacted]")
        return text
