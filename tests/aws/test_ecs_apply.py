"""EcsActuator.apply against moto: scale, restart, rollback and deploy."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import anyio
import boto3
import pytest
from botocore.exceptions import ClientError

from jarvis.actuators.aws.clients import AwsClients, aws_call, sent_unless_refused
from jarvis.actuators.aws.ecs import EcsActuator
from jarvis.actuators.base import ActuatorError
from jarvis.config.aws import AwsSettings
from jarvis.model import (
    Action,
    ActionParams,
    Deploy,
    ErrorKind,
    OutcomeStatus,
    ResourceRef,
    Restart,
    Rollback,
    Scale,
)
from tests.actions import new_key
from tests.aws.conftest import FixedClock, MakeEcs, create_fleet, register_task_definition
from tests.aws.holding_proxy import holding_proxy

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_ecs import ECSClient

pytestmark = pytest.mark.anyio

API = ResourceRef("ecs", "prod/svc-0")


def _action(params: ActionParams) -> Action:
    return Action(API, params, "test", "because")


def _service(ecs: ECSClient, name: str = "svc-0") -> dict[str, object]:
    return dict(ecs.describe_services(cluster="prod", services=[name])["services"][0])


@pytest.fixture
def scaling(session: boto3.Session, moto: str) -> Iterator[ApplicationAutoScalingClient]:
    client = session.client("application-autoscaling", endpoint_url=moto)
    yield client
    client.close()


def _register_target(scaling: ApplicationAutoScalingClient, *, tracking: bool) -> None:
    scaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/prod/svc-0",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=2,
        MaxCapacity=5,
    )
    if tracking:
        scaling.put_scaling_policy(
            PolicyName="cpu",
            ServiceNamespace="ecs",
            ResourceId="service/prod/svc-0",
            ScalableDimension="ecs:service:DesiredCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 50.0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                },
            },
        )


async def test_scale_sets_the_desired_count(make_ecs: MakeEcs, ecs_client: ECSClient) -> None:
    """Scaling a service without an autoscaler sets its desiredCount."""
    create_fleet(ecs_client, per_cluster=1)
    outcome = await make_ecs().apply(_action(Scale(replicas=5)), new_key())

    assert outcome.ok, outcome.detail
    assert _service(ecs_client)["desiredCount"] == 5


async def test_scale_outside_registered_bounds_is_refused(
    make_ecs: MakeEcs, ecs_client: ECSClient, scaling: ApplicationAutoScalingClient
) -> None:
    """A desired count outside the scalable target's min/max is never set."""
    create_fleet(ecs_client, per_cluster=1)
    _register_target(scaling, tracking=False)
    outcome = await make_ecs().apply(_action(Scale(replicas=9)), new_key())

    assert outcome.error_kind is ErrorKind.TERMINAL
    assert outcome.error_code == "OutOfBounds"
    assert _service(ecs_client)["desiredCount"] == 2


async def test_scale_under_target_tracking_moves_the_bounds(
    make_ecs: MakeEcs, ecs_client: ECSClient, scaling: ApplicationAutoScalingClient
) -> None:
    """Under a target-tracking policy a scale-up raises min capacity, not desiredCount."""
    create_fleet(ecs_client, per_cluster=1)
    _register_target(scaling, tracking=True)
    outcome = await make_ecs().apply(_action(Scale(replicas=4)), new_key())

    assert outcome.ok, outcome.detail
    target = scaling.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=["service/prod/svc-0"]
    )["ScalableTargets"][0]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (4, 5)
    assert _service(ecs_client)["desiredCount"] == 2


