"""`jarvis status`: who leads the loop, under which epoch, until when, and which
replicas are alive (their last heartbeat).

On PostgreSQL it reads the lease and heartbeat tables (`jarvis.store.lease`)
and judges times on the database's clock, the same clock the lease expires
on. With shards it counts every configured shard (``loop.shards``), those no
replica ever leased included. On SQLite there is one node: it says whether a
daemon holds the database (`jarvis.store.nodelock`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from jarvis.cli.common import (
    JsonOpt,
    console,
    escape,
    print_json_lines,
    run,
    settings_from,
    shown,
)

if TYPE_CHECKING:
    from pathlib import Path

    from jarvis.store.lease import LeaseRow, LeaseStatus


def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the leader (or each shard's holder), epoch and lease expiry, and each replica."""
    from jarvis.app import open_store
    from jarvis.store.lease import lease_status
    from jarvis.store.nodelock import sqlite_path

    settings = settings_from(ctx, as_json=as_json)
    path = sqlite_path(settings.database_url)
    if path is not None or not settings.database_url.startswith("postgresql"):
        report = single_node_json(path)
        if as_json:
            print_json_lines([report])
        else:
            line = f"SQLite, one node: {single_node_line(report)}"
            console.print(escape(line), highlight=False, soft_wrap=True)
        return

    async def main() -> LeaseStatus:
        store = await open_store(settings, read_only=True)
        try:
            return await lease_status(store.engine)
        finally:
            await store.aclose()

    found = run(main, as_json=as_json)
    report = status_json(found, settings.lease.duration, settings.loop.shards)
    if as_json:
        print_json_lines([report])
        return
    print_status(report)


def single_node_json(path: Path | None) -> dict[str, Any]:
    """Whether a daemon holds the SQLite file at ``path`` (None: an in-memory database).

    ``daemon_pid`` is its pid (-1: held, pid unreadable) or None; ``lock_error`` says
    why the ``.lock`` could not be read (another user's file, a directory in its
    place), when it could not: then nobody knows from here whether a daemon runs.
    ``database_error`` says why the file cannot be opened from here at all (a
    symlink loop on its path), which no daemon could either.
    """
    from jarvis.store.errors import unopenable
    from jarvis.store.nodelock import NodeLock, UnreadableLockError

    report: dict[str, Any] = {
        "backend": "sqlite",
        "single_node": True,
        "daemon_pid": None,
        "lock_error": None,
        "database_error": None,
    }
    if path is None:
        return report
    trouble = unopenable(path)
    if trouble is not None:
        report["database_error"] = str(trouble)
    lock = NodeLock(path)
    try:
        report["daemon_pid"] = lock.holder()
    except UnreadableLockError as exc:
        report["lock_error"] = str(exc)
    return report


def single_node_line(report: dict[str, Any]) -> str:
    pid = report["daemon_pid"]
    if report["lock_error"] is not None:
        return f"lock holder unknown: {report['lock_error']}"
    if pid is None:
        trouble = report.get("database_error")
        return "no daemon holds it" + (f"; {trouble}" if trouble else "")
    return f"a daemon runs (pid {pid if pid > 0 else 'unknown'})"


