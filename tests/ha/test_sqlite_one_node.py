"""SQLite is one node: a second `jarvis run` on the same file refuses to start.

Before, it started and both acted on every resource (the HA issue measured 58
pairs acted on by two daemons within half a second).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.daemon import get, running, sample


@pytest.mark.timeout(300)  # a daemon and several CLI processes on a loaded machine
def test_a_second_daemon_on_one_sqlite_file_exits_2_with_one_line(tmp_path: Path) -> None:
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    with running(tmp_path, env, "--interval", "0.5") as first:
        _, text = get(f"{first.base}/metrics")
        assert sample(text, "jarvis_leader") == 1.0
        second = subprocess.run(
            jarvis_argv("run", "--http-port", "0"),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"another jarvis run (pid {first.process.pid})" in lines[0]
        assert "PostgreSQL" in lines[0]

        status = subprocess.run(
            jarvis_argv("status", "--json"),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["daemon_pid"] == first.process.pid
        first.stop()
    assert first.process.returncode == 0

    # Once the first has stopped, the file is free again.
    again = subprocess.run(
        jarvis_argv("run", "--ticks", "1", "--http-port", "0"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert again.returncode == 0, again.stderr


@pytest.mark.timeout(300)  # a daemon and several CLI processes on a loaded machine
def test_a_one_shot_that_acts_beside_a_sqlite_daemon_exits_2_and_applies_nothing(
    tmp_path: Path,
) -> None:
    """`jarvis tick` and the overrides act; beside a live daemon they would be a second actor.

    Before, on SQLite (no lease to take), `jarvis restart` beside `jarvis run`
    applied its restart while the daemon acted on the same fleet. A dry run
    and `jarvis plan` apply nothing and still work.
    """
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")

    def jarvis(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            jarvis_argv(*args),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    with running(tmp_path, env, "--interval", "0.5") as daemon:
        for argv in (("restart", "sim://customer-api", "--reason", "by hand"), ("tick",)):
            acted = jarvis(*argv)
            assert acted.returncode == 2, (argv, acted.stdout, acted.stderr)
            lines = acted.stderr.strip().splitlines()
            assert len(lines) == 1, acted.stderr
            assert f"another jarvis process (pid {daemon.process.pid})" in lines[0]
            assert "--dry-run" in lines[0]
        assert jarvis("restart", "sim://customer-api", "--dry-run").returncode == 0
        assert jarvis("plan").returncode == 0
        daemon.stop()
    assert daemon.process.returncode == 0

    events = jarvis("events", "--json", "--limit", "1000")
    assert events.returncode == 0, events.stderr
    applied = [
        json.loads(line)
        for line in events.stdout.splitlines()
        if '"action.applied"' in line and '"by hand"' in line
    ]
    assert applied == []

    # With the daemon gone, the operator's restart runs.
    assert jarvis("restart", "sim://customer-api").returncode == 0


@pytest.mark.timeout(300)  # two daemons on a loaded machine
@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_a_second_daemon_on_another_name_of_the_sqlite_file_exits_2(
    tmp_path: Path, link: str
) -> None:
    """A second `jarvis run` naming the daemon's SQLite file through a link is refused.

    Through a hard link the refusal cannot say who: the link's own ``.lock``
    names nobody, so the lock on the file itself is what refuses it.
    """
    (tmp_path / "data").mkdir()
    database = tmp_path / "data" / "jarvis.db"
    env = jarvis_env(
        tmp_path,
        JARVIS_HTTP__HOST="127.0.0.1",
        JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{database}",
    )
    with running(tmp_path, env, "--interval", "0.5") as first:
        if link == "symlink":
            (tmp_path / "jarvis.db").symlink_to(database)
        else:
            (tmp_path / "jarvis.db").hardlink_to(database)
        second = subprocess.run(
            jarvis_argv("run", "--ticks", "1", "--http-port", "0"),
            cwd=tmp_path,
            env=jarvis_env(tmp_path, JARVIS_SPOOL_PATH=str(tmp_path / "second-spool.jsonl")),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        who = f"pid {first.process.pid}" if link == "symlink" else "pid unknown"
        assert f"another jarvis run ({who})" in second.stderr
        first.stop()
    assert first.process.returncode == 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", [("run", "--ticks", "1", "--http-port", "0"), ("tick",)])
@pytest.mark.parametrize("where", ["missing_directory", "lock_is_a_directory"])
def test_a_sqlite_file_that_cannot_be_locked_is_one_line_not_a_traceback(
    tmp_path: Path, command: tuple[str, ...], where: str
) -> None:
    # A database in a directory that does not exist (a typo in database_url, a
    # volume not mounted) or a ``.lock`` path that cannot be opened (a read-only
    # filesystem; here a directory in its place, which any user can make) used
    # to end `jarvis run` and `jarvis tick` in the node lock's OSError traceback.
    database = tmp_path / "nowhere" / "jarvis.db"
    if where == "lock_is_a_directory":
        database = tmp_path / "jarvis.db"
        (tmp_path / "jarvis.db.lock").mkdir()
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    done = subprocess.run(
        jarvis_argv(*command),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(database) in lines[0] or f"{database}.lock" in lines[0]
