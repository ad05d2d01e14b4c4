"""The Custodian benchmark (bench/custodian.py) reads what each tool prints as it prints it now.

It ran `jarvis plan --json` and Custodian side by side but parsed the plan's
old one-line-per-decision output, and counted a Custodian run that answered
from its cache as a run that read the fleet. These pin the parsing on the
current shapes: `report_json`'s one object per tick, and Custodian's
``resources.json`` and ``metadata.json`` (``api-stats``).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import boto3
import pytest

from tests.aws.moto_server import running_moto
from tests.bench_support import BENCH, load_bench


@pytest.fixture(scope="module")
def custodian() -> ModuleType:
    return load_bench("custodian")


def _decision(resource: str, action: str) -> dict[str, object]:
    return {
        "resource": resource,
        "action": action,
        "params": "",
        "policy": "heal",
        "decision": "blocked: allowlist",
        "reason": "degraded",
        "cost_delta_per_hour": None,
    }


def test_the_services_plan_would_restart_are_read_from_its_one_object_per_tick(
    custodian: ModuleType,
) -> None:
    """Only restarts count, from each tick's decisions; a tick with none adds nothing."""
    busy = {
        "tick_id": "t1",
        "resources": 3,
        "proposals": 2,
        "applied": 0,
        "observe_errors": {},
        "notes": [],
        "decisions": [
            _decision("ecs://prod/svc-0007", "restart"),
            _decision("ecs://prod/svc-0008", "scale"),
        ],
    }
    idle = {**busy, "tick_id": "t2", "proposals": 0, "decisions": []}
    stdout = json.dumps(busy) + "\n" + json.dumps(idle) + "\n"

    assert custodian._jarvis_found(stdout) == {"svc-0007"}


def test_custodian_runs_report_their_matches_and_the_api_calls_they_made(
    custodian: ModuleType, tmp_path: Path
) -> None:
    """A run that answered from Custodian's cache shows as zero calls, not as a fleet read."""
    policy = tmp_path / "ecs-unhealthy"
    policy.mkdir()
    (policy / "resources.json").write_text(json.dumps([{"serviceName": "svc-0007"}]))
    stats = {"ecs.ListClusters": 1, "ecs.ListServices": 2, "ecs.DescribeServices": 50}
    (policy / "metadata.json").write_text(json.dumps({"api-stats": stats}))

    assert custodian._custodian_found(tmp_path) == ({"svc-0007"}, 53)

    (policy / "metadata.json").write_text(json.dumps({"api-stats": {}}))
    assert custodian._custodian_found(tmp_path) == ({"svc-0007"}, 0)


def test_each_process_is_timed_with_its_own_peak_memory(
    custodian: ModuleType, tmp_path: Path
) -> None:
    """The issue compared the tools' memory too: `_timed` reads each process's own peak, in
    MiB, not the benchmark's (which a fork would pass on to a child's ``ru_maxrss``).

    Each child lingers two seconds after its peak, so the 5 ms sampling sees it on a busy machine.
    """
    env = {"PATH": "/usr/bin:/bin"}
    ballast = b"x" * (256 << 20)  # this process is big; a child must not read as big
    bare = "import time; time.sleep(2)"
    _, _, small, _ = custodian._timed([sys.executable, "-c", bare], env, str(tmp_path))
    touched = "import time; x = b'x' * (64 << 20); print(len(x) >> 20); time.sleep(2)"
    _, _, big, out = custodian._timed([sys.executable, "-c", touched], env, str(tmp_path))
    assert len(ballast) == 256 << 20
    assert out == "64\n"
    assert 0 < small < 64 < big < 256
    assert big - small > 48


def test_the_floor_finds_the_services_the_tools_must_find(
    custodian: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bare boto3 script reads the fleet and prints exactly the short services, with or
    without the libraries imported first.

    Its time is the floor the benchmark reads the tools against, so it must
    answer the same question as they do: a script that printed nothing, or
    read one cluster, would make a floor too low. The fleet's short services
    are all in one cluster, so one more is made in the other.
    """
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")  # read by moto as each service is made
    with running_moto() as url:
        reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
        with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 - a loopback http URL
            pass
        expected = custodian._populate(url, 45)
        ecs = boto3.Session(
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).client("ecs", endpoint_url=url)
        ecs.create_service(
            cluster="prod", serviceName="extra", taskDefinition="api", desiredCount=3
        )
        ecs.close()
        env, _ = custodian._environments(url, str(tmp_path))
        floor = [sys.executable, str(BENCH / "boto3_inventory.py")]
        outs = [
            custodian._timed([*floor, *first, *custodian.CLUSTERS], env, str(tmp_path))[3]
            for first in ([], ["--libraries"])
        ]

    assert expected == {"svc-0007", "svc-0017", "svc-0027", "svc-0037"}
    assert [sorted(out.split()) for out in outs] == [sorted({*expected, "extra"})] * 2


@pytest.mark.timeout(300)  # two CLI processes on a loaded machine
def test_jarvis_plan_finds_the_services_the_tools_must_find(
    custodian: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jarvis plan` on the benchmark's fleet proposes a restart of exactly the short services.

    moto reports a service made short of its desired count as a deployment in
    progress, which heal rightly leaves to finish: the benchmark compared
    Custodian's 50 with plan's 0 and said only "same services found: NO".
    """
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    with running_moto() as url:
        reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
        with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 - a loopback http URL
            pass
        expected = custodian._populate(url, 45)
        _, env = custodian._environments(url, str(tmp_path))
        jarvis = str(Path(sys.executable).parent / "jarvis")
        custodian._timed([jarvis, "db", "upgrade"], env, str(tmp_path))
        stdout = custodian._timed([jarvis, "plan", "--json"], env, str(tmp_path))[3]

    assert (
        custodian._jarvis_found(stdout)
        == expected
        == {
            "svc-0007",
            "svc-0017",
            "svc-0027",
            "svc-0037",
        }
    )
