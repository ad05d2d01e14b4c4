"""Benchmark 8: `jarvis plan` against Cloud Custodian on the same 500 ECS services.

What an SRE would otherwise run to find ECS services with fewer tasks running
than desired is a Custodian policy; `jarvis plan` answers the same question
(the heal policy, restarting degraded services too, in a dry-run tick that
records nothing). Both run as whole processes against one moto server on
127.0.0.1, interleaved, several times; the benchmark reports median wall and
CPU seconds and peak memory (each process's own high-water resident set,
sampled from ``/proc`` while it runs; see `_timed`), Jarvis's as multiples of
Custodian's (target: at most 0.6x the wall time), and whether both found the
same services.

Beside them run two floors, `boto3_inventory.py`: a bare boto3 script that
asks the fleet the same question and does nothing else, and the same script
importing first the libraries every Jarvis command loads (`LIBRARIES`). Both
tools pay at least what the first pays (the interpreter, boto3, the server's
answers), and a Jarvis on those libraries what the second pays, however
little its own code cost: their times over Custodian's are the least the
ratio above could be.

Custodian keeps the resources it describes in a cache file for 15 minutes by
default, and a run that finds them there calls no API at all: every run but
the first would then answer from a file instead of from the fleet. Both tools
must read the fleet as it is now, so Custodian runs with ``--cache-period 0``,
and the benchmark records the API calls each Custodian run reports (its
``api-stats``) to show it. Jarvis's modules are byte-compiled first, as an
installed package's are (this machine sets ``PYTHONDONTWRITEBYTECODE``).

Custodian (the ``c7n`` package from PyPI) is installed by this benchmark into
a throw-away virtual environment; it is never a dependency of Jarvis. Pass
``--venv DIR`` to reuse one between runs. Of the services, one in ten wants
three tasks and runs two: those are the ones both must find.
"""

from __future__ import annotations

import argparse
import compileall
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, save

TARGET_RATIO = 0.6
CLUSTERS = ("prod", "staging")
POLICY = """\
policies:
  - name: ecs-unhealthy
    resource: aws.ecs-service
    filters:
      - type: value
        key: runningCount
        op: less-than
        value_type: expr
        value: desiredCount
"""


def _custodian_venv(path: Path) -> Path:
    """A virtual environment with c7n in it; created (and c7n installed) when absent."""
    custodian = path / "bin" / "custodian"
    if custodian.exists():
        return custodian
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run(
        [str(path / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "c7n"],
        check=True,
    )
    return custodian


def _populate(endpoint: str, services: int) -> set[str]:
    """Create the fleet; return the names of the services running fewer than desired."""
    import boto3

    ecs = boto3.Session(
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto's dummy credentials
        region_name="us-east-1",
    ).client("ecs", endpoint_url=endpoint)
    ecs.register_task_definition(
        family="api", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}]
    )
    for cluster in CLUSTERS:
        ecs.create_cluster(clusterName=cluster)
    short: set[str] = set()
    for index in range(services):
        name = f"svc-{index:04}"
        # moto starts every service with MOTO_ECS_SERVICE_RUNNING (2) tasks running.
        desired = 3 if index % 10 == 7 else 2
        if desired == 3:
            short.add(name)
        ecs.create_service(
            cluster=CLUSTERS[index % len(CLUSTERS)],
            serviceName=name,
            taskDefinition="api",
            desiredCount=desired,
        )
    ecs.close()
    _deployed(short)
    return short


def _deployed(names: set[str]) -> None:
    """Mark the deployments of services ``names`` completed, in moto's own backend.

    moto reports a service made short of its desired count as a deployment in
    progress, and heal (rightly) leaves a rollout in progress to finish, so
    `jarvis plan` found none of the 50. The question both tools answer is a
    service that finished deploying and then lost a task; moto has no call that
    loses one, so its in-process backend (the server runs in this process) is
    set as ECS would report it. Custodian's filter reads only the counts.
    """
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    for service in ecs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].services.values():
        if service.name in names:
            for deployment in service.deployments:
                deployment["rolloutState"] = "COMPLETED"
                deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."


