"""A real `jarvis run` whose wall clock steps while it runs, under Debian's libfaketime.

The daemon runs with libfaketime preloaded, its offset read from a file on every
clock read (``FAKETIME_TIMESTAMP_FILE``, ``FAKETIME_NO_CACHE``); the test writes
a new offset to step the wall clock back an hour or forward a day, as NTP, a
resumed VM or a hand-set date would. ``FAKETIME_DONT_FAKE_MONOTONIC`` is set:
libfaketime's default fakes ``CLOCK_MONOTONIC`` too, and would step it with the
wall clock, which no kernel does. (With it set, Debian's libfaketime 0.9.10 fails
Python 3.11's ``time.sleep`` with EINVAL, wolfcw/libfaketime#426; the daemon waits on
its event loop, which does not call it.) tests/loop/test_clock_steps.py pins the same
in virtual time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_env
from tests.daemon import Daemon, get, running, sample

# Debian's path for the machine's architecture (x86_64-linux-gnu, aarch64-linux-gnu...).
LIBFAKETIME = min(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), default=None)

pytestmark = pytest.mark.skipif(
    LIBFAKETIME is None, reason="needs Debian's libfaketime (.ci/run installs it)"
)


@pytest.fixture
def offset(tmp_path: Path) -> Path:
    """The file libfaketime reads the wall clock's offset from; the test rewrites it."""
    path = tmp_path / "faketime.rc"
    path.write_text("+0\n")
    return path


@pytest.fixture
def daemon(tmp_path: Path, offset: Path) -> Iterator[Daemon]:
    """`jarvis run` on the embedded default, a tick a second, its wall clock ``offset``."""
    env = jarvis_env(
        tmp_path,
        JARVIS_HTTP__HOST="127.0.0.1",
        LD_PRELOAD=str(LIBFAKETIME),
        FAKETIME_TIMESTAMP_FILE=str(offset),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    with running(tmp_path, env, "--interval", "1") as daemon:
        yield daemon


def ticks(daemon: Daemon) -> float:
    _, text = get(f"{daemon.base}/metrics")
    return sample(text, "jarvis_ticks_total", outcome="ok") or 0.0


def wait_for_ticks(daemon: Daemon, at_least: float) -> None:
    """Until ``at_least`` ticks finished; a generous deadline, not a timing assertion."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ticks(daemon) < at_least:
        time.sleep(0.2)
    seen = ticks(daemon)
    assert seen >= at_least, f"{seen:g} ticks, not {at_least:g}: {daemon.output()[-2000:]}"


def health(daemon: Daemon) -> tuple[int, str]:
    status, body = get(f"{daemon.base}/healthz")
    return status, str(json.loads(body)["detail"])


def age(detail: str) -> float:
    """The seconds in /healthz's "last tick finished 1.2s ago"."""
    assert detail.startswith("last tick finished "), detail
    return float(detail.removeprefix("last tick finished ").removesuffix("s ago"))


def test_ticks_keep_coming_after_the_wall_clock_steps_back_an_hour(
    daemon: Daemon, offset: Path
) -> None:
    """An hour back: the next ticks come on their interval, and /healthz never reports a
    negative age (a stalled loop it would call healthy for an hour)."""
    wait_for_ticks(daemon, 2)
    offset.write_text("-1h\n")
    status, detail = health(daemon)
    assert status == 200 and age(detail) >= 0, detail
    before = ticks(daemon)
    wait_for_ticks(daemon, before + 3)
    status, detail = health(daemon)
    assert status == 200 and age(detail) >= 0, detail


def test_a_step_forward_of_a_day_is_no_overrun_and_health_stays_true(
    daemon: Daemon, offset: Path
) -> None:
    """A day forward: /healthz stays healthy and no tick is logged as having skipped the
    day's boundaries."""
    wait_for_ticks(daemon, 2)
    offset.write_text("+1d\n")
    status, detail = health(daemon)
    assert status == 200, detail
    wait_for_ticks(daemon, ticks(daemon) + 3)
    overruns = [
        json.loads(line)
        for line in daemon.output().splitlines()
        if '"tick overran its interval"' in line
    ]
    # A loaded machine may overrun a 1 s interval by a boundary or two; a day is 86,400.
    assert all(o["skipped_boundaries"] < 1000 for o in overruns), overruns
