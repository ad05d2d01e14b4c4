"""configure_logging: JSON lines off a terminal, console on request, contextvars on every line."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any

import pytest
import structlog

from jarvis.telemetry.logging import configure_logging


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_auto_format_on_a_pipe_writes_json_lines_with_bound_contextvars() -> None:
    """On a non-terminal stream every line is one JSON object carrying the bound tick_id."""
    out = io.StringIO()
    configure_logging(level="info", fmt="auto", stream=out)
    log = structlog.get_logger("jarvis.loop.reconciler")
    with structlog.contextvars.bound_contextvars(tick_id="tick-42", resource="sim://api"):
        log.info("action.applied", kind="scale", replicas=3)
        log.warning("action.failed", kind="restart")
    log.info("tick.finished")

    lines = _lines(out)
    assert [line["event"] for line in lines] == [
        "action.applied",
        "action.failed",
        "tick.finished",
    ]
    first, second, third = lines
    assert first["tick_id"] == "tick-42"
    assert first["resource"] == "sim://api"
    assert first["replicas"] == 3
    assert first["level"] == "info"
    assert second["level"] == "warning"
    assert second["tick_id"] == "tick-42"
    assert "tick_id" not in third
    assert first["timestamp"].endswith(("Z", "+00:00"))


def test_level_filters_our_debug_lines() -> None:
    """Events below the configured level are not written."""
    out = io.StringIO()
    configure_logging(level="warning", fmt="json", stream=out)
    log = structlog.get_logger("jarvis.test")
    log.info("quiet")
    log.error("loud")
    assert [line["event"] for line in _lines(out)] == ["loud"]


def test_stdlib_libraries_reach_the_same_stream_at_warning_and_above() -> None:
    """A library's stdlib warning is a JSON line naming its logger; its info is dropped."""
    out = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=out)
    botocore = logging.getLogger("botocore.endpoint")
    botocore.info("sending request")
    botocore.warning("retrying after %d ms", 250)

    lines = _lines(out)
    assert len(lines) == 1
    assert lines[0]["event"] == "retrying after 250 ms"
    assert lines[0]["logger"] == "botocore.endpoint"
    assert lines[0]["level"] == "warning"
    assert "timestamp" in lines[0]


def _flush() -> None:
    # Built at run time: the source line a traceback quotes must not contain the value.
    password = "".join(reversed("2retnuh"))
    raise RuntimeError(f"store unreachable ({len(password)})")


def test_exceptions_stay_on_one_json_line() -> None:
    """A logged exception is structured data inside a single valid JSON line."""
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = structlog.get_logger("jarvis.test")
    try:
        _flush()
    except RuntimeError:
        log.exception("flush.failed")

    (line,) = _lines(out)
    assert line["event"] == "flush.failed"
    assert line["level"] == "error"
    assert "store unreachable" in json.dumps(line["exception"])
    assert "hunter2" not in out.getvalue()
    assert list(line)[:3] == ["timestamp", "level", "event"]


def test_console_tracebacks_leave_frame_locals_out() -> None:
    """The console renderer prints the traceback but not the values of frame locals."""
    out = io.StringIO()
    configure_logging(fmt="console", stream=out)
    try:
        _flush()
    except RuntimeError:
        structlog.get_logger("jarvis.test").exception("flush.failed")
    text = out.getvalue()
    assert "store unreachable" in text
    assert "hunter2" not in text


def test_console_format_on_request_is_readable_not_json() -> None:
    """fmt='console' writes human-readable lines that still show bound contextvars."""
    out = io.StringIO()
    configure_logging(fmt="console", stream=out)
    with structlog.contextvars.bound_contextvars(tick_id="tick-7"):
        structlog.get_logger("jarvis.test").info("tick.started")

    text = out.getvalue()
    assert "tick.started" in text
    assert "tick_id=tick-7" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_auto_format_on_a_terminal_is_console() -> None:
    """On a terminal, auto picks the console renderer."""
    out = _Terminal()
    configure_logging(fmt="auto", stream=out)
    structlog.get_logger("jarvis.test").info("hello.operator")
    text = out.getvalue()
    assert "hello.operator" in text
    assert not text.lstrip().startswith("{")


def test_second_call_replaces_the_first() -> None:
    """Reconfiguring sends later lines to the new stream only, with one root handler."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    configure_logging(fmt="json", stream=second)
    structlog.get_logger("jarvis.test").info("after")
    logging.getLogger("aiohttp.server").error("library error")

    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["after", "library error"]


@pytest.mark.parametrize(("level", "fmt"), [("loud", "json"), ("info", "xml")])
def test_unknown_level_or_format_is_refused(level: str, fmt: str) -> None:
    """A typo in the level or format is a ValueError naming the accepted values."""
    with pytest.raises(ValueError, match="expected one of"):
        configure_logging(level=level, fmt=fmt, stream=io.StringIO())


def test_logs_follow_stderr_when_it_is_replaced_after_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Configured for stderr, logging writes to whatever stderr is now, not a closed stream."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info", "json")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger("jarvis.test").info("still heard")
    logging.getLogger("jarvis.test").warning("stdlib too")
    assert '"event": "still heard"' in second.getvalue()
    assert "stdlib too" in second.getvalue()


def test_a_json_line_writes_a_time_as_iso_8601_not_a_python_repr() -> None:
    """The daemon's "kill switch engaged" line gives the flip's time as a shipper parses it."""
    from datetime import UTC, datetime

    from jarvis.loop.killswitch import FlipLog
    from jarvis.model import KillSwitchState

    out = io.StringIO()
    configure_logging(level="info", fmt="json", stream=out)
    at = datetime(2026, 11, 30, 8, 20, 6, 593591, tzinfo=UTC)
    FlipLog().seen(KillSwitchState(engaged=True, actor="cli:alice", reason="look", changed_at=at))

    (line,) = _lines(out)
    assert line["event"] == "kill switch engaged"
    assert line["at"] == "2026-11-30T08:20:06.593591+00:00"


def test_a_console_line_writes_a_time_as_iso_8601_not_a_python_repr() -> None:
    """On a terminal too, the flip's time reads as a time, not as Python source."""
    from datetime import UTC, datetime

    from jarvis.loop.killswitch import FlipLog
    from jarvis.model import KillSwitchState

    out = io.StringIO()
    configure_logging(level="info", fmt="console", stream=out)
    at = datetime(2026, 11, 30, 8, 20, 6, tzinfo=UTC)
    FlipLog().seen(KillSwitchState(engaged=True, actor="cli:alice", reason="look", changed_at=at))

    assert "at=2026-11-30T08:20:06+00:00" in out.getvalue()
    assert "datetime.datetime" not in out.getvalue()