def _timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak resident MiB, stdout) of one whole process.

    The peak is the process's own ``VmHWM``, read from ``/proc`` every 5 ms
    while it runs: a high-water mark, so only what it allocates in its last
    5 ms can be missed. Not ``wait4``'s ``ru_maxrss``: Linux carries that
    across ``exec`` from the fork, so every child would read at least this
    benchmark's own size (moto's server runs in it).
    """
    started = time.perf_counter()
    peak_kib = 0
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak_kib = max(peak_kib, _high_water_kib(process.pid))
            time.sleep(0.005)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, peak_kib / 1024, text


def _high_water_kib(pid: int) -> int:
    """A running process's peak resident set (``VmHWM``) in KiB; 0 once it has none."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0  # a zombie: its memory is gone


def _custodian_found(output: Path) -> tuple[set[str], int]:
    """The services Custodian's policy matched, and how many API calls it made for them."""
    resources = json.loads((output / "ecs-unhealthy" / "resources.json").read_text())
    metadata = json.loads((output / "ecs-unhealthy" / "metadata.json").read_text())
    return {r["serviceName"] for r in resources}, sum(metadata.get("api-stats", {}).values())


def _jarvis_found(stdout: str) -> set[str]:
    """The services `jarvis plan --json` would restart (one object per tick, its decisions)."""
    ticks = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    rows = [row for tick in ticks for row in tick["decisions"]]
    return {row["resource"].rsplit("/", 1)[-1] for row in rows if row["action"] == "restart"}


