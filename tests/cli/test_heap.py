"""The garbage collector in a `jarvis` process: off during start-up, then on, tuned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_env
from tests.daemon import get, running, sample


@pytest.mark.timeout(300)  # a daemon on a loaded machine
def test_a_daemon_starts_without_a_full_collection(tmp_path: Path) -> None:
    """Start-up's imports set off a full collection, which walks every object built so far.

    Read from the daemon's own /metrics (``python_gc_collections_total``).
    """
    env = jarvis_env(tmp_path, JARVIS_HTTP__HOST="127.0.0.1")
    with running(tmp_path, env, "--interval", "1") as daemon:
        _, text = get(f"{daemon.base}/metrics")

    assert sample(text, "python_gc_collections_total", generation="2") == 0.0


def test_settle_collects_again_over_what_start_up_did_not_build() -> None:
    """In a process of its own: freezing is for good, and this one runs many tests."""
    code = (
        "import gc\n"
        "from jarvis.cli import heap\n"
        "heap.pause()\n"
        "print(gc.isenabled())\n"
        "kept = [[index] for index in range(1000)]\n"
        "heap.settle()\n"
        "print(gc.isenabled(), gc.get_freeze_count() >= 1000, gc.get_threshold()[0])\n"
        "cycle = []\n"
        "cycle.append(cycle)\n"
        "del cycle\n"
        "print(gc.collect())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")

    assert out[0] == "False"
    assert out[1] == "True True 10000"
    assert out[2] == "1"  # the cycle made after settle is found; nothing frozen is looked at
