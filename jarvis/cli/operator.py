"""The operator's safety state: `killswitch engage|release|status`, `retries list|reset`.

They open only the store and the kill-switch backend, never the providers, so
they work beside a running daemon and while a cloud API is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jarvis.cli.common import (
    EXIT_CONFIG,
    JsonOpt,
    check_reason,
    command_group,
    console,
    fail,
    nothing_recorded,
    operator_name,
    print_json_lines,
    print_table,
    run,
    settings_from,
    shown,
)

if TYPE_CHECKING:
    from jarvis.config import Settings
    from jarvis.model import Event, KillSwitchState
    from jarvis.store import StoreError

killswitch_app = command_group("Engage, release or inspect the kill switch.")
retries_app = command_group("The retry ledger and quarantined resources.")


# -- kill switch ---------------------------------------------------------------


async def _with_killswitch(
    settings: Settings, body: Any, *, read_only: bool = False, flipping: str | None = None
) -> Any:
    """``body`` run on the kill switch of ``settings``; ``flipping`` (the verb) when it
    flips the switch, whose one-line error then says nothing was written when the store
    cannot even open."""
    from jarvis.app import killswitch_backend, open_store
    from jarvis.loop.clock import WallClock
    from jarvis.loop.killswitch import KillSwitch
    from jarvis.store import StoreError

    # With the switch in Redis its state is there to read; only its history would be
    # in the database, and a reader creates none (`open_store`).
    empty = None
    if read_only and settings.redis_url:
        empty = nothing_recorded(settings, "Read from Redis alone")
    try:
        store = empty if empty is not None else await open_store(settings, read_only=read_only)
    except StoreError as exc:
        if flipping is None:
            raise
        raise _not_flipped(flipping, exc) from exc
    backend = killswitch_backend(settings, store)
    try:
        return await body(KillSwitch(backend, store, WallClock()))
    finally:
        await backend.aclose()
        await store.aclose()


@dataclass(frozen=True, slots=True)
class _Flipped:
    """The state a flip wrote, and where its event waits when not in the database yet."""

    state: KillSwitchState
    spooled: Path | None = None
    """The spool file its event waits in; None: in the database, or `left_to`."""
    left_to: Path | None = None
    """The spool file of the running Jarvis its event is left to: that Jarvis owns the
    file, and records each flip it reads from the switch (`KillSwitch.read`)."""


async def _flip(settings: Settings, *, engaged: bool, actor: str, reason: str) -> _Flipped:
    """Flip the switch straight through the driver, or through the store when that cannot.

    The direct write (`jarvis.store.direct`) loads no SQLAlchemy ORM: an
    engage in a hurry waits only for its one transaction. Both paths write
    the same state and event, made once here. With the switch in Redis, the
    two writes go in `write_in_order`'s order, as `KillSwitch.record`'s do,
    and an engage's event may only reach the spool file: the result says so.
    """
    from jarvis.loop.clock import WallClock
    from jarvis.loop.killswitch import flip
    from jarvis.store.direct import write_flip
    from jarvis.store.redact import Redactor
    from jarvis.store.storable import safe_event

    redactor = Redactor(settings.secrets)
    state, event = flip(
        engaged=engaged, actor=actor, reason=reason, now=WallClock().now(), redactor=redactor
    )
    stored = safe_event(redactor.event(event))
    redis_url = settings.redis_url
    if redis_url:
        from jarvis.loop.killswitch import restatement, write_in_order
        from jarvis.store.redis_killswitch import RedisKillSwitch

        waiting: list[_Waiting] = []

        async def record_event(*, journal: bool) -> None:
            where = await _record_event(settings, stored, journal=journal)
            waiting.extend([] if where is None else [where])

        async def restate(current: KillSwitchState) -> None:
            again = restatement(current, now=WallClock().now(), redactor=redactor)
            await _record_event(settings, safe_event(redactor.event(again)), journal=True)

        switch = RedisKillSwitch(redis_url)
        try:
            await write_in_order(state, switch, record_event, restate)
        finally:
            await switch.aclose()
        where = next(iter(waiting), None)
        if isinstance(where, _LeftTo):
            return _Flipped(state, left_to=where.spool)
        return _Flipped(state, where)
    written = await write_flip(settings.database_url, stored, state)
    if written.busy is not None:
        raise _kept_waiting(settings, "engage" if engaged else "release", written.busy)
    if written.for_the_store:
        await _with_killswitch(
            settings,
            lambda ks: ks.record(state, stored),
            flipping="engage" if engaged else "release",
        )
    return _Flipped(state)


def _not_flipped(verb: str, exc: StoreError) -> StoreError:
    """The store that holds the switch did not open: the flip is neither in force nor on
    record, and an engage the database's outage refused says what a running Jarvis does
    meanwhile."""
    from jarvis.store import StoreError
    from jarvis.store.errors import is_lasting

    then = ""
    if verb == "engage" and _away(exc):
        # A refusal (a symlink loop, a role without the grant) is no outage to wait out.
        again = "" if is_lasting(exc) else "; engage again once the database answers"
        then = f" (a Jarvis that cannot read the switch applies nothing{again})"
    return StoreError(f"cannot {verb} the kill switch: {exc}; nothing was written{then}")


def _kept_waiting(settings: Settings, verb: str, busy: str) -> Exception:
    """The one failure of a direct write a lock held until it gave up (`FlipWrite.busy`).

    The store's path is not tried after it: it would wait on the same lock as long
    again (11 s, not 5, on a locked SQLite file; 31 s, not 15, on locked PostgreSQL
    tables) and fail the same way.
    """
    from jarvis.cli.commands import masked_url
    from jarvis.store import StoreError

    where = masked_url(settings.database_url)
    return StoreError(f"cannot {verb} the kill switch in {where}: {busy}; nothing was written")


@dataclass(frozen=True, slots=True)
class _LeftTo:
    """A flip's event no spool took: a running Jarvis holds the spool file (`SpoolBusyError`),
    and records the flip itself when it reads the switch."""

    spool: Path


_Waiting = Path | _LeftTo
"""Where a flip's event waits for the database: a spool file, or a running Jarvis."""


