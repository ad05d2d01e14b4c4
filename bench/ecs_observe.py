"""Benchmark: one ECS observe over 500 services on a local moto server.

Run with ``uv run python bench/ecs_observe.py [SERVICES]``. Starts moto on
127.0.0.1, creates the services in two clusters, runs three observe ticks and
prints (and writes to ``bench/results/ecs_observe.json``) the wall time and
the AWS API calls of each tick, by operation. It asserts nothing about time:
moto's speed says little about AWS's. What it pins down is the call count,
which must grow as services/10 for DescribeServices, not as services.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import anyio
import boto3

from jarvis.actuators.aws.clients import AwsClients
from jarvis.actuators.aws.ecs import EcsActuator
from jarvis.config.aws import AwsSettings
from jarvis.loop.clock import WallClock

RESULTS = Path(__file__).parent / "results" / "ecs_observe.json"
CLUSTERS = ("prod", "staging")


def _populate(session: boto3.Session, endpoint: str, services: int) -> None:
    ecs = session.client("ecs", endpoint_url=endpoint)
    ecs.register_task_definition(
        family="api", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}]
    )
    for cluster in CLUSTERS:
        ecs.create_cluster(clusterName=cluster)
    for index in range(services):
        ecs.create_service(
            cluster=CLUSTERS[index % len(CLUSTERS)],
            serviceName=f"svc-{index:04}",
            taskDefinition="api",
            desiredCount=2,
        )
    ecs.close()


async def _ticks(actuator: EcsActuator, ticks: int) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for tick in range(1, ticks + 1):
        actuator.calls.reset()
        started = time.perf_counter()
        states = await actuator.observe()
        elapsed = time.perf_counter() - started
        calls = actuator.calls.snapshot()
        results.append(
            {
                "tick": tick,
                "resources": len(states),
                "wall_seconds": round(elapsed, 3),
                "api_calls": sum(calls.values()),
                "calls_by_operation": dict(sorted(calls.items())),
            }
        )
    return results


def main() -> None:
    from moto.server import ThreadedMotoServer

    services = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        session = boto3.Session(
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto's dummy credentials
            region_name="us-east-1",
        )
        started = time.perf_counter()
        _populate(session, endpoint, services)
        setup = time.perf_counter() - started
        settings = AwsSettings(endpoint_url=endpoint, clusters=list(CLUSTERS))
        actuator = EcsActuator(
            settings, clock=WallClock(), clients=AwsClients.create(settings, session)
        )
        ticks = anyio.run(_ticks, actuator, 3)
        actuator.clients.close()
    finally:
        server.stop()
    report = {
        "benchmark": "ecs_observe",
        "services": services,
        "clusters": len(CLUSTERS),
        "max_concurrency": settings.max_concurrency,
        "setup_seconds": round(setup, 3),
        "ticks": ticks,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
