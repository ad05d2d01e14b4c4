"""How the HTTP port tells an outage of a backend from a bug, and logs the outage.

Every backend the port's routes call (the admin API's and the status page's
`AdminBackend`, the Stripe webhook's `WebhookBackend`, ``/unsubscribe``'s opt-out)
says whether a failure is an outage: ``outage(exc)`` is the failure in one line
naming the server when it is the database, the kill switch's Redis or a service
away or refusing, and None when it is anything else. The daemon answers it with
the store's own judgement (`jarvis.loop.admin`, `jarvis.loop.billing`): this
package imports no store. A route that meets an outage answers 503 and logs it
with `warn_outage`, one warning whose ``error`` is that line; a bug keeps its
traceback at error level (`log_failure` logs either).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog

__all__ = ["Outage", "Outages", "log_failure", "warn_outage"]

log = structlog.get_logger(__name__)

Outage = Callable[[BaseException], str | None]
"""``outage(exc)``: ``exc`` in one line when it is an outage, None when it is a bug."""


class Outages(Protocol):
    """A backend that says which of its failures are outages."""

    def outage(self, exc: BaseException) -> str | None:
        """``exc`` in one line naming the server when it is a store, the kill switch's Redis
        or a service away or refusing, for a warning; None when it is anything else, a bug
        to log with its traceback."""
        ...


def warn_outage(outage: Outage, exc: BaseException, event: str, **fields: object) -> bool:
    """Log ``exc`` as one warning whose ``error`` is ``outage``'s line when it says one;
    whether it did (False: a bug, which the caller logs with its traceback or raises)."""
    why = outage(exc)
    if why is None:
        return False
    log.warning(event, error=why, **fields)
    return True


def log_failure(outage: Outage, exc: BaseException, event: str, **fields: object) -> None:
    """Log ``exc`` as `warn_outage` does when it is an outage, else as ``event`` at error
    level with its traceback (``log.exception``'s: call it in the ``except`` that caught
    ``exc``), for a route that answers the same either way."""
    if not warn_outage(outage, exc, event, **fields):
        log.exception(event, **fields)
