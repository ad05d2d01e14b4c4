"""`[[probes.endpoints]]` and `[[probes.slos]]` as an operator writes them, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from tests.cli.conftest import Jarvis, jarvis  # noqa: F401 - the fixture
from tests.endpoints.conftest import Server

GOOD = """
[[probes.endpoints]]
name = "api"
url = "https://api.example.com/healthz"
"""


def test_bad_endpoint_settings_exit_2_naming_the_key(jarvis: Jarvis, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """A bad URL, status, link, duplicate name or an SLO selecting nothing names its key."""
    cases = [
        ('[[probes.endpoints]]\nname = "a"\nurl = "ftp://x/"\n', "probes.endpoints.0.url"),
        (
            '[[probes.endpoints]]\nname = "a"\nurl = "https://u:hunter22@x:99999/"\n',
            "probes.endpoints.0.url: must be an http:// or https:// URL",
        ),
        (GOOD + "expect_status = [700]\n", "probes.endpoints.0.expect_status.0"),
        (GOOD + 'serves = "api"\n', "probes.endpoints.0.serves"),
        (GOOD + "timeout = 3\n", "probes.endpoints.0.timeout: unknown key"),
        (GOOD + GOOD, "probes.endpoints.1.name: duplicate 'api'"),
        (GOOD + '[[probes.slos]]\nname = "s"\nendpoints = ["web*"]\n', "probes.slos.0.endpoints"),
        (GOOD + '[[probes.slos]]\nname = "s"\ncloud = "gcp"\n', "probes.slos.0.endpoints"),
        (GOOD + "timeout_seconds = 12\n", "probes.endpoint_concurrency: 1 endpoints"),
        (
            "[loop]\ninterval = 120\n" + GOOD + '[[probes.slos]]\nname = "s"\n',
            "probes.slos.0.min_samples: 5 samples cannot fit in a 300 s window "
            "with a tick every 120 s (1 endpoints)",
        ),
        (
            "[probes]\nendpoint_concurrency = 1\n" + GOOD + GOOD.replace('"api"', '"web"'),
            "could take 10 s, not shorter than loop.observe_timeout (10 s)",
        ),
    ]
    for text, expected in cases:
        (tmp_path / "bad.toml").write_text(text)
        result = jarvis("--config", "bad.toml", "config", "check")
        assert result.returncode == 2, (text, result.stderr)
        assert expected in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.stderr
        assert "hunter22" not in result.stderr


def test_config_check_masks_the_password_and_token_of_an_endpoint_url(
    jarvis: Jarvis,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """`config check` shows where an endpoint points, never its password or query token."""
    url = "https://probe:hunter22@api.example.com/healthz?token=s3cr3t-t0ken&v=1"
    (tmp_path / "c.toml").write_text(
        f'[[probes.endpoints]]\nname = "api"\nurl = "{url}"\ncloud = "aws"\n'
    )
    result = jarvis("--config", "c.toml", "config", "check", "--json")
    assert result.returncode == 0, result.stderr
    assert "hunter22" not in result.stdout
    assert "s3cr3t-t0ken" not in result.stdout
    data = json.loads(result.stdout)
    [shown] = data["probes"]["endpoints"]
    assert shown["url"] == "https://probe:***@api.example.com/healthz?token=%2A%2A%2A&v=%2A%2A%2A"
    assert "endpoints" in data["providers"]


def _stored(directory: Path) -> bytes:
    """Every byte of the SQLite database and its journal files."""
    return b"".join(path.read_bytes() for path in directory.glob("jarvis*"))


@pytest.mark.anyio
async def test_jarvis_run_records_an_endpoint_and_stores_none_of_its_url_secrets(
    jarvis: Jarvis,  # noqa: F811 - the fixture
    tmp_path: Path,
    http_server: Server,
) -> None:
    """The daemon observes endpoint://api; neither its password nor its token reaches the store."""
    http_server.behaviour.status = 503
    url = http_server.url.replace("http://", "http://probe:hunter22@") + "?token=s3cr3t-t0ken"
    (tmp_path / "c.toml").write_text(
        f'[[probes.endpoints]]\nname = "api"\nurl = "{url}"\nfailure_threshold = 1\n'
    )
    args = ("--config", "c.toml", "run", "--ticks", "2", "--interval", "0.05", "--http-port", "0")
    result = await anyio.to_thread.run_sync(lambda: jarvis(*args, timeout=120))
    assert result.returncode == 0, result.stderr
    assert http_server.behaviour.hits >= 1
    shown = jarvis("events", "--json", "--kind", "resource.changed", "--limit", "100")
    # One change, however many ticks it stays down: the detail does not move.
    [event] = [
        json.loads(line)
        for line in shown.stdout.splitlines()
        if json.loads(line)["resource"] == "endpoint://api"
    ]
    assert event["payload"]["health"] == "unhealthy"
    assert event["payload"]["attributes"]["status"] == 503
    stored = _stored(tmp_path)
    assert b"hunter22" not in stored
    assert b"s3cr3t-t0ken" not in stored
    assert "hunter22" not in result.stderr
