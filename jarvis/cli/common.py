"""What every CLI command shares: loading settings, opening the app, turning
failures into one clear line and an exit status, and printing JSON lines.

Settings, the store and logging are imported inside the functions that use
them: `jarvis --help` loads the command modules only to describe them, and an
operator in a hurry should not wait for pydantic or SQLAlchemy to print help
(tests/cli/test_import_cost.py holds every CLI module to that).
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar, cast

import typer

from jarvis.cli import heap

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from jarvis.config import Settings
    from jarvis.model import Event
    from jarvis.store import EventStore

T = TypeVar("T")

# One convention for every command (README, "Exit statuses"); an operator's script may
# retry on 1 and should stop and call a human on 2.
EXIT_FAILED = 1
"""It ran and failed, or what it needs did not answer now (a database away, a lock held
past the wait, the guard or a provider said no): the same command may work later."""
EXIT_CONFIG = 2
"""It cannot run here as given: its arguments, the configuration, or the environment
refuses it for good (a privilege, a read-only database or mount, a file in the way, no
database there, a schema to migrate, another Jarvis acting). Run unchanged, it fails
the same way until someone fixes that (`jarvis.store.errors.is_lasting`)."""
EXIT_VIOLATION = 3
"""`jarvis simulate` only: a safety invariant was violated."""


class _Console:
    """A rich `Console`, made on first use: `--help` (click's) and `--json` never load rich."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._made: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._made is None:
            from rich.console import Console

            self._made = Console(stderr=self._stderr)
        return getattr(self._made, name)


err_console = cast("Console", _Console(stderr=True))
console = cast("Console", _Console())

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


def command_group(help_text: str, **options: Any) -> typer.Typer:
    """A `jarvis` command or group of commands, with plain (click) help.

    Rich help would import rich's Markdown renderer and markdown-it on every
    `--help`, a third of its start-up; the tables the commands print still use rich.
    """
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, **options)


@dataclass
class State:
    config_path: str | None = None


def settings_from(ctx: typer.Context, *, as_json: bool = False, **overrides: Any) -> Settings:
    """Settings for this invocation, or exit 2 naming the offending key (``as_json``: said
    in the command's one JSON object too, `fail`)."""
    from jarvis.config import ConfigError, load_settings
    from jarvis.providers import check_allowlist
    from jarvis.telemetry.logging import configure_logging

    state = ctx.obj if isinstance(ctx.obj, State) else State()
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = load_settings(state.config_path, **clean)
        check_allowlist(settings)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG, as_json=as_json)
    # Logs go to stderr, so `--json` output on stdout stays machine-readable.
    configure_logging(settings.log_level, settings.log_format)
    return settings


