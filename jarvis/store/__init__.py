"""The event store: SQLAlchemy (async) tables, the event writer with its spool,
queries, the kill-switch backends and Alembic migrations, plus the in-memory
backends the simulation runs on.

The app builds an `EventStore` (and a kill-switch backend) once from settings;
the loop appends and flushes events through it, and the CLI migrates
(`upgrade`) and queries it. Nothing below the loop imports this package.

Names are imported on first use (PEP 562): `jarvis killswitch engage` reaches
`jarvis.store.direct` and `jarvis.store.codec` without loading the async
engine, whose `sqlalchemy.ext.asyncio` imports SQLAlchemy's ORM.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jarvis.store.errors import LeaseLostError, NotMigratedError, StoreError
    from jarvis.store.events import EventBackend, EventStore, FlushResult
    from jarvis.store.killswitch import DbKillSwitch, KillSwitchBackend
    from jarvis.store.memory import MemoryBackend, MemoryKillSwitch
    from jarvis.store.migrate import current_revision, head_revision, upgrade
    from jarvis.store.redact import Redactor
    from jarvis.store.storable import safe_text
    from jarvis.store.tables import metadata

_WHERE = {
    "DbKillSwitch": "killswitch",
    "EventBackend": "events",
    "EventStore": "events",
    "FlushResult": "events",
    "KillSwitchBackend": "killswitch",
    "LeaseLostError": "errors",
    "MemoryBackend": "memory",
    "MemoryKillSwitch": "memory",
    "NotMigratedError": "errors",
    "Redactor": "redact",
    "StoreError": "errors",
    "current_revision": "migrate",
    "head_revision": "migrate",
    "metadata": "tables",
    "safe_text": "storable",
    "upgrade": "migrate",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'jarvis.store' has no attribute {name!r}")
    return getattr(import_module(f"jarvis.store.{module}"), name)
