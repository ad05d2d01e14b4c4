"""The private redis-server helper: a server that cannot start says so and leaves nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.private_redis import PrivateRedis


def test_a_server_that_refuses_its_arguments_fails_at_once_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    """It waited 20 s for a server that had exited at once, then left the dead handle set."""
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; under CI=true that is a failure")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path, ["--no-such-directive", "x"])
    with pytest.raises(RuntimeError, match=r"exited with \d+ before listening"):
        server.start()
    assert server._process is None