async def test_a_min_raised_under_target_tracking_is_not_observed_as_a_floor(
    make_ecs: MakeEcs, ecs_client: ECSClient, scaling: ApplicationAutoScalingClient
) -> None:
    """The min capacity Jarvis's own scale-up set is no floor next tick: it can scale back down."""
    create_fleet(ecs_client, per_cluster=1)
    _register_target(scaling, tracking=True)
    ecs = make_ecs(metrics=False)
    assert (await ecs.apply(_action(Scale(replicas=4)), new_key())).ok

    prod = next(s for s in await ecs.observe() if s.ref == API)
    assert prod.replicas is not None
    # The scaling policy clamps its proposal to [replicas.min, replicas.max]: a min of 4
    # here would hold the service at 4 or more for good, ratcheting up with each raise.
    assert (prod.replicas.min, prod.replicas.max) == (None, 5)
    assert prod.record_attributes()["autoscaling"]["min"] == 4

    outcome = await ecs.apply(_action(Scale(replicas=2)), new_key())
    assert outcome.ok, outcome.detail
    target = scaling.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=["service/prod/svc-0"]
    )["ScalableTargets"][0]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 5)


async def test_a_cluster_configured_by_arn_is_observed_and_changed_by_name(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """A cluster ARN in [aws] gives ``ecs://prod/svc-0``, which apply accepts."""
    create_fleet(ecs_client, per_cluster=1)
    ecs = make_ecs(metrics=False, clusters=["arn:aws:ecs:us-east-1:123456789012:cluster/prod"])
    assert [str(s.ref) for s in await ecs.observe()] == [str(API)]
    outcome = await ecs.apply(_action(Scale(replicas=3)), new_key())
    assert outcome.ok, outcome.detail
    assert _service(ecs_client)["desiredCount"] == 3


async def test_restart_forces_a_new_deployment(make_ecs: MakeEcs, ecs_client: ECSClient) -> None:
    """A restart forces a new deployment of the same task definition."""
    create_fleet(ecs_client, per_cluster=1)
    before = _service(ecs_client)["deployments"]
    outcome = await make_ecs().apply(_action(Restart()), new_key())
    after = _service(ecs_client)["deployments"]

    assert outcome.ok
    assert before[0]["id"] != after[0]["id"]  # type: ignore[index]  # a list of dicts


async def test_deploy_clones_the_task_definition_with_the_new_image(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """Deploy registers a new revision that differs only in the app image, and runs it."""
    create_fleet(ecs_client, per_cluster=1)
    outcome = await make_ecs().apply(_action(Deploy("nginx:1.27")), new_key())

    assert outcome.ok, outcome.detail
    assert "api:2" in outcome.detail
    service = _service(ecs_client)
    assert str(service["taskDefinition"]).endswith("task-definition/api:2")
    new = ecs_client.describe_task_definition(taskDefinition="api:2", include=["TAGS"])
    images = {c["name"]: c["image"] for c in new["taskDefinition"]["containerDefinitions"]}
    assert images == {"app": "nginx:1.27", "log-router": "fluent/fluent-bit:3.0"}
    assert new["taskDefinition"]["executionRoleArn"].endswith("role/ecsTaskExecutionRole")
    assert new["tags"] == [{"key": "team", "value": "platform"}]


async def test_rollback_returns_to_the_given_task_definition(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """Rollback after a deploy puts the service back on the given revision."""
    create_fleet(ecs_client, per_cluster=1)
    actuator = make_ecs(metrics=False)
    assert (await actuator.apply(_action(Deploy("nginx:broken")), new_key())).ok
    outcome = await actuator.apply(_action(Rollback("api:1")), new_key())
    states = await actuator.observe()

    assert outcome.ok, outcome.detail
    assert states[0].version == "api:1"


async def test_deploy_refuses_when_the_container_is_ambiguous(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """An image matching none of several containers is a terminal error, nothing registered."""
    create_fleet(ecs_client, per_cluster=1)
    outcome = await make_ecs().apply(_action(Deploy("redis:7")), new_key())

    assert outcome.error_kind is ErrorKind.TERMINAL
    assert outcome.error_code == "AmbiguousContainer"
    assert ecs_client.list_task_definitions(familyPrefix="api")["taskDefinitionArns"][-1].endswith(
        "api:1"
    )


@pytest.mark.parametrize(
    "params",
    [Scale(replicas=3), Restart(), Deploy("nginx:1.27")],
    ids=["scale", "restart", "deploy"],
)
async def test_a_service_deleted_since_observe_is_not_changed(
    make_ecs: MakeEcs, ecs_client: ECSClient, params: ActionParams
) -> None:
    """A service deleted after observe (INACTIVE) fails as gone before any write."""
    create_fleet(ecs_client, per_cluster=1)
    ecs = make_ecs(metrics=False)
    assert API in {s.ref for s in await ecs.observe()}
    ecs_client.delete_service(cluster="prod", service="svc-0", force=True)

    outcome = await ecs.apply(_action(params), new_key())

    assert not outcome.ok
    assert (outcome.error_kind, outcome.error_code) == (
        ErrorKind.GONE,
        "ServiceNotActiveException",
    )
    assert "inactive" in outcome.detail
    calls = ecs.calls.snapshot()
    assert not {"ecs:UpdateService", "ecs:RegisterTaskDefinition", "ecs:TagResource"} & set(calls)
    assert ecs_client.list_task_definitions(familyPrefix="api")["taskDefinitionArns"][-1].endswith(
        "api:1"
    )


async def test_unknown_service_is_gone_with_the_aws_code(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """Restarting a service ECS does not know fails as gone with its error code."""
    create_fleet(ecs_client, per_cluster=1)
    outcome = await make_ecs().apply(
        Action(ResourceRef("ecs", "prod/ghost"), Restart(), "test", "because"), new_key()
    )

    assert outcome.error_kind is ErrorKind.GONE
    assert outcome.error_code == "ServiceNotFoundException"


async def test_a_service_in_a_cluster_ecs_does_not_know_is_gone(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """A configured cluster ECS no longer knows (deleted, services and all): ECS answers
    ClusterNotFoundException, and the restart fails as gone, nothing written."""
    create_fleet(ecs_client, per_cluster=1)
    ecs = make_ecs(clusters=["prod", "retired"])
    target = ResourceRef("ecs", "retired/api")

    outcome = await ecs.apply(Action(target, Restart(), "test", "because"), new_key())

    assert (outcome.error_kind, outcome.error_code) == (ErrorKind.GONE, "ClusterNotFoundException")
    assert "ecs:UpdateService" not in ecs.calls.snapshot()


async def test_targets_outside_the_configuration_are_refused(make_ecs: MakeEcs) -> None:
    """An action on a cluster Jarvis does not manage never reaches AWS."""
    actuator = make_ecs()
    outcome = await actuator.apply(
        Action(ResourceRef("ecs", "other/api"), Restart(), "test", "because"), new_key()
    )

    assert outcome.error_kind is ErrorKind.TERMINAL
    assert actuator.calls.snapshot() == {}


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


async def test_timeout_is_a_temporary_failure(
    silent_endpoint: str, session: boto3.Session, clock: FixedClock
) -> None:
    """An endpoint that never answers fails the action as temporary, code Timeout: the
    idempotency check timed out, so no change was sent and the outcome is known."""
    settings = AwsSettings(
        endpoint_url=silent_endpoint, clusters=["prod"], max_attempts=1, read_timeout=0.3
    )
    actuator = EcsActuator(settings, clock=clock, clients=AwsClients.create(settings, session))
    try:
        outcome = await actuator.apply(_action(Restart()), new_key())
    finally:
        await actuator.aclose()

    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error_kind is ErrorKind.TEMPORARY
    assert outcome.error_code == "Timeout"


async def test_a_change_whose_answer_is_lost_is_timed_out_not_failed(
    make_ecs: MakeEcs, ecs_client: ECSClient, moto: str
) -> None:
    """ECS made the change but its answer outlasts the read timeout: the outcome is timed
    out (recorded unknown), not failed, since the change may have been made."""
    create_fleet(ecs_client, per_cluster=1)
    with holding_proxy(moto) as proxy:
        actuator = make_ecs(endpoint_url=proxy.url, metrics=False, read_timeout=0.5)
        proxy.hold("UpdateService", after_moto=True)
        outcome = await actuator.apply(_action(Restart()), new_key())
        proxy.release()

    assert proxy.forwarded("UpdateService") == 1
    assert outcome.status is OutcomeStatus.TIMED_OUT, outcome
    assert outcome.error_code == "Timeout"


async def test_a_change_that_never_connected_is_a_failure(
    session: boto3.Session, clock: FixedClock
) -> None:
    """A change refused before it was sent (no connection made) did not happen: failed."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: every connection is refused
    settings = AwsSettings(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    clients = AwsClients.create(settings, session)
    try:
        with pytest.raises(ActuatorError) as raised:
            await aws_call(
                "ecs:UpdateService",
                lambda: clients.ecs_changes.update_service(
                    cluster="prod", service="svc-0", forceNewDeployment=True
                ),
                anyio.CapacityLimiter(1),
                change=True,
            )
    finally:
        clients.close()

    assert raised.value.outcome().status is OutcomeStatus.FAILED
    assert raised.value.code == "ConnectionError"


class _Failing(BaseHTTPRequestHandler):
    """Answers every request with a 500, counting them on its server."""

    server: _Counting

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests += 1
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        """Quiet: the test reads the count."""


class _Counting(ThreadingHTTPServer):
    daemon_threads = True
    requests = 0


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[_Counting]:
    """``handler`` on a counting HTTP server on 127.0.0.1, stopped at the end."""
    server = _Counting(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


@pytest.fixture
def failing_endpoint() -> Iterator[_Counting]:
    """An HTTP server on 127.0.0.1 that fails every request with a 500."""
    with _serving(_Failing) as server:
        yield server


@pytest.mark.parametrize("attempts", [1, 2])
def test_max_attempts_counts_the_first_attempt(
    failing_endpoint: _Counting, session: boto3.Session, attempts: int
) -> None:
    """``max_attempts`` is every request a read makes, the first included, as documented."""
    port = failing_endpoint.server_address[1]
    settings = AwsSettings(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=attempts)
    clients = AwsClients.create(settings, session)
    try:
        with pytest.raises(ClientError):
            clients.ecs.list_clusters()
    finally:
        clients.close()

    assert failing_endpoint.requests == attempts


class _Throttling(BaseHTTPRequestHandler):
    """Refuses every request as ECS does when its API rate is exceeded, counting them."""

    server: _Counting

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests += 1
        body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        """Quiet: the test reads the count."""


@pytest.fixture
def throttling_endpoint() -> Iterator[_Counting]:
    """An HTTP server on 127.0.0.1 that throttles every request."""
    with _serving(_Throttling) as server:
        yield server


def _restart_through(endpoint: _Counting, session: boto3.Session, attempts: int) -> None:
    port = endpoint.server_address[1]
    settings = AwsSettings(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=attempts)
    clients = AwsClients.create(settings, session)
    try:
        with pytest.raises(ClientError):
            sent_unless_refused(
                lambda: clients.ecs_changes.update_service(
                    cluster="prod", service="svc-0", forceNewDeployment=True
                ),
                clients.max_attempts,
                sleep=lambda _seconds: None,
            )
    finally:
        clients.close()


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_throttled_change_is_sent_again_up_to_max_attempts(
    throttling_endpoint: _Counting, session: boto3.Session, attempts: int
) -> None:
    """A throttled UpdateService was not acted on: sending it again is safe, and without it
    every throttled change cost an attempt of the retry budget (a throttled fleet escalated)."""
    _restart_through(throttling_endpoint, session, attempts)

    assert throttling_endpoint.requests == attempts


def test_a_change_answered_with_a_server_error_is_not_sent_again(
    failing_endpoint: _Counting, session: boto3.Session
) -> None:
    """A 5xx may follow a change ECS made: the retry budget decides, on a later tick."""
    _restart_through(failing_endpoint, session, 3)

    assert failing_endpoint.requests == 1


async def test_a_replayed_key_is_found_in_the_service_tags(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """A deploy tags the service with its key; the replay registers and updates nothing."""
    create_fleet(ecs_client, per_cluster=1)
    actuator = make_ecs(metrics=False)
    key = new_key()
    first = await actuator.apply(_action(Deploy("nginx:1.27")), key)
    calls = actuator.calls.snapshot()

    replay = await actuator.apply(_action(Deploy("nginx:1.27")), key)

    assert first.ok, first.detail
    assert replay.ok and "already applied" in replay.detail
    after = actuator.calls.snapshot()
    changes = ("ecs:UpdateService", "ecs:RegisterTaskDefinition", "ecs:TagResource")
    assert [after.get(c) for c in changes] == [calls.get(c) for c in changes] == [1, 1, 1]
    service = ecs_client.describe_services(cluster="prod", services=["svc-0"], include=["TAGS"])
    assert {"key": "jarvis:action-key", "value": key} in service["services"][0]["tags"]
    assert str(_service(ecs_client)["taskDefinition"]).endswith("task-definition/api:2")


async def test_deploy_leaves_the_tags_aws_reserves_off_the_new_revision(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """A task definition CloudFormation created carries ``aws:cloudformation:*`` tags;
    RegisterTaskDefinition refuses any tag key starting with ``aws:`` (AWS reserves the
    prefix, of keys and values, and sets those tags itself), so a deploy copies the others."""
    create_fleet(ecs_client, per_cluster=1)
    current = ecs_client.describe_task_definition(taskDefinition="api")["taskDefinition"]
    ecs_client.tag_resource(
        resourceArn=current["taskDefinitionArn"],
        tags=[
            {"key": "aws:cloudformation:stack-name", "value": "prod"},
            {"key": "AWS:Whatever", "value": "x"},
            {"key": "origin", "value": "aws:generated"},
        ],
    )

    outcome = await make_ecs().apply(_action(Deploy("nginx:1.27")), new_key())

    assert outcome.ok, outcome.detail
    new = ecs_client.describe_task_definition(taskDefinition="api:2", include=["TAGS"])
    assert new["tags"] == [{"key": "team", "value": "platform"}]


@pytest.mark.parametrize(
    "version",
    ["admin:1", "admin", "arn:aws:ecs:us-east-1:999999999999:task-definition/api:1"],
    ids=["other-family", "other-family-latest", "other-account"],
)
async def test_a_rollback_to_another_family_or_account_is_refused(
    make_ecs: MakeEcs, ecs_client: ECSClient, version: str
) -> None:
    """A rollback returns to a revision of the service's own family, in its own account."""
    create_fleet(ecs_client, per_cluster=1)
    register_task_definition(ecs_client, "admin")  # another service's, maybe with a wider role
    actuator = make_ecs(metrics=False)

    outcome = await actuator.apply(_action(Rollback(version)), new_key())

    assert outcome.error_kind is ErrorKind.TERMINAL, outcome.detail
    assert outcome.error_code == "OtherTaskDefinitionFamily"
    assert str(_service(ecs_client)["taskDefinition"]).endswith("task-definition/api:1")


async def test_a_rollback_across_a_family_rename_returns_to_the_deployment_still_present(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """The families of the service's deployments still present count as its own."""
    create_fleet(ecs_client, per_cluster=1)
    register_task_definition(ecs_client, "api-v2")
    ecs_client.update_service(cluster="prod", service="svc-0", taskDefinition="api-v2:1")
    actuator = make_ecs(metrics=False)

    outcome = await actuator.apply(_action(Rollback("api:1")), new_key())

    assert outcome.ok, outcome.detail
    assert str(_service(ecs_client)["taskDefinition"]).endswith("api:1")
