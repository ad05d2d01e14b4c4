"""A `jarvis` one-shot held in the middle of its tick while the test changes the world.

`holding_endpoint()` is an HTTP endpoint whose answer waits for the test: probed by the
tick's observe (`held_probe` is its `[[probes.endpoints]]` section), it holds the tick
after the command connected to its database and took its lease or lock, before it
records anything. `run_held` runs a `jarvis` command there, calls ``meanwhile`` once
the probe came (rotate a password, stop the database), then lets the tick go on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli.conftest import jarvis_process

__all__ = ["Holding", "held_probe", "holding_endpoint", "run_held"]


class _Held(BaseHTTPRequestHandler):
    """Answers a GET 200 once the test lets it (`Holding.answer`), saying it was asked."""

    server: Holding

    def do_GET(self) -> None:
        self.server.asked.set()
        self.server.answer.wait(timeout=120)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: the test reads the command's output, not the endpoint's."""


class Holding(ThreadingHTTPServer):
    """An HTTP endpoint whose answer waits for the test: a moment inside a tick's observe,
    after the command connected to its database and before it records the tick."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Held)
        self.asked = threading.Event()
        self.answer = threading.Event()


@contextmanager
def holding_endpoint() -> Iterator[Holding]:
    endpoint = Holding()
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        endpoint.answer.set()
        endpoint.shutdown()
        endpoint.server_close()


def held_probe(endpoint: Holding) -> str:
    """The configuration that has a tick probe ``endpoint``, waiting for it up to a minute."""
    return (
        "[loop]\ninterval = 300\nobserve_timeout = 90\n"
        '[[probes.endpoints]]\nname = "held"\n'
        f'url = "http://127.0.0.1:{endpoint.server_port}/"\ntimeout_seconds = 60\n'
    )


def run_held(
    argv: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    endpoint: Holding,
    meanwhile: Callable[[], None],
) -> tuple[int, str, str]:
    """Run `jarvis ARGV`, call ``meanwhile`` once its tick probed ``endpoint``, then answer
    the probe; its exit status, stdout and stderr."""
    with jarvis_process(*argv, cwd=cwd, env=env) as process:
        if not endpoint.asked.wait(timeout=60):
            process.kill()
            pytest.fail(f"the tick never probed the endpoint: {process.communicate()}")
        meanwhile()
        endpoint.answer.set()
        out, err = process.communicate(timeout=120)
    return process.returncode, out, err
