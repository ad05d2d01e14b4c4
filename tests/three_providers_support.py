"""Helpers for `tests.test_three_providers`: seed three local clouds, write config, run `jarvis`.

The three servers are the ones each provider's own tests use — moto's
`ThreadedMotoServer` for ECS, `tests.kubernetes.fake_apiserver.FakeApiServer`
and `tests.cloudrun.fake_server.FakeCloudRun` — all on 127.0.0.1. The test
module owns their lifetimes through its fixtures; this module only seeds them
(one unhealthy and one healthy service on each), writes the TOML a user would
write for all three providers at once, and runs the installed `jarvis` entry
point against it in a subprocess with an isolated SQLite database.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.aws.conftest import register_task_definition
from tests.cli.conftest import jarvis_argv, jarvis_env
from tests.cloudrun.conftest import IMAGE, PROJECT, REGION, service_name
from tests.cloudrun.fake_server import FakeCloudRun
from tests.kubernetes.fake_apiserver import FakeApiServer

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

AWS_REGION = "us-east-1"
K8S_TOKEN = "three-providers-token"
AWS_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": AWS_REGION,
}

#: The one unhealthy resource on each provider, as Jarvis names it.
ECS_SICK = "ecs://prod/api"
K8S_SICK = "k8s://default/producer"
RUN_SICK = f"cloudrun://{PROJECT}/{REGION}/api"
SICK = frozenset({ECS_SICK, K8S_SICK, RUN_SICK})
#: Their healthy neighbours, which nothing may touch.
HEALTHY = frozenset(
    {"ecs://prod/web", "k8s://default/consumer", f"cloudrun://{PROJECT}/{REGION}/worker"}
)

CONFIG = """\
[aws]
region = "{aws_region}"
clusters = ["prod"]
endpoint_url = "{moto}"
connect_timeout = 2.0
read_timeout = 5.0

[kubernetes]
namespaces = ["default"]
host = "{k8s}"
token = "{token}"
request_timeout = 2.0
observe_timeout = 8.0
verify_seconds = 5.0
verify_poll_seconds = 0.2

[cloudrun]
project = "{project}"
region = "{region}"
services = ["api", "worker"]
credentials = "anonymous"
api_endpoint = "{cloudrun}"
request_timeout = 2.0
operation_timeout = 5.0
poll_initial = 0.05
poll_maximum = 0.2

[heal]
enabled = true

[[allowlist]]
provider = "ecs"
resources = "prod/*"
actions = ["restart"]

[[allowlist]]
provider = "k8s"
resources = "default/*"
actions = ["restart"]

[[allowlist]]
provider = "cloudrun"
resources = "{project}/{region}/*"
actions = ["restart"]
"""


def reset_moto(url: str) -> None:
    """Empty moto's account, so each test starts from nothing."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - loopback http URL
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http URL
        assert response.status == 200


def ecs_client(moto: str) -> ECSClient:
    """A real boto3 ECS client on moto, with dummy credentials given explicitly."""
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=AWS_REGION
    )
    return session.client("ecs", endpoint_url=moto)


def seed_ecs(ecs: ECSClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cluster ``prod``: ``api`` with none of its 2 tasks running (unhealthy), ``web`` with both."""
    register_task_definition(ecs, "api")
    ecs.create_cluster(clusterName="prod")
    # moto (in this process) reads the running count when a service is created.
    for name, running in (("api", "0"), ("web", "2")):
        monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", running)
        ecs.create_service(
            cluster="prod",
            serviceName=name,
            taskDefinition="api",
            desiredCount=2,
            launchType="FARGATE",
        )


def primary_deployment(ecs: ECSClient, service: str) -> str:
    """The id of a service's PRIMARY deployment (a restart replaces it)."""
    described = ecs.describe_services(cluster="prod", services=[service])["services"][0]
    return next(d["id"] for d in described["deployments"] if d["status"] == "PRIMARY")


def seed_kubernetes(apiserver: FakeApiServer) -> None:
    """Namespace ``default``: ``producer`` crash-looping, ``consumer`` healthy."""
    apiserver.cluster.add_deployment("default", "producer")
    apiserver.cluster.add_deployment("default", "consumer")
    apiserver.cluster.crash_pods("default", "producer")


def seed_cloudrun(fake: FakeCloudRun) -> None:
    """``api`` whose serving revision crashed, ``worker`` healthy."""
    fake.state.add_service(PROJECT, REGION, "api", image=IMAGE)
    fake.state.add_service(PROJECT, REGION, "worker", image=IMAGE)
    fake.state.crash(service_name("api"))


def write_config(path: Path, *, moto: str, k8s: str, cloudrun: str) -> Path:
    path.write_text(
        CONFIG.format(
            aws_region=AWS_REGION,
            moto=moto,
            k8s=k8s,
            token=K8S_TOKEN,
            project=PROJECT,
            region=REGION,
            cloudrun=cloudrun,
        ),
        encoding="utf-8",
    )
    return path


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """`jarvis_env` with moto's dummy AWS keys and no other AWS setting from this machine."""
    env = {k: v for k, v in jarvis_env(tmp_path).items() if not k.startswith("AWS_")}
    return env | AWS_KEYS


@dataclass(frozen=True)
class ThreeClouds:
    """The three seeded servers and a `jarvis` pointed at all of them."""

    tmp_path: Path
    config: Path
    ecs: ECSClient
    apiserver: FakeApiServer
    cloudrun: FakeCloudRun

    def jarvis(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``jarvis --config FILE ARGS`` to completion; never raises on exit status."""
        return subprocess.run(
            jarvis_argv("--config", str(self.config), *args),
            cwd=self.tmp_path,
            env=subprocess_env(self.tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def rows(self, *args: str) -> list[dict[str, Any]]:
        """The JSON lines ``jarvis ARGS --json`` prints, after checking it exited 0."""
        result = self.jarvis(*args, "--json")
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        # `--json` promises one JSON object per line on stdout: scripts pipe it to jq.
        noise = [line for line in lines if not line.startswith("{")]
        assert not noise, f"`jarvis {' '.join(args)} --json` printed non-JSON on stdout: {noise}"
        return [json.loads(line) for line in lines]

    def events(self, *kinds: str) -> dict[str, list[dict[str, Any]]]:
        """``jarvis events --json`` for ``kinds`` (one run), grouped by kind, oldest first."""
        args = [arg for kind in kinds for arg in ("--kind", kind)]
        grouped: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for event in self.rows("events", "--limit", "1000", *args):
            grouped[event["kind"]].append(event)
        return grouped


def by_resource(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The decision rows of the one tick report `tick`/`plan --json` print, keyed by resource.

    One action per resource per tick.
    """
    (report,) = reports
    rows = report["decisions"]
    keyed = {row["resource"]: row for row in rows}
    assert len(keyed) == len(rows), f"two decisions for one resource: {rows}"
    return keyed
