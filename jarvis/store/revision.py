"""The schema revisions this code knows, without importing Alembic.

Read by the migrations (`jarvis.store.migrate`), the read-only readers
(`jarvis.store.readonly`, which need `HEAD_REVISION` exactly) and the direct
kill-switch write (`jarvis.store.direct`, which writes at any revision here).
A revision not listed is a newer Jarvis's: nothing here reads or writes it.
"""

from __future__ import annotations

__all__ = ["HEAD_REVISION", "REVISIONS"]

REVISIONS = (
    "0001",
    "0002",
    "0003_leases",
    "0004_notifications",
    "0005_customers",
    "0006_stripe_events",
    "0007_churn",
    "0008_revenue",
    "0009_event_indexes",
    "0010_event_payload_json",
    "0011_lease_shards",
    "0012_outbox_pending_index",
    "0013_outbox_waiting",
)
"""Every revision under ``migrations/versions``, oldest first; a test holds it equal to
Alembic's history. ``events`` and ``killswitch`` have kept the shape and meaning of
``0001`` since: a migration that changes either must change what `jarvis.store.direct`
writes at the older revisions too."""

HEAD_REVISION = REVISIONS[-1]
"""The newest revision; a test holds it equal to Alembic's head."""