async def _record_event(settings: Settings, event: Event, *, journal: bool) -> _Waiting | None:
    """Record a flip's event straight through the driver, or through the store, which
    spools it if the database is away unless ``journal`` is False (StoreError then);
    a database that does not answer even to open the store, the spool file alone takes
    it (`_spool_alone`), or the running Jarvis that holds that file.
    After a direct write a lock kept waiting, the event is spooled without a second
    wait, or (``journal`` False) the failure is raised at once. Returns where the
    event waits, None when the database has it."""
    from jarvis.app import open_store
    from jarvis.store import StoreError
    from jarvis.store.direct import write_flip

    written = await write_flip(settings.database_url, event, None)
    if written.written:
        return None
    if written.busy is not None and not journal:
        raise _kept_waiting(settings, "record", written.busy)
    try:
        # The flip is made (in Redis) whatever the database does: on a file this process
        # cannot write, its event is spooled rather than refused (`open_store`).
        store = await open_store(settings, refuse_unwritable=False)
    except StoreError as exc:
        if not journal or not _away(exc):
            raise
        return await _spool_alone(settings, event, exc)
    # Opened without its spool only when another process holds it (`SpoolBusyError`).
    left_to = _LeftTo(settings.spool_path.absolute()) if journal and not store.journals else None
    try:
        store.append([event])
        if written.busy is None:
            try:
                if not (await store.flush(journal=journal)).spooled:
                    return None
            except StoreError:
                if left_to is None:
                    raise
                return left_to
        elif left_to is not None:
            return left_to
        elif not await store.park():
            raise _kept_waiting(settings, "record", f"{written.busy}; no spool took it either")
    finally:
        await store.aclose()
    return settings.spool_path.absolute()


def _away(exc: StoreError) -> bool:
    """Whether the store could not open because the database did not answer (an outage
    to spool through), not because of what it holds (a schema behind or ahead)."""
    from jarvis.store import NotMigratedError
    from jarvis.store.errors import is_operational

    cause = exc.__cause__
    return not isinstance(exc, NotMigratedError) and cause is not None and is_operational(cause)


async def _spool_alone(settings: Settings, event: Event, away: StoreError) -> _Waiting:
    """Append ``event`` (redacted and storable already) to the spool file without a
    database; the next Jarvis that opens the store there and flushes (the daemon's
    first tick, `jarvis tick`) writes it, once, by its key. A running Jarvis that owns
    the file is left to record it: it records each flip it reads from the switch, by
    the same key, and spools that while the database is away. Raises ``away`` when the
    file cannot be written."""
    import anyio

    from jarvis.store import StoreError
    from jarvis.store.spool import Spool, SpoolBusyError

    try:
        spool = await anyio.to_thread.run_sync(Spool, settings.spool_path)
    except SpoolBusyError:
        return _LeftTo(settings.spool_path.absolute())
    except StoreError:
        raise away from None
    try:
        await anyio.to_thread.run_sync(spool.append, [event])
    except StoreError:
        raise away from None
    finally:
        spool.close()
    return settings.spool_path.absolute()


def _switch_json(state: KillSwitchState) -> dict[str, object]:
    """The switch as `--json` prints it, for `status` and for each flip."""
    return {
        "engaged": state.engaged,
        "actor": state.actor,
        "reason": state.reason,
        "changed_at": state.changed_at,
    }


