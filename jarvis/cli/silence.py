"""`jarvis silence add|list|expire` (mute notifications for a resource glob or a cause)
and `jarvis notifications list` (the outbox: what was sent, is retrying, or failed).

Each command opens only the store, so it works beside a running daemon. The
silence commands record an event (`silence.added`, `silence.expired`) that the
daemon's notifier reads by cursor and applies at its next round.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Annotated

import typer

from jarvis.cli.common import (
    EXIT_CONFIG,
    JsonOpt,
    check_reason,
    command_group,
    console,
    err_console,
    fail,
    operator_name,
    print_json_lines,
    print_table,
    printable,
    run,
    settings_from,
    shown,
)

if TYPE_CHECKING:
    # Imported by the commands that use them: `jarvis --help` must not load the
    # store, the settings or the notifier.
    from jarvis.config import Settings
    from jarvis.notify.groups import Silence
    from jarvis.store.outbox import NotificationRow

silence_app = command_group("Mute notifications for a while.")


def _silence_kinds() -> list[str]:
    from jarvis.model import EventKind

    return [EventKind.SILENCE_ADDED.value, EventKind.SILENCE_EXPIRED.value]


@silence_app.command("add")
def silence_add(
    ctx: typer.Context,
    match: Annotated[
        str, typer.Option("--match", "-m", help="Resource glob or cause, e.g. 'sim://ai-dawg-*'.")
    ],
    duration: Annotated[str, typer.Option("--for", help="How long: 90s, 30m, 2h, 1d, 1w.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded with the silence.")],
) -> None:
    """Mute alerts whose resource or cause matches, until the time runs out."""
    from jarvis.app import open_store
    from jarvis.loop.clock import WallClock
    from jarvis.notify.groups import Silence
    from jarvis.notify.silences import added_event, parse_duration

    try:
        length = parse_duration(duration)
    except ValueError as exc:
        fail(f"--for: {exc}", EXIT_CONFIG)
    if not match.strip() or not reason.strip():
        fail("--match and --reason must not be empty", EXIT_CONFIG)
    check_reason(reason)
    settings = settings_from(ctx)
    from jarvis.providers import uri_glob_warning

    # What `jarvis config check` says of a route's glob: the silence still mutes what it matches.
    warning = uri_glob_warning("silence --match", match)
    if warning is not None:
        err_console.print(f"[yellow]warning:[/] {shown(warning)}", highlight=False, soft_wrap=True)
    now = WallClock().now()
    silence = Silence(id=secrets.token_hex(4), match=match, until=now + length, reason=reason)

    async def main() -> None:
        store = await open_store(settings)
        try:
            store.append([added_event(silence, operator_name(), now)])
            await store.flush()
        finally:
            await store.aclose()

    run(main)
    console.print(
        f"silence {silence.id} on {printable(match)} until {silence.until:%Y-%m-%d %H:%M:%S} UTC",
        highlight=False,
        markup=False,
    )


@silence_app.command("list")
def silence_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The silences in force now."""
    settings = settings_from(ctx, as_json=as_json)
    silences = run(lambda: _active(settings), as_json=as_json)
    if as_json:
        print_json_lines(
            {"id": s.id, "match": s.match, "until": s.until, "reason": s.reason} for s in silences
        )
        return
    from rich.table import Table

    table = Table("id", "match", "until (UTC)", "reason")
    for s in silences:
        table.add_row(shown(s.id), shown(s.match), f"{s.until:%Y-%m-%d %H:%M:%S}", shown(s.reason))
    print_table(table)


@silence_app.command("expire")
def silence_expire(
    ctx: typer.Context,
    silence_id: Annotated[str, typer.Argument(help="The id `jarvis silence list` shows.")],
) -> None:
    """End a silence now."""
    from jarvis.app import open_store
    from jarvis.loop.clock import WallClock
    from jarvis.notify.silences import active_silences, expired_event

    settings = settings_from(ctx)

    async def main() -> bool:
        store = await open_store(settings)
        try:
            events = await store.events(limit=10_000, kinds=_silence_kinds())
            now = WallClock().now()
            if silence_id not in {s.id for s in active_silences(events, now)}:
                return False
            store.append([expired_event(silence_id, operator_name(), now)])
            await store.flush()
            return True
        finally:
            await store.aclose()

    if not run(main):
        fail(f"no active silence {silence_id!r}; see `jarvis silence list`", EXIT_CONFIG)
    console.print(f"silence {silence_id} expired", highlight=False, markup=False)


async def _active(settings: Settings) -> list[Silence]:
    from jarvis.app import open_store
    from jarvis.loop.clock import WallClock
    from jarvis.notify.silences import active_silences

    store = await open_store(settings, read_only=True)
    try:
        events = await store.events(limit=10_000, kinds=_silence_kinds())
        return active_silences(events, WallClock().now())
    finally:
        await store.aclose()


# -- the outbox ----------------------------------------------------------------

notifications_app = command_group("The notification outbox.")


@notifications_app.command("list")
def notifications_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, sent or failed (default: all).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="The newest N.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """What the notifier sent, is retrying, or gave up on, newest last."""
    if status is not None and status not in {"pending", "sent", "failed"}:
        fail(
            f"--status: {status!r} is not one of pending, sent, failed",
            EXIT_CONFIG,
            as_json=as_json,
        )
    from jarvis.app import open_store
    from jarvis.store.outbox import Outbox

    settings = settings_from(ctx, as_json=as_json)

    async def main() -> list[NotificationRow]:
        store = await open_store(settings, read_only=True)
        try:
            return (await Outbox(store.engine).rows(status))[-limit:]
        finally:
            await store.aclose()

    rows = run(main, as_json=as_json)
    if as_json:
        print_json_lines(
            {
                "id": r.id,
                "channel": r.channel,
                "incident": r.incident,
                "action": r.action,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "sent_at": r.sent_at,
            }
            for r in rows
        )
        return
    from rich.table import Table

    table = Table("id", "channel", "action", "status", "attempts", "incident", "last error")
    for r in rows:
        table.add_row(
            str(r.id),
            *(shown(text) for text in (r.channel, r.action, r.status)),
            str(r.attempts),
            shown(r.incident),
            shown(r.last_error),
        )
    print_table(table)
