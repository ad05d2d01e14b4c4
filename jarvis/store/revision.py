"""The schema revision this code reads and writes, without importing Alembic."""

from __future__ import annotations

__all__ = ["HEAD_REVISION"]

HEAD_REVISION = "0010_event_payload_json"
"""The newest revision under ``migrations/versions``; a test holds it equal to Alembic's head."""
