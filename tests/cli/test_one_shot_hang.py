"""A provider that takes the connection and never answers: every command ends on time.

Real SDK clients (boto3, google-cloud-run's REST transport, the kubernetes
client) in real `jarvis` processes, aimed at `tests.silent_server`: a loopback
server that never answers, or that relays the reads to the provider's fake and
swallows the first change. Each SDK's own timeout is set as long as its setting
allows (ECS: 120 s a request, ten attempts), the loop's short (an observe 2 s, an
apply 3 s). Before, the loop cut the call and recorded it, and then the process
waited at exit for the SDK's thread until that SDK timeout ended it; a command
now ends once its tick has, so each deadline below is the loop's timeouts plus
a generous 40 s, far short of the SDK's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.aws.moto_server import running_moto
from tests.cli.conftest import Jarvis
from tests.cloudrun.fake_server import FakeCloudRun
from tests.daemon import running
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.silent_server import SilentServer, silent_server
from tests.three_providers_support import (
    ECS_SICK,
    K8S_SICK,
    K8S_TOKEN,
    RUN_SICK,
    ecs_client,
    reset_moto,
    seed_cloudrun,
    seed_ecs,
    seed_kubernetes,
    subprocess_env,
)

OBSERVE, APPLY = 2.0, 3.0
DEADLINE = OBSERVE + APPLY + 40
"""Seconds a command may take here: the loop's timeouts and a margin for a loaded machine.
The SDKs' own timeouts (120 s a request at least) are far past it."""

LOOP = f"""
[loop]
observe_timeout = {OBSERVE}
apply_timeout = {APPLY}
"""

SECTIONS = {
    "ecs": """
[aws]
region = "us-east-1"
clusters = ["prod"]
endpoint_url = "{url}"
metrics = false
max_attempts = 10
connect_timeout = 60
read_timeout = 120
""",
    "kubernetes": """
[kubernetes]
namespaces = ["default"]
host = "{url}"
token = "{token}"
request_timeout = 120
observe_timeout = 300
verify_seconds = 0
""",
    "cloudrun": """
[cloudrun]
project = "demo-project"
region = "us-central1"
services = ["api", "worker"]
credentials = "anonymous"
api_endpoint = "{url}"
request_timeout = 120
operation_timeout = 120
""",
}
"""Each provider's section, its SDK timeouts at their longest (keyed by actuator name)."""

SCHEMES = {"ecs": "ecs", "kubernetes": "k8s", "cloudrun": "cloudrun"}
SICK = {"ecs": ECS_SICK, "kubernetes": K8S_SICK, "cloudrun": RUN_SICK}
CHANGE = {"ecs": b".UpdateService", "kubernetes": b"PATCH /", "cloudrun": b"PATCH /"}
"""What the first change each provider's restart sends carries: the request left unanswered."""

PROVIDERS = sorted(SECTIONS)


def write_config(tmp_path: Path, provider: str, url: str) -> dict[str, str]:
    """The environment of a `jarvis` aimed at ``url`` for ``provider``, allowed to restart."""
    config = tmp_path / "jarvis.toml"
    allow = f'[[allowlist]]\nprovider = "{SCHEMES[provider]}"\nresources = "*"\nactions = ["*"]\n'
    section = SECTIONS[provider].format(url=url, token=K8S_TOKEN)
    config.write_text(allow + LOOP + section, encoding="utf-8")
    return subprocess_env(tmp_path) | {"JARVIS_CONFIG": str(config)}


def recorded(tmp_path: Path) -> list[tuple[str, str | None]]:
    """(kind, resource) of every event in tmp_path's database, in order."""
    with sqlite3.connect(tmp_path / "jarvis.db") as db:
        return [
            (kind, resource)
            for kind, resource in db.execute("SELECT kind, resource FROM events ORDER BY id")
        ]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with running_moto() as url:
        yield url


