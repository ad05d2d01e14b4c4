"""Fixtures for the telemetry tests: logging state restored after every test.

`configure_logging` changes process-wide state (structlog's configuration, a
handler on the root logger); each test here gets it back as it found it, so
the rest of the suite is unaffected by the order tests run in.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.logging_state import restored_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield
