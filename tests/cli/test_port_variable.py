"""``$PORT``, where the HTTP server listens unless ``http.port`` says (Cloud Run sets it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Jarvis, jarvis_env


@pytest.mark.parametrize("port", ["abc", "99999", "-1", "8O80"])
def test_a_port_variable_that_is_not_a_port_is_refused_naming_it(
    jarvis: Jarvis, tmp_path: Path, port: str
) -> None:
    """$PORT (Cloud Run's) is where the HTTP server listens unless http.port says: a value
    that is no port number is a configuration error, not a traceback at bind."""
    env = jarvis_env(tmp_path, PORT=port)
    for command in (("config", "check"), ("run", "--ticks", "1", "--interval", "0.05")):
        result = jarvis(*command, env=env, timeout=120)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert f"$PORT ({port!r}) is not a port number" in result.stderr, result.stderr


def test_an_empty_port_variable_is_unset(jarvis: Jarvis, tmp_path: Path) -> None:
    """``PORT=`` is no port at all: the default 8080, as for an unset variable."""
    result = jarvis("config", "check", "--json", env=jarvis_env(tmp_path, PORT=""))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["http_port"] == 8080


def test_http_port_wins_over_a_port_variable_that_is_not_a_port(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """With http.port set, $PORT is not read, so a stray value there does not matter."""
    env = jarvis_env(tmp_path, PORT="abc", JARVIS_HTTP__PORT="0")
    result = jarvis("config", "check", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["http_port"] == 0
