"""`jarvis run` as a real process: metrics, health, the admin API, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.daemon import get, running, sample

TOKEN = "s3cret-admin-token"


def test_the_daemon_serves_metrics_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """Metrics are scraped while it runs; SIGTERM ends it with status 0 within 10 s."""
    env = jarvis_env(tmp_path, JARVIS_ADMIN_TOKEN=TOKEN, JARVIS_HTTP__HOST="127.0.0.1")
    with running(tmp_path, env, "--interval", "0.2") as daemon:
        base = daemon.base
        deadline = time.monotonic() + 60
        ticks = 0.0
        while time.monotonic() < deadline and ticks < 4:
            _, text = get(f"{base}/metrics")
            ticks = sample(text, "jarvis_ticks_total", outcome="ok") or 0.0
            time.sleep(0.1)
        assert ticks >= 4
        _, text = get(f"{base}/metrics")
        assert sample(text, "jarvis_actions_total", kind="restart", outcome="applied") == 1
        assert sample(text, "jarvis_build_info") == 1
        assert get(f"{base}/healthz")[0] == 200

        assert get(f"{base}/v1/killswitch")[0] == 401
        assert get(f"{base}/v1/killswitch", token="wrong")[0] == 401
        status, body = get(
            f"{base}/v1/killswitch", token=TOKEN, body={"engaged": True, "reason": "api test"}
        )
        assert status == 200 and json.loads(body)["engaged"] is True
        deadline = time.monotonic() + 30
        engaged = 0.0
        while time.monotonic() < deadline and engaged != 1:
            _, text = get(f"{base}/metrics")
            engaged = sample(text, "jarvis_killswitch_engaged") or 0.0
            time.sleep(0.1)
        assert engaged == 1
        output = daemon.stop(within=10)
    assert daemon.process.returncode == 0, output
    assert "jarvis stopped" in output

    events = subprocess.run(
        jarvis_argv("events", "--json", "--kind", "admin.request", "--kind", "killswitch.engaged"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    recorded = [json.loads(line) for line in events.stdout.splitlines()]
    kinds = [e["kind"] for e in recorded]
    assert kinds.count("admin.request") == 3
    assert "killswitch.engaged" in kinds
    assert TOKEN not in events.stdout


def test_a_port_already_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Another listener on the HTTP port: one clear line naming it, status 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            jarvis_argv("run", "--ticks", "1", "--http-port", str(port)),
            cwd=tmp_path,
            env=jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_sigterms_in_quick_succession_still_exit_0(tmp_path: Path) -> None:
    """A second SIGTERM during the shutdown is logged, not fatal: the exit status stays 0."""
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    with running(tmp_path, env, "--interval", "0.2") as daemon:
        daemon.process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        daemon.process.send_signal(signal.SIGTERM)
        output = daemon.wait(within=30)
    assert daemon.process.returncode == 0, output
    assert "jarvis stopped" in output


def test_sighup_stops_the_daemon_as_sigterm_does(tmp_path: Path) -> None:
    """Closing the terminal of a foreground `jarvis run` (the Quickstart's) sends SIGHUP.

    Python's default for it ended the process at once: no final flush, no "jarvis
    stopped", exit status -1 (and on PostgreSQL no lease released). Jarvis
    reloads nothing on SIGHUP, so it stops as on SIGTERM.
    """
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    with running(tmp_path, env, "--interval", "0.2") as daemon:
        daemon.process.send_signal(signal.SIGHUP)
        output = daemon.wait(within=30)
    assert daemon.process.returncode == 0, output
    assert "jarvis stopped" in output
    assert '"signal": "SIGHUP"' in output
