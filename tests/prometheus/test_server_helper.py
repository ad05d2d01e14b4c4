"""The Prometheus test server fails clearly, and cleans up, where Prometheus cannot start."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.prometheus import server


def test_a_missing_binary_is_a_clear_error_that_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "PROMETHEUS", "/nonexistent/prometheus")
    before = set(Path(tempfile.gettempdir()).glob("jarvis-prom-*"))
    with pytest.raises(RuntimeError, match="cannot start /nonexistent/prometheus"):
        server.PrometheusServer([1])
    assert set(Path(tempfile.gettempdir()).glob("jarvis-prom-*")) == before
