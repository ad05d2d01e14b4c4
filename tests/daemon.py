"""`jarvis run` as a real process in a test: started on a free port, awaited, stopped.

`running` starts the daemon with the test's environment, waits for an endpoint
to answer 200 (a daemon can take 20 s to start on a loaded machine, so the wait
is long, and ends at once if the process exits), and stops it with SIGTERM
when the block ends. Its output goes to a file, not a pipe a chatty daemon
could fill, and `Daemon.stop` returns it.

The daemon binds its HTTP port itself (``--http-port 0``) and the test reads
the port from its log (`http_port`): a port the test picked and the daemon
bound seconds later could be taken in between by another pytest-xdist
worker's server, as the kernel hands a released port out again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.cli.conftest import jarvis_argv
from tests.loopback import free_port

__all__ = [
    "Daemon",
    "free_port",
    "get",
    "http_port",
    "logged",
    "readyz_until",
    "running",
    "sample",
    "wait_for",
]


def get(
    url: str, token: str | None = None, body: dict[str, object] | None = None
) -> tuple[int, str]:
    """GET ``url`` (POST with a JSON ``body``): the status and the text, errors included."""
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")  # noqa: S310 - loopback URL built by the test
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, deadline: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``url`` answers 200; fails at ``deadline``, or at once if ``process`` exits."""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {url} answered")
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def readyz_until(
    base: str, token: str, want: int, deadline: float, saying: str = ""
) -> dict[str, object]:
    """/readyz's body, read with the admin ``token`` (to which it says why a check fails),
    once it answers ``want`` ``saying`` that; fails at ``deadline``."""
    while True:
        status, body = get(f"{base}/readyz", token)
        if status == want and saying in body:
            parsed: dict[str, object] = json.loads(body)
            return parsed
        assert time.monotonic() < deadline, f"/readyz still answers {status}: {body}"
        time.sleep(0.2)


def http_port(
    log: Path, deadline: float, process: subprocess.Popen[bytes] | subprocess.Popen[str]
) -> int:
    """The port `jarvis run --http-port 0` bound, from the ``http.started`` line of its ``log``.

    Fails at ``deadline``, or at once if ``process`` exits first.
    """
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        # Whole lines only: the last one may be half written.
        for line in text[: text.rfind("\n") + 1].splitlines():
            if '"http.started"' in line:
                return int(json.loads(line)["port"])
        if process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before it listened")
        time.sleep(0.1)
    raise AssertionError("its HTTP server never started")


def logged(output: str, event: str) -> list[dict[str, object]]:
    """The JSON log lines of ``event`` in a daemon's ``output``, in order."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of metric ``name`` with ``labels`` in an exposition, or None."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, within: float = 60) -> str:
        """SIGTERM, then `wait`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(within)

    def wait(self, within: float = 60) -> str:
        """Its output once it exits; fails (and kills it) if it runs ``within`` s on."""
        try:
            self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"jarvis run did not exit within {within:g} s") from None
        return self.output()


@contextmanager
def running(
    cwd: Path,
    env: dict[str, str],
    *args: str,
    port: int | None = None,
    ready: str = "/readyz",
    ready_within: float = 90,
) -> Iterator[Daemon]:
    """`jarvis run --http-port PORT ARGS` in ``cwd``, ready, and stopped when the block ends.

    Without ``port`` the daemon binds a free one and `http_port` reads which.
    Stopping on the way out does not check the exit status: a test that cares
    calls `Daemon.stop` itself and reads ``process.returncode``.
    """
    log = cwd / f"daemon-{uuid.uuid4().hex[:8]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            jarvis_argv("run", "--http-port", str(port or 0), *args),
            cwd=cwd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + ready_within
        try:
            daemon = Daemon(process, port or http_port(log, deadline, process), log)
            wait_for(f"{daemon.base}{ready}", deadline, process)
        except AssertionError as exc:
            output = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}; its output:\n{output}") from None
        yield daemon
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
