"""EcsActuator.observe against moto: services, auto scaling bounds and CloudWatch metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import boto3
import pytest

from jarvis.actuators.base import PartialObserveError
from jarvis.model import Health
from tests.aws.conftest import FixedClock, MakeEcs, create_fleet

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDatumTypeDef
    from mypy_boto3_ecs import ECSClient

pytestmark = pytest.mark.anyio

TARGET_GROUP = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
)
LOAD_BALANCER = "app/front/fedcba9876543210"


async def test_observe_lists_every_service_of_both_clusters(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """Every service of both clusters is observed as a healthy typed ResourceState."""
    uris = create_fleet(ecs_client)
    states = await make_ecs(metrics=False).observe()

    assert [str(s.ref) for s in states] == sorted(uris)
    api = states[0]
    assert api.ref.kind == "service"
    assert api.health is Health.HEALTHY
    assert api.version == "api:1"
    assert api.replicas is not None
    assert (api.replicas.desired, api.replicas.running, api.replicas.min) == (2, 2, None)
    assert api.record_attributes()["launch_type"] == "FARGATE"
    assert api.record_attributes()["rollout"] == "completed"
    assert api.record_attributes()["stable_version"] == "api:1"
    deployment = api.record_attributes()["deployments"][0]
    assert deployment["status"] == "PRIMARY"
    assert deployment["completed"] is True
    assert deployment["task_definition"].endswith("task-definition/api:1")


async def test_observe_without_metrics_builds_only_the_clients_it_calls(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """Each boto3 client costs ~0.1 s to build: an observe with metrics and cost off
    (what `jarvis plan` for heal needs) builds ECS and Application Auto Scaling only."""
    create_fleet(ecs_client)
    actuator = make_ecs(metrics=False)
    assert actuator.clients.made() == []
    await actuator.observe()
    assert sorted(actuator.clients.made()) == ["application-autoscaling", "ecs"]
    operations = actuator.calls.snapshot()
    assert not [op for op in operations if op.startswith(("cloudwatch:", "ce:", "s3:"))]


async def test_observe_keeps_only_configured_names_and_tag(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """Service names and a KEY=VALUE tag narrow the observed services."""
    create_fleet(ecs_client)
    by_name = await make_ecs(metrics=False, services=["svc-1"]).observe()
    by_tag = await make_ecs(metrics=False, service_tag="jarvis=managed").observe()

    assert [str(s.ref) for s in by_name] == ["ecs://prod/svc-1", "ecs://staging/svc-1"]
    assert [str(s.ref) for s in by_tag] == [
        "ecs://prod/svc-0",
        "ecs://prod/svc-2",
        "ecs://staging/svc-0",
        "ecs://staging/svc-2",
    ]


async def test_service_with_no_running_task_is_unhealthy(
    make_ecs: MakeEcs, ecs_client: ECSClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service whose desired tasks all fail to run is unhealthy and still rolling out."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")
    create_fleet(ecs_client, per_cluster=1)
    states = await make_ecs(metrics=False).observe()

    assert {s.health for s in states} == {Health.UNHEALTHY}
    assert states[0].detail == "0 of 2 tasks running"
    assert states[0].record_attributes()["rollout"] == "in_progress"
    assert states[0].record_attributes()["stable_version"] is None


async def test_describe_calls_grow_by_batches_of_ten(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """25 services cost 3 DescribeServices calls and 1 ListServices call, not 25."""
    ecs_client.register_task_definition(
        family="api", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}]
    )
    ecs_client.create_cluster(clusterName="prod")
    for index in range(25):
        ecs_client.create_service(
            cluster="prod", serviceName=f"s{index:02}", taskDefinition="api", desiredCount=1
        )
    actuator = make_ecs(metrics=False, clusters=["prod"])
    states = await actuator.observe()

    assert len(states) == 25
    calls = actuator.calls.snapshot()
    assert calls["ecs:DescribeServices"] == 3
    assert calls["ecs:ListServices"] == 1


async def test_scalable_target_bounds_and_owner_are_observed(
    make_ecs: MakeEcs, ecs_client: ECSClient, session: boto3.Session, moto: str
) -> None:
    """A registered scalable target sets replica bounds; under target tracking only the max."""
    create_fleet(ecs_client, per_cluster=1)
    scaling = session.client("application-autoscaling", endpoint_url=moto)
    scaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/prod/svc-0",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=6,
    )
    scaling.put_scaling_policy(
        PolicyName="cpu60",
        ServiceNamespace="ecs",
        ResourceId="service/prod/svc-0",
        ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 60.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
        },
    )
    scaling.close()
    prod, staging = await make_ecs(metrics=False).observe()

    assert prod.replicas is not None
    assert (prod.replicas.min, prod.replicas.max) == (None, 6)
    assert prod.record_attributes()["autoscaling"]["min"] == 1
    assert prod.record_attributes()["min_replicas_owner"] == "application-autoscaling"
    assert prod.record_attributes()["autoscaling"]["policies"] == ["cpu60"]
    assert staging.record_attributes()["autoscaling"] is None
    assert staging.record_attributes()["min_replicas_owner"] is None


async def test_cloudwatch_metrics_are_read_back_in_one_batch(
    make_ecs: MakeEcs,
    ecs_client: ECSClient,
    session: boto3.Session,
    moto: str,
    clock: FixedClock,
) -> None:
    """CPU, memory and load-balancer metrics put to CloudWatch come back per service."""
    ecs_client.register_task_definition(
        family="web", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}]
    )
    ecs_client.create_cluster(clusterName="prod")
    ecs_client.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition="web",
        desiredCount=2,
        loadBalancers=[
            {"targetGroupArn": TARGET_GROUP, "containerName": "app", "containerPort": 80}
        ],
    )
    ecs_client.create_service(cluster="prod", serviceName="worker", taskDefinition="web")
    at = clock.now() - timedelta(seconds=150)
    ecs_dims: list[DimensionTypeDef] = [
        {"Name": "ClusterName", "Value": "prod"},
        {"Name": "ServiceName", "Value": "web"},
    ]
    lb_dims: list[DimensionTypeDef] = [
        {"Name": "LoadBalancer", "Value": LOAD_BALANCER},
        {"Name": "TargetGroup", "Value": TARGET_GROUP.rsplit(":", 1)[-1]},
    ]
    cloudwatch = session.client("cloudwatch", endpoint_url=moto)

    def datum(name: str, dims: list[DimensionTypeDef], value: float) -> MetricDatumTypeDef:
        return {"MetricName": name, "Dimensions": dims, "Value": value, "Timestamp": at}

    cloudwatch.put_metric_data(
        Namespace="AWS/ECS",
        MetricData=[
            datum("CPUUtilization", ecs_dims, 81.5),
            datum("MemoryUtilization", ecs_dims, 40.0),
        ],
    )
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            datum("RequestCount", lb_dims, 1200.0),
            datum("HTTPCode_Target_5XX_Count", lb_dims, 60.0),
            datum("TargetResponseTime", lb_dims, 0.25),
        ],
    )
    cloudwatch.close()
    # moto computes no percentiles (it answers HTTP 500), so ask for the maximum here.
    actuator = make_ecs(clusters=["prod"], latency_stat="Maximum")
    web, worker = await actuator.observe()

    assert web.metrics == {
        "cpu_utilization": 81.5,
        "memory_utilization": 40.0,
        "requests_per_minute": 1200.0,
        "error_rate": 0.05,
        "p95_latency_ms": 250.0,
    }
    assert worker.metrics == {}
    calls = actuator.calls.snapshot()
    assert calls["cloudwatch:GetMetricData"] == 1
    assert calls["cloudwatch:ListMetrics"] == 1


async def test_a_cluster_deleted_since_it_was_configured_hides_only_its_own_services(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """``[aws] clusters`` names one that no longer exists: the others are still observed (and
    healed), and the observe fails in part, naming it, not as the provider being away."""
    uris = create_fleet(ecs_client)
    actuator = make_ecs(metrics=False, clusters=["prod", "staging", "retired"])

    with pytest.raises(PartialObserveError) as failed:
        await actuator.observe()

    assert [str(s.ref) for s in failed.value.states] == sorted(uris)
    assert failed.value.code == "ClusterNotFoundException"
    assert "retired" in str(failed.value)