def status_json(found: LeaseStatus, lease_seconds: float, shards: int = 1) -> dict[str, Any]:
    """The status as one JSON object; a replica is ``alive`` if it beat within a lease.

    With shards, ``shards`` lists every one of the ``shards`` configured
    (``loop.shards``; when this shell's configuration names none, the count the
    leases were taken under), its lease's holder while unexpired, epoch and
    expiry, or all None for a shard no replica has ever leased, then any other
    shard lease row (``configured`` False: left by a larger count);
    ``unheld_shards`` names the configured ones nobody holds. Each replica names
    the shards it holds; ``leader`` then stays None, as no replica holds the
    unsharded loop lease.
    """
    from jarvis.store.lease import SHARD_PREFIX

    lease = found.lease
    leading = lease is not None and lease.expires_at > found.now
    count = shards if shards > 1 else max((row.shards or 0 for row in found.shards), default=0)
    rows = {row.name: row for row in found.shards}
    names = [f"{SHARD_PREFIX}{index}" for index in range(count)]
    listed = [_shard(found.now, name, rows.get(name), configured=True) for name in names]
    configured = set(names)
    others = [row for row in found.shards if row.name not in configured]
    listed += [_shard(found.now, row.name, row, configured=False) for row in others]
    return {
        "backend": "postgresql",
        "now": found.now,
        "leader": lease.holder if lease is not None and leading else None,
        "epoch": None if lease is None else lease.epoch,
        "last_holder": None if lease is None else lease.holder,
        "lease_expires_at": None if lease is None else lease.expires_at,
        "lease_expires_in_seconds": None if lease is None else _age(found.now, lease.expires_at),
        "replicas": [
            {
                "replica": r.replica_id,
                "host": r.host,
                "pid": r.pid,
                "started_at": r.started_at,
                "heartbeat_at": r.heartbeat_at,
                "heartbeat_age_seconds": _age(r.heartbeat_at, found.now),
                "alive": _age(r.heartbeat_at, found.now) <= lease_seconds,
                "leader_epoch": r.leader_epoch,
                "shards": [s["shard"] for s in listed if s["holder"] == r.replica_id],
            }
            for r in found.replicas
        ],
        "shards": listed,
        "shard_count": count,
        "unheld_shards": [s["shard"] for s in listed if s["configured"] and s["holder"] is None],
    }


def _shard(now: datetime, name: str, row: LeaseRow | None, *, configured: bool) -> dict[str, Any]:
    """One shard's lease for the report; every field None but its name when never leased."""
    return {
        "shard": name,
        "configured": configured,
        "holder": None if row is None or row.expires_at <= now else row.holder,
        "last_holder": None if row is None else row.holder,
        "epoch": None if row is None else row.epoch,
        "lease_expires_at": None if row is None else row.expires_at,
        "lease_expires_in_seconds": None if row is None else _age(now, row.expires_at),
    }


def _age(earlier: datetime, later: datetime) -> float:
    return round((later - earlier).total_seconds(), 3)


def print_status(report: dict[str, Any]) -> None:
    # Replica ids, hosts and shard names are read from the shared database: shown, never markup.
    if report["shards"]:
        _print_shards(report)
    elif report["leader"] is not None:
        console.print(
            f"leader: {shown(report['leader'])}  epoch {report['epoch']}  "
            f"lease expires in {report['lease_expires_in_seconds']:.1f}s",
            highlight=False,
        )
    elif report["epoch"] is not None:
        console.print(
            f"leader: none (lease of {shown(report['last_holder'])}, epoch {report['epoch']}, "
            f"expired {-report['lease_expires_in_seconds']:.1f}s ago)",
            highlight=False,
        )
    else:
        console.print("leader: none (no replica has ever led)", highlight=False)
    for r in report["replicas"]:
        role = f"leader (epoch {r['leader_epoch']})" if r["leader_epoch"] else "follower"
        if report["shards"]:
            # Which ones is the shard list's to say; a count keeps the line short.
            role = f"holds {len(r['shards'])} of {report['shard_count']} shards"
        state = "alive" if r["alive"] else "silent"
        console.print(
            f"  {shown(r['replica'])}  {shown(r['host'])} pid {r['pid']}  {role}  "
            f"last heartbeat {r['heartbeat_age_seconds']:.1f}s ago ({state})",
            highlight=False,
        )


def _print_shards(report: dict[str, Any]) -> None:
    shards, unheld = report["shards"], report["unheld_shards"]
    count = report["shard_count"]
    named = f"; unheld: {', '.join(unheld)}" if unheld else ""
    console.print(f"shards: {count - len(unheld)} of {count} held{named}", highlight=False)
    for s in shards:
        beyond = "" if s["configured"] else f"  (not one of the {count} configured)"
        if s["epoch"] is None:
            console.print(f"  {shown(s['shard'])}  free (never leased)", highlight=False)
            continue
        if s["holder"] is not None:
            state = f"{shown(s['holder'])}  lease expires in {s['lease_expires_in_seconds']:.1f}s"
        else:
            state = (
                f"free (lease of {shown(s['last_holder'])} expired "
                f"{-s['lease_expires_in_seconds']:.1f}s ago)"
            )
        console.print(
            f"  {shown(s['shard'])}  epoch {s['epoch']}  {state}{beyond}", highlight=False
        )
