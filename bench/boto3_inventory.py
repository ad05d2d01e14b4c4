"""Benchmark 8's floor: the least a Python program does to find the short ECS services.

boto3 and nothing else. It lists each cluster's services, describes them ten
at a time (the most ``DescribeServices`` takes), on as many threads as Jarvis's
ECS actuator uses by default, and prints the name of every service running
fewer tasks than desired, one per line. Any tool that reads the fleet through
boto3, Jarvis or Cloud Custodian, pays at least this: the interpreter,
boto3's import and client, and the server's answers. `custodian.py` runs it as
a whole process beside the two tools, so their times can be read against it.

With ``--libraries`` it first imports the libraries every Jarvis command
loads before any of its own code (`LIBRARIES`): the floor of a Jarvis built on
them, however little its own code cost.

``python bench/boto3_inventory.py [--libraries] CLUSTER...``; the endpoint,
region and credentials come from the environment (``AWS_ENDPOINT_URL`` and the
rest).
"""

from __future__ import annotations

import importlib
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

THREADS = 8
"""`AwsSettings.max_concurrency`'s default: the same parallelism as `jarvis plan`."""
BATCH = 10
"""The most services one ``DescribeServices`` call takes."""
LIBRARIES = ("anyio", "pydantic_settings", "structlog", "typer")
"""The design's libraries under every command: its loop, settings, logs and CLI."""


def short_services(clusters: list[str]) -> list[str]:
    """The services of ``clusters`` running fewer tasks than desired, in listing order."""
    ecs = boto3.client("ecs")  # boto3's clients may be shared between threads
    batches: list[tuple[str, list[str]]] = []
    for cluster in clusters:
        pages = ecs.get_paginator("list_services").paginate(cluster=cluster)
        arns = [arn for page in pages for arn in page["serviceArns"]]
        batches += [(cluster, arns[i : i + BATCH]) for i in range(0, len(arns), BATCH)]

    def short(batch: tuple[str, list[str]]) -> list[str]:
        cluster, arns = batch
        described = ecs.describe_services(cluster=cluster, services=arns)["services"]
        return [s["serviceName"] for s in described if s["runningCount"] < s["desiredCount"]]

    with ThreadPoolExecutor(THREADS) as pool:
        return [name for names in pool.map(short, batches) for name in names]


if __name__ == "__main__":
    clusters = sys.argv[1:]
    if clusters[:1] == ["--libraries"]:
        del clusters[0]
        for library in LIBRARIES:
            importlib.import_module(library)
    print("\n".join(short_services(clusters)))