def operator_name() -> str:
    """Who is at the keyboard, as recorded with what they do: ``cli:USER``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def print_table(table: Table, target: Console | None = None) -> None:
    """Print ``table`` without ever cutting a cell short.

    Rich fits a table to the terminal, or to 80 columns in a pipe, and cuts
    what does not fit with an ellipsis: ``sim://ai-daw…`` hides which
    resource a row is about. Every column folds instead of cutting, and off a
    terminal the table gets the width it needs, so ``grep`` finds whole names.
    """
    out = target or console
    for column in table.columns:
        column.overflow = "fold"
    if out.is_terminal:
        out.print(table)
        return
    needed = out.measure(table, options=out.options.update_width(100_000)).maximum
    from rich.console import Console

    wide = Console(width=max(out.width, needed), file=out.file)
    wide.print(table)


def escape(text: str) -> str:
    """``text`` as it must go into a string printed with markup: outside text (a path, a
    URI, a stored reason) read as markup lost its ``[...]`` or raised a MarkupError."""
    from rich.markup import escape as escape_markup

    return escape_markup(text)


def printable(text: str) -> str:
    """``text`` with each control or bidi character shown as its escape (``\\x1b``, ``\\u202e``).

    Stored text came from outside (a provider's error, an operator's reason); printed
    raw, an escape sequence in it retitled or cleared the operator's terminal, a
    newline forged a line of `jarvis events`, and U+202E showed the rest of a line
    reversed. The daily report renders by the same rule (`jarvis.text`).
    """
    from jarvis.text import inert

    return inert(text)


def shown(text: str) -> str:
    """Stored text for a string printed with markup: `printable`, then `escape`d."""
    return escape(printable(text))


def nothing_recorded(settings: Settings, then: str) -> EventStore | None:
    """An empty in-memory store standing in for a SQLite database that does not exist, after
    one ``note:`` line on stderr saying so and ``then`` what the command does; None when the
    database is there (or is not SQLite). For the readers that still have an answer without
    it (`plan`, a kill switch held in Redis), where the others refuse (`jarvis.app.open_store`).
    """
    from jarvis.app import absent_database, no_database

    absent = absent_database(settings)
    if absent is None:
        return None
    from jarvis.store import EventStore, MemoryBackend

    err_console.print(
        f"note: {escape(no_database(absent))}. {then}", highlight=False, soft_wrap=True
    )
    return EventStore(MemoryBackend(), read_only=True)


def fail(message: str, code: int, *, as_json: bool = False) -> NoReturn:
    """Exit ``code`` with ``message`` as the one ``error:`` line on stderr; ``as_json``, for a
    command whose `--json` output has not been printed yet, prints it first on stdout as
    that output's one object, ``{"error": message}``, so a script always has one to read.
    Every command taking `--json` passes it to this, `settings_from` and `run`; output of
    one object per line that has begun (`events --follow`) ends with that object."""
    if as_json:
        print_json_lines([{"error": message}])
    # A message names what the operator typed or pasted (a resource name copied from
    # `retries list --json`): its escape sequences are shown, its line breaks kept.
    text = "\n".join(shown(line) for line in message.split("\n"))
    err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def check_reason(reason: str | None, *, as_json: bool = False) -> None:
    """Exit 2 with one line, before the command changes anything, when ``reason`` is longer
    than any surface records (`jarvis.model.MAX_REASON_CHARS`: the admin API and the status
    page refuse it too)."""
    from jarvis.model import reason_too_long

    too_long = None if reason is None else reason_too_long(reason)
    if reason is not None and too_long is not None:
        fail(f"--{too_long} (this one has {len(reason)})", EXIT_CONFIG, as_json=as_json)


def run(main: Callable[[], Awaitable[T]], *, as_json: bool = False) -> T:
    """Run an async command body, mapping known failures to exit statuses (``as_json``: each
    said in the command's one JSON object too, `fail`): any error of the database in one
    line, a bug with its traceback."""
    import anyio

    from jarvis.cli.oneshot import TickCutError
    from jarvis.config import ConfigError
    from jarvis.store import StoreError
    from jarvis.store.errors import describe, from_database, is_lasting, is_operational

    async def body() -> T:
        try:
            return await main()
        finally:
            await _settle_strays()

    heap.settle()
    try:
        return anyio.run(body)
    except StoreError as exc:
        fail(str(exc), EXIT_CONFIG if is_lasting(exc) else EXIT_FAILED, as_json=as_json)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG, as_json=as_json)
    except TickCutError as exc:
        fail(str(exc), EXIT_FAILED, as_json=as_json)
    except Exception as exc:
        if not from_database(exc):
            raise  # a bug: its traceback
        # An error of the database the store raised as it is, being no outage
        # (`is_operational`): a table gone under a current revision, after an older dump was
        # restored. It answered and refused, and will until someone mends it.
        refused = is_lasting(exc) or not is_operational(exc)
        said = f"the database {'refused' if refused else 'did not answer'}: {describe(exc)}"
        fail(said, EXIT_CONFIG if refused else EXIT_FAILED, as_json=as_json)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json_lines(objects: Iterable[Mapping[str, Any]]) -> None:
    for obj in objects:
        sys.stdout.write(json.dumps(to_jsonable(obj), sort_keys=True) + "\n")
    sys.stdout.flush()


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "ts": event.ts,
        "tick_id": event.tick_id,
        "kind": event.kind.value,
        "resource": event.resource,
        "action_kind": event.action_kind,
        "policy": event.policy,
        "reason": event.reason,
        "action_id": event.action_id,
        "payload": dict(event.payload),
    }


async def _settle_strays(grace: float = 2.0, rounds: int = 5) -> None:
    """Let tasks left outside any task group finish, cancelling them until they do.

    asyncio.run cancels leftover tasks once and then waits for them without
    limit. SQLAlchemy closes a connection cancelled mid-query in a task of its
    own, and aiosqlite's ``close()`` awaits again in its ``finally``: cancelled
    once, that task never finishes, and the process hung at exit after the
    daemon had logged "jarvis stopped". Each stray gets ``grace`` seconds to
    end by itself (a close in progress completes), then is cancelled again, a
    few times over, until it ends.
    """
    import asyncio

    await _join_sqlite_threads(grace)
    current = asyncio.current_task()
    pending = {task for task in asyncio.all_tasks() if task is not current}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=grace)
    for _ in range(rounds):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    if pending:
        import structlog

        structlog.get_logger("jarvis").warning(
            "tasks still running at exit", tasks=sorted(repr(task)[:200] for task in pending)
        )


async def _join_sqlite_threads(grace: float) -> None:
    """Wait (at most ``grace`` seconds) for aiosqlite's connection threads to end.

    After a failed connect aiosqlite stops its thread with a future nobody
    awaits; if the loop closed first, the thread's answer found it closed and
    printed two tracebacks under the command's one-line error. Every store
    is closed by now, so each thread has been told to stop.
    """
    import threading
    import time

    import anyio

    threads = [
        thread
        for thread in threading.enumerate()
        if thread.name.endswith("(_connection_worker_thread)")
    ]
    if not threads:
        return

    def join() -> None:
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    await anyio.to_thread.run_sync(join)
