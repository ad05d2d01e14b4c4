"""Structured logging for the daemon: structlog for our code, stdlib routed alongside.

The CLI and the composition root call `configure_logging` once at start-up
(tests call it again with their own stream). Our modules log through
``structlog.get_logger(__name__)``; the reconciler binds ``tick_id`` and
``resource`` with ``structlog.contextvars.bind_contextvars`` and every line
written while they are bound carries them. Third-party libraries that log
through the stdlib (botocore, aiohttp, alembic) reach the same stream, in the
same format, at WARNING and above.
"""

from __future__ import annotations

import logging
import sys
from datetime import date, time
from typing import Final, TextIO

import structlog
import structlog.tracebacks
from structlog.typing import EventDict, Processor

__all__ = ["FORMATS", "LEVELS", "configure_logging"]

FORMATS: Final = ("auto", "json", "console")
LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

#: Libraries are chatty at INFO (one line per HTTP request for botocore and
#: aiohttp.access); only their warnings and errors are worth an operator's eye.
_FOREIGN_LEVEL: Final = logging.WARNING


class _JarvisHandler(logging.StreamHandler[TextIO]):
    """The root handler we install; a distinct type so a second call can find it."""


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of each write.

    The default destination: an embedding program (or a test harness) that
    swaps stderr after logging was configured keeps getting the log, instead of
    a write to the stream it closed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream answers isatty() with ValueError
        return False


#: Keys that lead every JSON line, so a human scanning raw logs reads them first.
_LEADING_KEYS: Final = ("timestamp", "level", "event", "logger")


def _leading_keys_first(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _iso(value: object) -> object:
    """A time in ISO 8601, as a log shipper parses it (both renderers would repr it); else as is."""
    return value.isoformat() if isinstance(value, date | time) else value


def _times_in_iso(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        event_dict[key] = _iso(value)
    return event_dict


def _json_default(value: object) -> str:
    """A value JSON has no type for, a time nested in a mapping among them; else its repr."""
    shown = _iso(value)
    return shown if isinstance(shown, str) else repr(value)


def _renderer(json_lines: bool, colors: bool) -> Processor:
    if json_lines:
        return structlog.processors.JSONRenderer(sort_keys=False, default=_json_default)
    # Frame locals stay out of tracebacks: they hold tokens, URLs with passwords, rows.
    return structlog.dev.ConsoleRenderer(
        colors=colors,
        exception_formatter=structlog.dev.RichTracebackFormatter(
            color_system="truecolor" if colors else None, show_locals=False
        ),
    )


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send structlog and stdlib logging to ``stream`` (stderr by default).

    ``fmt`` is ``json`` (one JSON object per line), ``console`` (readable,
    coloured on a terminal) or ``auto`` (console on a terminal, JSON
    otherwise, which is what a container log collector wants). Calling it again
    replaces the previous configuration. Raises ValueError on an unknown level
    or format, naming the accepted values.
    """
    level_no = LEVELS.get(level.lower())
    if level_no is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {list(FORMATS)}")
    tty = _is_tty(sys.stderr if stream is None else stream)
    json_lines = fmt == "json" or (fmt == "auto" and not tty)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _times_in_iso,
    ]
    if json_lines:
        # Tracebacks as structured data, one line per event even when it failed;
        # without frame locals, which hold tokens, URLs with passwords, rows.
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        shared.append(structlog.processors.ExceptionRenderer(transformer))
        shared.append(_leading_keys_first)
    # The console renderer formats exc_info itself (and warns if it was pre-formatted).
    renderer = _renderer(json_lines, colors=tty)

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(
            file=_CurrentStderr() if stream is None else stream  # type: ignore[arg-type]
        ),
        # Not cached: module-level loggers must follow a later configure_logging
        # call (tests, or the CLI reconfiguring after reading settings).
        cache_logger_on_first_use=False,
    )
    _route_stdlib(stream, level_no, shared, renderer)


def _route_stdlib(
    out: TextIO | None, level_no: int, shared: list[Processor], renderer: Processor
) -> None:
    handler = _JarvisHandler(_CurrentStderr() if out is None else out)  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    # Replace only our own handler: pytest's capture handlers and any an
    # embedding application installed stay where they are.
    for old in [h for h in root.handlers if isinstance(h, _JarvisHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(_FOREIGN_LEVEL)
    # Stdlib loggers under our own package follow the configured level.
    logging.getLogger("jarvis").setLevel(level_no)
