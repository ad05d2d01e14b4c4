"""A private `redis-server` on a free loopback port, for tests that must stop or restart one.

The shared Redis on 6379 is never stopped by a test; a test that needs Redis
to go away (or come back empty, as after a restart without persistence) starts
its own here and stops it when it ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.loopback import free_port


class PrivateRedis:
    """One redis-server process with no persistence: a restart comes back empty."""

    def __init__(self, workdir: Path, args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.args = list(args)
        """More ``redis-server`` options, e.g. ``--replicaof`` for a read-only replica."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                code = self._process.poll()
                if code is not None:  # refused its arguments or its port: no use waiting
                    self._process = None
                    exited = f"redis-server exited with {code} before listening"
                    raise RuntimeError(exited) from None
                time.sleep(0.05)
        self.stop()  # a server that never listened is not left running
        raise RuntimeError(f"redis-server did not listen on {self.port} within 20 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=20)
            self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def require_redis_server() -> None:
    """Skip the test when ``redis-server`` is not installed; fail it under CI=true."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true a missing server is a failure")
        pytest.skip(message)


@contextmanager
def private_redis(workdir: Path, args: Sequence[str] = ()) -> Iterator[PrivateRedis]:
    require_redis_server()
    server = PrivateRedis(workdir, args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
