"""How long the store waits on a database, shared by the engine and the direct flip writer.

Kept apart from `jarvis.store.engine` so that `jarvis.store.direct`, which
must not load SQLAlchemy's async engine, waits exactly as the engine does.
"""

from __future__ import annotations

BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another process's write lock."""
CONNECT_TIMEOUT_S = 5.0
"""How long connecting to PostgreSQL may take before the database counts as unreachable."""
STATEMENT_TIMEOUT_S = 15.0
"""How long one PostgreSQL statement may take before it counts as an outage: a
frozen database (SIGSTOP, a partition that drops packets) must fail writes over
to the spool, not hang them. Three times what a 100,000-event flush took here
(ingest measured about 20,000 events/s, docs/benchmarks.md)."""

IDLE_IN_TRANSACTION_S = 10.0
"""How long PostgreSQL keeps a session that sits idle inside a transaction. A
leader paused mid-flush (SIGSTOP, a frozen VM) holds a share lock on the lease
row (`jarvis.store.fence`); the server ends its session after this, so the
takeover waits at most this long, and the paused write is rolled back."""
