"""The private redis-server helper: a server that cannot start says so and leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.private_redis import PrivateRedis, require_redis_server


def test_a_server_that_refuses_its_arguments_fails_at_once_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    """It waited 20 s for a server that had exited at once, then left the dead handle set."""
    require_redis_server()
    server = PrivateRedis(tmp_path, ["--no-such-directive", "x"])
    with pytest.raises(RuntimeError, match=r"exited with \d+ before listening"):
        server.start()
    assert server._process is None
