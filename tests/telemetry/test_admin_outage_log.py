"""The admin API with its kill switch's Redis away: a 503, and one log line naming Redis.

Before, `admin.backend_failed` logged the failure at error level with its whole
traceback (and a failed audit row did too, as `admin.record_failed`): a Redis
restart filled an SRE's log with stack frames for what the store already says
in one line. An outage is now a warning whose ``error`` is that line; a bug in
the backend keeps its traceback (`tests/telemetry/test_http.py`).
"""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import jarvis_env
from tests.daemon import get, logged, running
from tests.private_redis import private_redis

TOKEN = "admin-token-0123456789abcdef"


def test_the_admin_api_with_redis_away_logs_one_line_naming_it(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        env = jarvis_env(
            tmp_path,
            JARVIS_REDIS_URL=server.url,
            JARVIS_ADMIN_TOKEN=TOKEN,
            JARVIS_LOG_FORMAT="json",
        )
        with running(tmp_path, env, "--interval", "60") as daemon:
            server.stop()
            status, body = get(f"{daemon.base}/v1/killswitch", TOKEN)
            assert status == 503, body
            status, body = get(
                f"{daemon.base}/v1/killswitch", TOKEN, {"engaged": True, "reason": "drill"}
            )
            assert status == 503, body
            output = daemon.stop()
    failed = logged(output, "admin.backend_failed")
    assert [line["doing"] for line in failed] == [
        "reading the kill switch",
        "setting the kill switch",
    ], output[-3000:]
    for line in failed:
        assert line["level"] == "warning", line
        error = str(line["error"])
        assert f"127.0.0.1:{server.port}" in error, line
        assert "\n" not in error and "exception" not in line, line
    assert "Traceback" not in output, output[-3000:]
