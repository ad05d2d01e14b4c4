"""deploy/aws: the task definition and service pass botocore's own validation and register on moto.

botocore's `ParamValidator` checks each file against the ECS API model's input
shape for `RegisterTaskDefinition` and `CreateService` (unknown keys, types,
required members), as the AWS CLI does before sending. moto then registers
both, with the roles created from the trust and permission policies, so the
wiring between the files is exercised too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from jarvis.config.sections import LoopSettings
from tests.deploy.conftest import DEPLOY, load_yaml

AWS = DEPLOY / "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # the placeholder account in the files, and moto's default
#: Seconds the HTTP server waits for in-flight requests after the loop stops.
HTTP_SHUTDOWN_SECONDS = 2.0


def task_definition() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(AWS / "task-definition.yaml")
    return document


def service() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(AWS / "service.yaml")
    return document


def policy(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((AWS / name).read_text(encoding="utf-8"))
    return document


def validation_errors(operation: str, params: dict[str, Any]) -> str:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model(operation).input_shape
    assert shape is not None
    report = ParamValidator().validate(params, shape)
    return str(report.generate_report()) if report.has_errors() else ""


def container() -> dict[str, Any]:
    (only,) = task_definition()["containerDefinitions"]
    return dict(only)


def max_shutdown_grace() -> float:
    field = LoopSettings.model_fields["shutdown_grace"]
    (le,) = [m.le for m in field.metadata if hasattr(m, "le")]
    return float(le)


def test_the_task_definition_passes_botocore_validation() -> None:
    """RegisterTaskDefinition's input shape accepts the file as it is."""
    assert validation_errors("RegisterTaskDefinition", task_definition()) == ""


def test_the_service_passes_botocore_validation() -> None:
    """CreateService's input shape accepts the file as it is."""
    assert validation_errors("CreateService", service()) == ""


def test_validation_catches_a_misspelt_key() -> None:
    """The validator used above refuses an unknown member, so a typo cannot pass."""
    broken = {**task_definition(), "stopTimout": 30}

    assert "stopTimout" in validation_errors("RegisterTaskDefinition", broken)


def test_the_task_runs_on_fargate_with_health_logs_and_secrets() -> None:
    """Fargate, /healthz health check, awslogs, secrets by ARN, and no secret in plain env."""
    definition = task_definition()
    jarvis = container()
    plain = {e["name"] for e in jarvis["environment"]}
    secrets = {s["name"]: s["valueFrom"] for s in jarvis["secrets"]}

    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    assert "/healthz" in " ".join(jarvis["healthCheck"]["command"])
    assert jarvis["healthCheck"]["command"][0] == "CMD"
    assert jarvis["logConfiguration"]["logDriver"] == "awslogs"
    assert set(secrets) == {"JARVIS_DATABASE_URL", "JARVIS_ADMIN_TOKEN", "JARVIS_READ_TOKEN"}
    assert all(
        arn.startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:")) for arn in secrets.values()
    )
    assert not plain & set(secrets)
    assert jarvis["entryPoint"] + jarvis["command"] == ["jarvis", "run"]


def test_stop_timeout_outlasts_the_longest_shutdown_grace() -> None:
    """stopTimeout exceeds the largest allowed loop.shutdown_grace plus the HTTP server's wait."""
    assert container()["stopTimeout"] > max_shutdown_grace() + HTTP_SHUTDOWN_SECONDS


def test_the_service_runs_a_standby_and_deploys_without_a_gap() -> None:
    """Two tasks (one leads, one stands by); a deployment starts new tasks before old ones stop."""
    spec = service()
    deployment = spec["deploymentConfiguration"]

    assert spec["desiredCount"] == 2
    assert deployment["maximumPercent"] == 200
    assert spec["desiredCount"] * deployment["minimumHealthyPercent"] // 100 >= 1
    assert spec["taskDefinition"] == task_definition()["family"]


def test_the_execution_role_can_read_exactly_the_secrets_and_log_group_the_task_names() -> None:
    """Every secret ARN and the awslogs group fall under a resource of the execution policy."""
    statements = policy("execution-role-policy.json")["Statement"]
    jarvis = container()

    def granted(action: str, arn: str) -> bool:
        return any(
            action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
            and arn.startswith(s["Resource"].rstrip("*"))
            for s in statements
        )

    for secret in jarvis["secrets"]:
        arn = secret["valueFrom"]
        action = (
            "secretsmanager:GetSecretValue" if ":secretsmanager:" in arn else "ssm:GetParameters"
        )
        assert granted(action, arn), arn
    options = jarvis["logConfiguration"]["options"]
    region, name = options["awslogs-region"], options["awslogs-group"]
    group = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{name}:"
    for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
        assert granted(action, group), action


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )


def test_the_roles_task_definition_and_service_register_on_moto(aws: boto3.Session) -> None:
    """The roles, the task definition and the service are created and read back as written."""
    iam = aws.client("iam")
    trust = (AWS / "ecs-tasks-trust-policy.json").read_text(encoding="utf-8")
    roles = {
        "jarvis-task": (AWS / "jarvis-iam-policy.json").read_text(encoding="utf-8"),
        "jarvis-execution": (AWS / "execution-role-policy.json").read_text(encoding="utf-8"),
    }
    arns = {}
    for name, permissions in roles.items():
        arns[name] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=permissions)
    # The subnet and security group are placeholders an operator replaces, as here.
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="jarvis", Description="jarvis", VpcId=vpc)
    spec = service()
    spec["networkConfiguration"]["awsvpcConfiguration"].update(
        subnets=[subnet], securityGroups=[group["GroupId"]]
    )
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName=spec["cluster"])

    registered = ecs.register_task_definition(**task_definition())["taskDefinition"]
    created = ecs.create_service(**spec)["service"]

    assert registered["taskRoleArn"] == arns["jarvis-task"]
    assert registered["executionRoleArn"] == arns["jarvis-execution"]
    assert registered["containerDefinitions"][0]["stopTimeout"] == container()["stopTimeout"]
    assert created["desiredCount"] == 2
    assert created["taskDefinition"] == registered["taskDefinitionArn"]
    trusted = iam.get_role(RoleName="jarvis-task")["Role"]["AssumeRolePolicyDocument"]
    assert trusted["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
