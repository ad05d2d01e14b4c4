"""The event store: SQLAlchemy (async) tables, the event writer with its spool,
queries, the kill-switch backends and Alembic migrations, plus the in-memory
backends the simulation runs on.

The app builds an `EventStore` (and a kill-switch backend) once from settings;
the loop appends and flushes events through it, and the CLI migrates
(`upgrade`) and queries it. Nothing below the loop imports this package.
"""

from jarvis.store.codec import safe_text
from jarvis.store.errors import LeaseLostError, NotMigratedError, StoreError
from jarvis.store.events import EventBackend, EventStore, FlushResult
from jarvis.store.killswitch import DbKillSwitch, KillSwitchBackend
from jarvis.store.memory import MemoryBackend, MemoryKillSwitch
from jarvis.store.migrate import current_revision, head_revision, upgrade
from jarvis.store.redact import Redactor
from jarvis.store.tables import metadata

__all__ = [
    "DbKillSwitch",
    "EventBackend",
    "EventStore",
    "FlushResult",
    "KillSwitchBackend",
    "LeaseLostError",
    "MemoryBackend",
    "MemoryKillSwitch",
    "NotMigratedError",
    "Redactor",
    "StoreError",
    "current_revision",
    "head_revision",
    "metadata",
    "safe_text",
    "upgrade",
]
