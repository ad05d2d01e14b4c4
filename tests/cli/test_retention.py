"""Retention from the operator's side: `jarvis db prune`, and the daemon pruning on its own."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from jarvis.model import Event, EventKind
from jarvis.store import EventStore
from tests.cli.conftest import Jarvis, jarvis_argv, jarvis_env


async def seed_old_ticks(tmp_path: Path, n: int = 5) -> None:
    """``n`` tick events from two months ago, and one from now (the newest always stays)."""
    long_ago = datetime.now(UTC) - timedelta(days=60)
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        store.append(
            [
                Event(
                    kind=EventKind.TICK_FINISHED,
                    ts=long_ago + timedelta(seconds=i),
                    idempotency_key=f"old-{i}",
                )
                for i in range(n)
            ]
            + [Event(kind=EventKind.TICK_FINISHED, ts=datetime.now(UTC), idempotency_key="now")]
        )
        await store.flush()
    finally:
        await store.aclose()


def tick_ids(jarvis: Jarvis) -> list[str]:
    result = jarvis("events", "--json", "--kind", "tick.finished", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    keys = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    return [str(k) for k in keys]


@pytest.mark.anyio
async def test_db_prune_dry_run_counts_and_prune_deletes(jarvis: Jarvis, tmp_path: Path) -> None:
    """`--dry-run` reports what would go and deletes nothing; without it, it goes."""
    await seed_old_ticks(tmp_path)
    before = tick_ids(jarvis)
    dry = jarvis("db", "prune", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"dry_run": True, "deleted": {"tick.finished": 5}}
    assert tick_ids(jarvis) == before
    real = jarvis("db", "prune")
    assert real.returncode == 0, real.stderr
    assert "deleted 5 event(s)" in real.stdout and "tick.finished: 5" in real.stdout
    assert len(tick_ids(jarvis)) == 1


@pytest.mark.timeout(240)
def test_the_daemon_prunes_on_its_own(tmp_path: Path) -> None:
    """With a short retention interval, the running daemon deletes old events and logs it."""
    anyio.run(seed_old_ticks, tmp_path)
    env = jarvis_env(tmp_path, JARVIS_RETENTION__INTERVAL="1")
    log = tmp_path / "daemon.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            jarvis_argv("run", "--interval", "0.5", "--http-port", "0"),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            until = time.monotonic() + 180
            while time.monotonic() < until and "events pruned" not in log.read_text():
                time.sleep(0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    pruned = [line for line in lines if line["event"] == "events pruned"]
    assert pruned, log.read_text()
    assert pruned[0]["by_kind"]["tick.finished"] >= 5
    assert process.returncode == 0


WEEKLY_RESTARTS = """
[[budgets]]
name = "weekly-restarts"
provider = "sim"
actions = ["restart"]
max = 5
window_seconds = 604800

[retention.kinds."action.started"]
max_age_days = 1
[retention.kinds."action.applied"]
max_age_days = 1
"""


@pytest.mark.anyio
async def test_db_prune_keeps_the_intents_a_disruption_budget_still_counts(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """A restart three days ago still counts against a weekly budget after a prune, though
    restarts are kept only a day: the budget's window is history the loop reads."""
    now = datetime.now(UTC)
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        for n, at in enumerate([now - timedelta(days=3), now - timedelta(minutes=5)]):
            store.append(
                [
                    Event(
                        kind,
                        at,
                        f"{kind.value}-{n}",
                        resource="sim://ai-dawg-vocal-coach",
                        action_kind="restart",
                        action_id=f"a-{n}",
                    )
                    for kind in (EventKind.ACTION_STARTED, EventKind.ACTION_APPLIED)
                ]
            )
        await store.flush()
    finally:
        await store.aclose()
    config = tmp_path / "jarvis.toml"
    config.write_text(WEEKLY_RESTARTS, encoding="utf-8")

    def used() -> int:
        listed = jarvis("--config", str(config), "budgets", "--json")
        assert listed.returncode == 0, listed.stderr
        (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
        return int(row["used"])

    assert used() == 2
    pruned = jarvis("--config", str(config), "db", "prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert used() == 2


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("[retention]\nmax_count = {n}\n", "retention.max_count"),
        ('[retention.kinds."tick.finished"]\nmax_count = {n}\n', "retention.kinds.tick.finished"),
    ],
)
def test_a_max_count_the_database_cannot_hold_is_refused_naming_it(
    jarvis: Jarvis, tmp_path: Path, section: str, key: str
) -> None:
    """The database's largest integer is the most "keep everything" can say: one more is a
    configuration error, not an OverflowError at the first prune."""
    anyio.run(seed_old_ticks, tmp_path)
    (tmp_path / "ok.toml").write_text(section.format(n=2**63 - 1))
    kept = jarvis("--config", "ok.toml", "db", "prune", "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["deleted"].get("tick.finished", 0) == 5  # by age
    (tmp_path / "big.toml").write_text(section.format(n=2**63))
    refused = jarvis("--config", "big.toml", "db", "prune")
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    assert key in refused.stderr