def _print_flip(flipped: _Flipped, *, as_json: bool) -> None:
    """The flip as the operator reads it: one line (two when its event is not in the
    database yet), or one JSON object whose ``spooled`` names the spool file it waits in
    and ``left_to`` the spool of the running Jarvis that records it (both null: in the
    database)."""
    state = flipped.state
    if as_json:
        spooled = None if flipped.spooled is None else str(flipped.spooled)
        left_to = None if flipped.left_to is None else str(flipped.left_to)
        print_json_lines([{**_switch_json(state), "spooled": spooled, "left_to": left_to}])
        return
    if state.engaged:
        console.print(
            f"kill switch [bold red]ENGAGED[/] by {shown(state.actor)}: {shown(state.reason)}",
            highlight=False,
        )
    else:
        console.print(
            f"kill switch [bold green]released[/] by {shown(state.actor)}", highlight=False
        )
    if flipped.spooled is not None:
        console.print(
            f"its record is not in the database yet: spooled to {shown(str(flipped.spooled))},"
            " written there when Jarvis next reaches the database",
            highlight=False,
            soft_wrap=True,
        )
    if flipped.left_to is not None:
        console.print(
            "its record is not in the database yet: the Jarvis running with spool"
            f" {shown(str(flipped.left_to))} records it when it next reads the switch"
            " (unless another flip replaces it first)",
            highlight=False,
            soft_wrap=True,
        )


@killswitch_app.command("engage")
def killswitch_engage(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded with the flip.")],
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: your user).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop all actions now. Takes effect before the daemon's next apply."""
    if not reason.strip():
        fail("--reason must not be empty", EXIT_CONFIG, as_json=as_json)
    check_reason(reason, as_json=as_json)
    settings = settings_from(ctx, as_json=as_json)
    flipped = run(
        lambda: _flip(settings, engaged=True, actor=actor or operator_name(), reason=reason),
        as_json=as_json,
    )
    _print_flip(flipped, as_json=as_json)


@killswitch_app.command("release")
def killswitch_release(
    ctx: typer.Context,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; recorded with the flip.")
    ] = "released",
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: your user).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Let Jarvis act again."""
    check_reason(reason, as_json=as_json)
    settings = settings_from(ctx, as_json=as_json)
    flipped = run(
        lambda: _flip(settings, engaged=False, actor=actor or operator_name(), reason=reason),
        as_json=as_json,
    )
    _print_flip(flipped, as_json=as_json)


@killswitch_app.command("status")
def killswitch_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print whether the kill switch is engaged, by whom and why."""
    settings = settings_from(ctx, as_json=as_json)
    state = run(
        lambda: _with_killswitch(settings, lambda ks: ks.read(), read_only=True), as_json=as_json
    )
    if as_json:
        print_json_lines([_switch_json(state)])
        return
    if state.engaged:
        console.print(
            f"[bold red]ENGAGED[/] by {shown(state.actor)} at {state.changed_at}: "
            f"{shown(state.reason)}",
            highlight=False,
        )
    else:
        console.print(
            "[green]released[/]"
            + (f" by {shown(state.actor)} at {state.changed_at}" if state.actor else ""),
            highlight=False,
        )


# -- retries -------------------------------------------------------------------


@retries_app.command("list")
def retries_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the retry ledger: attempts, failures and quarantine per resource.

    A row that holds nothing (an attempt taken back, as when the kill switch
    withheld it) is left out: it is no attempt at all.
    """
    settings = settings_from(ctx, as_json=as_json)
    from jarvis.app import open_store

    async def main() -> list[dict[str, Any]]:
        store = await open_store(settings, read_only=True)
        try:
            ledger = await store.load_retries()
        finally:
            await store.aclose()
        return [
            {
                "resource": s.resource,
                "action_kind": s.action_kind,
                "attempts": list(s.attempts),
                "consecutive_failures": s.consecutive_failures,
                "retry_after": s.retry_after,
                "quarantined": s.quarantined,
                "last_error": s.last_error,
            }
            for _, s in sorted(ledger.items())
            if not s.empty
        ]

    rows = run(main, as_json=as_json)
    if as_json:
        print_json_lines(rows)
        return
    if not rows:
        console.print("no retries recorded")
        return
    from rich.table import Table

    table = Table("resource", "action", "attempts", "failures", "quarantined", "last error")
    for r in rows:
        table.add_row(
            shown(r["resource"]),
            shown(r["action_kind"]),
            str(len(r["attempts"])),
            str(r["consecutive_failures"]),
            "[bold red]yes[/]" if r["quarantined"] else "no",
            shown(r["last_error"]),
        )
    print_table(table)


@retries_app.command("reset")
def retries_reset(
    ctx: typer.Context,
    resource: Annotated[str, typer.Argument(help="Resource URI, e.g. sim://ai-dawg-ai-brain.")],
) -> None:
    """Clear a resource's retry ledger and lift its quarantine.

    A resource the ledger does not hold is an error (exit 2): a typo must not
    look like a reset that worked. So is one whose rows are all empty (what an
    attempt taken back leaves), which `retries list` does not show either.
    """
    from jarvis.model import ResourceRef

    try:
        ResourceRef.parse(resource)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    settings = settings_from(ctx)
    from jarvis.app import open_store
    from jarvis.loop.admin import reset_retries
    from jarvis.loop.clock import WallClock

    clock = WallClock()

    async def main() -> int:
        store = await open_store(settings)
        try:
            return await reset_retries(store, clock, resource, operator_name())
        finally:
            await store.aclose()

    count = run(main)
    if count == 0:
        fail(f"{resource} has no retry records (see `jarvis retries list`)", EXIT_CONFIG)
    console.print(f"reset {count} retry record(s) for {shown(resource)}", highlight=False)
