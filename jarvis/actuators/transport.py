"""Which transport failures mean a request was sent and only its answer was lost.

The Kubernetes client speaks HTTP through urllib3, and Cloud Run's REST
transport through requests over urllib3. Both actuators must tell a write that
may have landed (recorded `action.unknown`) from one that never left
(`action.failed`), and both ask urllib3's own split here: a read timeout, or a
connection dropped mid-request, may have reached the server; a connection never
made (refused, a connect timeout, a TLS handshake that failed) sent nothing.
"""

from __future__ import annotations

from urllib3 import exceptions as u3exc


def answer_lost(exc: BaseException) -> BaseException | None:
    """The urllib3 error saying ``exc``'s request was sent and its answer lost, or None.

    ``exc`` is urllib3's error itself or its `MaxRetryError` (a request whose retries
    ran out); a wrapper of another library (requests' exceptions) passes what it wraps.
    """
    cause = exc.reason if isinstance(exc, u3exc.MaxRetryError) else exc
    if isinstance(cause, u3exc.ReadTimeoutError | u3exc.ProtocolError):
        return cause
    return None
