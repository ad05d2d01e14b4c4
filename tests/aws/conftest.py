"""Fixtures for the AWS actuator tests: one moto server on loopback, reset per test.

The server runs in-process (`moto.server.ThreadedMotoServer` on 127.0.0.1, a
free port) for the whole session; each test starts from an empty account via
``POST /moto-api/reset``. Clients use dummy credentials given explicitly to a
boto3 session, never through the environment. Every actuator built through
`make_ecs` is checked at teardown: each AWS operation it made must be granted
by ``deploy/aws/jarvis-iam-policy.json``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import boto3
import pytest

from jarvis.actuators.aws.clients import AwsClients, iam_actions
from jarvis.actuators.aws.ecs import EcsActuator, aws_actuators
from jarvis.actuators.aws.s3probe import s3_probes
from jarvis.actuators.base import Sensor
from jarvis.actuators.probes.dependencies import ProbeSensor, dependency_probes
from jarvis.config.aws import AwsSettings
from jarvis.config.probes import ProbeSettings
from tests.aws.moto_server import running_moto

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

POLICY_PATH = Path(__file__).parents[2] / "deploy" / "aws" / "jarvis-iam-policy.json"
REGION = "us-east-1"


def policy_actions() -> set[str]:
    """Every action the IAM policy grants, across its statements."""
    document = json.loads(POLICY_PATH.read_text(encoding="utf-8"))
    granted: set[str] = set()
    for statement in document["Statement"]:
        actions = statement["Action"]
        granted.update([actions] if isinstance(actions, str) else actions)
    return granted


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.current.timestamp()  # it never steps back

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The base URL of a moto server on 127.0.0.1, for the whole session."""
    with running_moto() as url:
        yield url


@pytest.fixture
def moto(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto URL, its state reset; services report all desired tasks running."""
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL
        f"{moto_server}/moto-api/reset", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback URL
        assert response.status == 200
    # moto reads this when a service is created; a test may override it first.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    return moto_server


@pytest.fixture
def session() -> boto3.Session:
    """A boto3 session with explicit dummy credentials (nothing from the environment)."""
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=REGION,
    )


@pytest.fixture
def ecs_client(moto: str, session: boto3.Session) -> Iterator[ECSClient]:
    client = session.client("ecs", endpoint_url=moto)
    yield client
    client.close()


@pytest.fixture
def clock() -> FixedClock:
    """Stands at the real time the test starts: moto filters metrics by real timestamps."""
    return FixedClock()


MakeEcs = Callable[..., EcsActuator]
MakeAws = Callable[..., list[Sensor]]
MakeProbes = Callable[..., ProbeSensor]


@pytest.fixture
def make_aws(moto: str, session: boto3.Session, clock: FixedClock) -> Iterator[MakeAws]:
    """Build the AWS actuators against moto; at teardown, check their calls against the policy."""
    built: list[EcsActuator] = []

    def make(**overrides: Any) -> list[Sensor]:
        settings = AwsSettings.model_validate(
            {"region": REGION, "endpoint_url": moto, "clusters": ["prod", "staging"]} | overrides
        )
        actuators = aws_actuators(
            settings, clock=clock, clients=AwsClients.create(settings, session)
        )
        assert isinstance(actuators[0], EcsActuator)
        built.append(actuators[0])
        return actuators

    yield make
    granted = policy_actions()
    for actuator in built:
        actuator.clients.close()
        for operation in actuator.calls.snapshot():
            missing = [a for a in iam_actions(operation) if a not in granted]
            assert not missing, f"{operation} needs {missing}, not in {POLICY_PATH.name}"


@pytest.fixture
def make_ecs(make_aws: MakeAws) -> MakeEcs:
    """Build just the ECS actuator (see `make_aws`)."""

    def make(**overrides: Any) -> EcsActuator:
        ecs = make_aws(**overrides)[0]
        assert isinstance(ecs, EcsActuator)
        return ecs

    return make


def register_task_definition(ecs: ECSClient, family: str, image: str = "nginx:1.25") -> str:
    answer = ecs.register_task_definition(
        family=family,
        containerDefinitions=[
            {"name": "app", "image": image, "memory": 512, "essential": True},
            {"name": "log-router", "image": "fluent/fluent-bit:3.0", "memory": 64},
        ],
        executionRoleArn="arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        tags=[{"key": "team", "value": "platform"}],
    )
    return answer["taskDefinition"]["taskDefinitionArn"]


def create_fleet(ecs: ECSClient, *, per_cluster: int = 3) -> list[str]:
    """Two clusters (prod, staging) with ``per_cluster`` services each; returns URIs."""
    uris = []
    register_task_definition(ecs, "api")
    for cluster in ("prod", "staging"):
        ecs.create_cluster(clusterName=cluster)
        for index in range(per_cluster):
            name = f"svc-{index}"
            ecs.create_service(
                cluster=cluster,
                serviceName=name,
                taskDefinition="api",
                desiredCount=2,
                launchType="FARGATE",
                tags=[{"key": "jarvis", "value": "managed" if index % 2 == 0 else "no"}],
            )
            uris.append(f"ecs://{cluster}/{name}")
    return uris


@pytest.fixture
def make_probes(make_aws: MakeAws, clock: FixedClock) -> MakeProbes:
    """Build dependency probes as the registry does, their S3 calls on an ECS call log.

    Sharing the ECS actuator's clients puts the probes' S3 calls under the
    teardown check against the IAM policy.
    """

    def make(**probes: Any) -> ProbeSensor:
        settings = ProbeSettings.model_validate(probes)
        ecs = make_aws()[0]
        assert isinstance(ecs, EcsActuator)
        buckets = s3_probes(
            settings, s3=ecs.clients.s3, calls=ecs.calls, limiter=anyio.CapacityLimiter(4)
        )
        return ProbeSensor(
            [*dependency_probes(settings), *buckets],
            clock=clock,
            timeout=settings.timeout_seconds,
        )

    return make