@pytest.fixture
def fake(
    request: pytest.FixtureRequest, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The provider's fake, seeded with one unhealthy service, as its base URL."""
    provider = request.param
    if provider == "ecs":
        reset_moto(moto_server)
        ecs = ecs_client(moto_server)
        try:
            seed_ecs(ecs, monkeypatch)
        finally:
            ecs.close()
        yield moto_server
    elif provider == "kubernetes":
        with FakeApiServer(token=K8S_TOKEN) as apiserver:
            seed_kubernetes(apiserver)
            yield apiserver.url
    else:
        with FakeCloudRun() as cloudrun:
            seed_cloudrun(cloudrun)
            yield cloudrun.endpoint


@contextmanager
def relay_to(url: str, provider: str) -> Iterator[SilentServer]:
    """A relay to the fake at ``url`` that leaves ``provider``'s first change unanswered."""
    parts = urlsplit(url)
    with silent_server((parts.hostname or "127.0.0.1", parts.port or 80), [CHANGE[provider]]) as s:
        yield s


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_tick_whose_provider_never_answers_ends_on_time_and_names_it(
    jarvis: Jarvis, tmp_path: Path, provider: str
) -> None:
    """`jarvis tick` ends once its observe is cut, exits 1 naming the provider, and has
    recorded the failed observe and the finished tick."""
    with silent_server() as server:
        env = write_config(tmp_path, provider, server.url)
        done = jarvis("tick", env=env, timeout=DEADLINE)
        assert server.held.is_set()
    assert done.returncode == 1, done.stderr
    assert f"no answer: {provider} did not answer within loop.observe_timeout" in done.stderr
    kinds = [kind for kind, _ in recorded(tmp_path)]
    assert kinds == ["tick.started", "observe.failed", "tick.finished"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_plan_whose_provider_never_answers_ends_on_time_and_names_it(
    jarvis: Jarvis, tmp_path: Path, provider: str
) -> None:
    """`jarvis plan` ends once its observe is cut and exits 1 naming the provider."""
    with silent_server() as server:
        env = write_config(tmp_path, provider, server.url)
        done = jarvis("plan", env=env, timeout=DEADLINE)
    assert done.returncode == 1, done.stderr
    assert f"no answer: {provider} did not answer within loop.observe_timeout" in done.stderr
    assert not (tmp_path / "jarvis.db").exists()  # plan records nothing


@pytest.mark.parametrize("fake", PROVIDERS, indirect=True)
@pytest.mark.parametrize(
    "command", [["restart", "{sick}", "--reason", "hung"], ["tick"]], ids=["restart", "tick"]
)
def test_a_change_never_answered_is_recorded_unknown_and_the_command_ends_on_time(
    jarvis: Jarvis, tmp_path: Path, fake: str, command: list[str], request: pytest.FixtureRequest
) -> None:
    """The observe answers and the restart's change hangs (an override's, or heal's in
    `jarvis tick`): the command ends once its apply is cut, exits 1 naming the provider,
    and has recorded the change unknown (for the next acting tick to ask about), never
    applied or failed."""
    provider = request.node.callspec.params["fake"]
    sick = SICK[provider]
    with relay_to(fake, provider) as relay:
        env = write_config(tmp_path, provider, relay.url)
        if command == ["tick"]:
            config = Path(env["JARVIS_CONFIG"])
            config.write_text(config.read_text() + "\n[heal]\nenabled = true\n")
        argv = [arg.format(sick=sick) for arg in command]
        done = jarvis(*argv, env=env, timeout=DEADLINE)
        assert relay.held.is_set()
    assert done.returncode == 1, done.stderr
    assert f"outcome unknown: restart of {sick}" in done.stdout
    said = f"no answer: {SCHEMES[provider]} did not answer restart of {sick} within loop.apply"
    assert said in done.stderr
    events = recorded(tmp_path)
    actions = [kind for kind, resource in events if resource == sick and kind.startswith("action.")]
    assert actions == ["action.proposed", "action.started", "action.unknown"]
    assert events[-1] == ("tick.finished", None)


def test_the_daemon_stopped_while_a_provider_never_answers_exits_by_its_deadline(
    tmp_path: Path,
) -> None:
    """SIGTERM while ECS holds an observe unanswered: `jarvis run` exits 0 within its
    shutdown grace (8 s) and a margin, not when boto3 gives up."""
    with silent_server() as server:
        env = write_config(tmp_path, "ecs", server.url)
        env["JARVIS_LOOP__OBSERVE_TIMEOUT"] = "60"  # the call still hangs when SIGTERM comes
        with running(tmp_path, env, ready="/healthz") as daemon:
            assert server.held.wait(DEADLINE)
            output = daemon.stop(within=8 + 40)
    assert daemon.process.returncode == 0, output[-3000:]
    assert "jarvis stopped" in output
