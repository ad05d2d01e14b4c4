"""Process-wide logging state, put back as it was found (`restored_logging`).

`configure_logging` changes structlog's configuration and adds a handler to
the root logger; tests that call it, or run code that does (the telemetry
tests, the benchmarks' ``run``), restore it so the rest of the suite is
unaffected by the order tests run in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog


@contextmanager
def restored_logging() -> Iterator[None]:
    """Run the block, then restore the root handlers and levels and structlog's defaults."""
    root = logging.getLogger()
    jarvis_logger = logging.getLogger("jarvis")
    handlers, level, jarvis_level = list(root.handlers), root.level, jarvis_logger.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        jarvis_logger.setLevel(jarvis_level)
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
