"""Fixtures for the telemetry tests: logging state restored after every test.

`configure_logging` changes process-wide state (structlog's configuration, a
handler on the root logger); each test here gets it back as it found it, so
the rest of the suite is unaffected by the order tests run in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
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
