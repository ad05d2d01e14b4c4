"""`jarvis status`: who leads the loop, under which epoch, until when, and which
replicas are alive (their last heartbeat).

On PostgreSQL it reads the lease and heartbeat tables (`jarvis.store.lease`)
and judges times on the database's clock, the same clock the lease expires
on. On SQLite there is one node: it says whether a daemon holds the database
(`jarvis.store.nodelock`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from jarvis.cli.common import JsonOpt, console, print_json_lines, run, settings_from, shown

if TYPE_CHECKING:
    from jarvis.store.lease import LeaseStatus


def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the leader (or each shard's holder), epoch and lease expiry, and each replica."""
    from jarvis.app import open_store
    from jarvis.store.lease import lease_status
    from jarvis.store.nodelock import NodeLock, sqlite_path

    settings = settings_from(ctx)
    path = sqlite_path(settings.database_url)
    if path is not None or not settings.database_url.startswith("postgresql"):
        pid = None if path is None else NodeLock(path).holder()
        report: dict[str, Any] = {"backend": "sqlite", "single_node": True, "daemon_pid": pid}
        if as_json:
            print_json_lines([report])
        else:
            running = f"a daemon runs (pid {pid})" if pid else "no daemon holds it"
            console.print(f"SQLite, one node: {running}", highlight=False)
        return

    async def main() -> LeaseStatus:
        store = await open_store(settings, spool=False)
        try:
            return await lease_status(store.engine)
        finally:
            await store.aclose()

    found = run(main)
    report = status_json(found, settings.lease.duration)
    if as_json:
        print_json_lines([report])
        return
    print_status(report)


def status_json(found: LeaseStatus, lease_seconds: float) -> dict[str, Any]:
    """The status as one JSON object; a replica is ``alive`` if it beat within a lease.

    With shards, ``shards`` lists each shard lease (holder while unexpired,
    epoch, expiry) and each replica names the shards it holds; ``leader`` then
    stays None, as no replica holds the unsharded loop lease.
    """
    lease = found.lease
    leading = lease is not None and lease.expires_at > found.now
    shards = [
        {
            "shard": row.name,
            "holder": row.holder if row.expires_at > found.now else None,
            "last_holder": row.holder,
            "epoch": row.epoch,
            "lease_expires_at": row.expires_at,
            "lease_expires_in_seconds": _age(found.now, row.expires_at),
        }
        for row in found.shards
    ]
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
                "shards": [s["shard"] for s in shards if s["holder"] == r.replica_id],
            }
            for r in found.replicas
        ],
        "shards": shards,
    }


def _age(earlier: datetime, later: datetime) -> float:
    return round((later - earlier).total_seconds(), 3)


def print_status(report: dict[str, Any]) -> None:
    # Replica ids, hosts and shard names are read from the shared database: shown, never markup.
    if report["shards"]:
        _print_shards(report["shards"])
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
            role = f"holds {len(r['shards'])} of {len(report['shards'])} shards"
        state = "alive" if r["alive"] else "silent"
        console.print(
            f"  {shown(r['replica'])}  {shown(r['host'])} pid {r['pid']}  {role}  "
            f"last heartbeat {r['heartbeat_age_seconds']:.1f}s ago ({state})",
            highlight=False,
        )


def _print_shards(shards: list[dict[str, Any]]) -> None:
    held = sum(1 for s in shards if s["holder"] is not None)
    console.print(f"shards: {held} of {len(shards)} held", highlight=False)
    for s in shards:
        if s["holder"] is not None:
            state = f"{shown(s['holder'])}  lease expires in {s['lease_expires_in_seconds']:.1f}s"
        else:
            state = (
                f"free (lease of {shown(s['last_holder'])} expired "
                f"{-s['lease_expires_in_seconds']:.1f}s ago)"
            )
        console.print(f"  {shown(s['shard'])}  epoch {s['epoch']}  {state}", highlight=False)
