"""The IAM policy in deploy/aws grants exactly the actions the AWS actuators use.

Every test that builds actuators through `make_aws` already fails if an
operation it made is missing from the policy; this test drives every kind of
call once and fails if the policy grants anything that was never needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import boto3
import pytest

from jarvis.actuators.aws.clients import iam_actions
from jarvis.actuators.aws.ecs import EcsActuator
from jarvis.actuators.aws.route53 import Route53Actuator
from jarvis.actuators.aws.s3probe import s3_probes
from jarvis.actuators.probes.dependencies import ProbeSensor
from jarvis.config.probes import ProbeSettings
from jarvis.model import Action, Deploy, ResourceRef, Restart, Rollback, Scale, SetDnsWeights
from tests.actions import new_key
from tests.aws.conftest import FixedClock, MakeAws, create_fleet, policy_actions
from tests.aws.route53_zone import NAME, create_zone

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

pytestmark = pytest.mark.anyio

TARGET_GROUP = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
)


async def test_policy_grants_exactly_the_actions_used(
    make_aws: MakeAws, ecs_client: ECSClient, session: boto3.Session, moto: str
) -> None:
    """Observe, every action kind, probes, cost and failover use every granted action, no other."""
    create_fleet(ecs_client, per_cluster=1)
    ecs_client.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition="api",
        desiredCount=1,
        loadBalancers=[
            {"targetGroupArn": TARGET_GROUP, "containerName": "app", "containerPort": 80}
        ],
    )
    scaling = session.client("application-autoscaling", endpoint_url=moto)
    scaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/prod/web",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=4,
    )
    scaling.put_scaling_policy(
        PolicyName="cpu",
        ServiceNamespace="ecs",
        ResourceId="service/prod/web",
        ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
        },
    )
    scaling.close()
    s3 = session.client("s3", endpoint_url=moto)
    s3.create_bucket(Bucket="media")
    s3.put_object(Bucket="media", Key="jarvis/canary.txt", Body=b"ok")
    s3.close()
    ecs, cost = make_aws(cost=True)
    assert isinstance(ecs, EcsActuator)
    bucket = ProbeSettings.model_validate({"s3": [{"bucket": "media"}]})
    probes = ProbeSensor(
        s3_probes(bucket, s3=ecs.clients.s3, calls=ecs.calls, limiter=anyio.CapacityLimiter(1)),
        clock=FixedClock(),
        timeout=3.0,
    )

    for actuator in (ecs, probes, cost):
        assert await actuator.observe()
    api, web = ResourceRef("ecs", "prod/svc-0"), ResourceRef("ecs", "prod/web")
    for action in (
        Action(web, Scale(replicas=3), "t", "r"),
        Action(api, Restart(), "t", "r"),
        Action(api, Deploy("nginx:1.27"), "t", "r"),
        Action(api, Rollback("api:1"), "t", "r"),
    ):
        outcome = await ecs.apply(action, new_key())
        assert outcome.ok, outcome.detail

    # Failover's Route 53 calls, on the same clients (and so the same call log).
    setup = session.client("route53", endpoint_url=moto)
    zone = create_zone(setup, {"a": 100, "b": 100})
    setup.close()
    dns = Route53Actuator([(zone, NAME, "A")], ecs.clients.route53, clock=FixedClock())
    assert await dns.observe()
    record = ResourceRef("route53", f"{zone}/{NAME}/A", "dns_record")
    outcome = await dns.apply(
        Action(record, SetDnsWeights(record_weights={"a": 0, "b": 100}), "t", "r"), new_key()
    )
    assert outcome.ok, outcome.detail

    used = {action for operation in ecs.calls.snapshot() for action in iam_actions(operation)}
    assert sorted(used) == sorted(policy_actions())
