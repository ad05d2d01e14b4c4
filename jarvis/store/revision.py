"""The schema revision this code reads and writes, without importing Alembic."""

from __future__ import annotations

__all__ = ["HEAD_REVISION"]

HEAD_REVISION = "0011_lease_shards"
"""The newest revision under ``migrations/versions``; a test holds it equal to Alembic's head."""