def _environments(endpoint: str, scratch: str) -> tuple[dict[str, str], dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JARVIS_", "AWS_"))}
    aws = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    custodian = {**base, **aws, "AWS_ENDPOINT_URL": endpoint}
    jarvis = {
        **base,
        **aws,
        "JARVIS_DATABASE_URL": f"sqlite+aiosqlite:///{scratch}/jarvis.db",
        "JARVIS_SPOOL_PATH": f"{scratch}/spool.jsonl",
        "JARVIS_LOG_LEVEL": "error",
        "JARVIS_AWS__ENDPOINT_URL": endpoint,
        "JARVIS_AWS__CLUSTERS": json.dumps(list(CLUSTERS)),
        "JARVIS_AWS__METRICS": "false",
        "JARVIS_SIMULATED__ENABLED": "false",
        "JARVIS_HEAL__RESTART_DEGRADED": "true",
        "JARVIS_SCALING__ENABLED": "false",
        "JARVIS_ROLLBACK__ENABLED": "false",
    }
    return custodian, jarvis


def _measure(args: argparse.Namespace, custodian: Path, scratch: str) -> dict[str, Any]:
    from moto.server import ThreadedMotoServer

    os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        expected = _populate(endpoint, args.services)
        custodian_env, jarvis_env = _environments(endpoint, scratch)
        jarvis = str(Path(sys.executable).parent / "jarvis")
        _timed([jarvis, "db", "upgrade"], jarvis_env, scratch)
        policy = Path(scratch) / "policy.yml"
        policy.write_text(POLICY)
        output = Path(scratch) / "out"
        floor = [sys.executable, str(Path(__file__).with_name("boto3_inventory.py"))]
        floors = {"boto3": [*floor, *CLUSTERS], "libraries": [*floor, "--libraries", *CLUSTERS]}
        runs: dict[str, list[tuple[float, float, float]]] = {
            "custodian": [],
            "jarvis": [],
            **{name: [] for name in floors},
        }
        found: dict[str, set[str]] = {}
        calls: list[int] = []
        for _ in range(args.runs):
            shutil.rmtree(output, ignore_errors=True)
            argv = [str(custodian), "run", "--cache-period", "0", "-s", str(output)]
            wall, cpu, rss, _ = _timed(
                [*argv, "--region", "us-east-1", str(policy)], custodian_env, scratch
            )
            runs["custodian"].append((wall, cpu, rss))
            found["custodian"], made = _custodian_found(output)
            calls.append(made)
            wall, cpu, rss, stdout = _timed([jarvis, "plan", "--json"], jarvis_env, scratch)
            runs["jarvis"].append((wall, cpu, rss))
            found["jarvis"] = _jarvis_found(stdout)
            for name, argv in floors.items():
                wall, cpu, rss, stdout = _timed(argv, custodian_env, scratch)
                runs[name].append((wall, cpu, rss))
                found[name] = set(stdout.split())
    finally:
        server.stop()
    return {"runs": runs, "found": found, "expected": expected, "custodian_calls": calls}


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench/run.py custodian")
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--venv", type=Path, help="Reuse this c7n environment (kept).")
    args = parser.parse_args(argv)
    # As an installed package would be: this machine sets PYTHONDONTWRITEBYTECODE,
    # so without it every `jarvis plan` would compile Jarvis's modules again.
    compileall.compile_dir(ROOT / "jarvis", quiet=1)
    with tempfile.TemporaryDirectory() as scratch:
        custodian = _custodian_venv(args.venv or Path(scratch) / "c7n-venv")
        measured = _measure(args, custodian, scratch)
    runs: dict[str, list[tuple[float, float, float]]] = measured["runs"]
    found, expected = measured["found"], measured["expected"]
    medians = {
        tool: {
            "wall_s": round(statistics.median(w for w, _, _ in samples), 3),
            "cpu_s": round(statistics.median(c for _, c, _ in samples), 3),
            "max_rss_mib": round(statistics.median(m for _, _, m in samples), 1),
        }
        for tool, samples in runs.items()
    }

    def ratio(tool: str, over: str, measure: int = 0) -> float:
        """The median, over rounds, of ``tool``'s measure over ``over``'s in the same round."""
        rounds = zip(runs[tool], runs[over], strict=True)
        return statistics.median(a[measure] / b[measure] for a, b in rounds)

    wall_ratio, cpu_ratio, rss_ratio = (ratio("jarvis", "custodian", m) for m in range(3))
    floor_ratio = ratio("boto3", "custodian")
    libraries_ratio = ratio("libraries", "custodian")
    over_floor = ratio("jarvis", "boto3")
    same = all(found[tool] == expected for tool in runs)
    calls = measured["custodian_calls"]
    calls_text = f"{min(calls)}" if min(calls) == max(calls) else f"{min(calls)}-{max(calls)}"
    ratios = {
        "wall_ratio": round(wall_ratio, 2),
        "floor_ratio": round(floor_ratio, 2),
        "libraries_ratio": round(libraries_ratio, 2),
    }
    print(medians, {**ratios, "same": same}, flush=True)
    return save(
        "custodian",
        {
            "services": args.services,
            "runs": runs,
            "median": medians,
            "jarvis_over_custodian": {
                "wall": round(wall_ratio, 2),
                "cpu": round(cpu_ratio, 2),
                "max_rss": round(rss_ratio, 2),
            },
            "floors_over_custodian": {
                "boto3": round(floor_ratio, 2),
                "boto3_and_libraries": round(libraries_ratio, 2),
            },
            "jarvis_over_boto3": {"wall": round(over_floor, 2)},
            "custodian_api_calls": measured["custodian_calls"],
            "found": {
                "expected": len(expected),
                "jarvis": len(found["jarvis"]),
                "custodian": len(found["custodian"]),
                "boto3": len(found["boto3"]),
                "boto3_and_libraries": len(found["libraries"]),
                "same_set": same,
            },
            "summary": [
                {
                    "benchmark": "8. `jarvis plan` vs Cloud Custodian",
                    "measure": f"whole process, {args.services} ECS services on moto, wall "
                    "(median of pairs)",
                    "target": f"<= {TARGET_RATIO:g}x Custodian",
                    "measured": f"{wall_ratio:.2f}x ({medians['jarvis']['wall_s']:.2f} s vs "
                    f"{medians['custodian']['wall_s']:.2f} s; CPU {cpu_ratio:.2f}x; peak memory "
                    f"{medians['jarvis']['max_rss_mib']:.0f} MiB vs "
                    f"{medians['custodian']['max_rss_mib']:.0f} MiB, {rss_ratio:.2f}x); "
                    f"same {len(expected)} services found: {'yes' if same else 'NO'}; "
                    f"Custodian's API calls a run: {calls_text}; floors: a bare boto3 "
                    f"script asking the same {floor_ratio:.2f}x Custodian (plan "
                    f"{over_floor:.2f}x it), the script after importing the libraries "
                    f"every Jarvis command loads {libraries_ratio:.2f}x",
                    "meets": wall_ratio <= TARGET_RATIO and same,
                }
            ],
        },
    )
