"""Shapes moto cannot produce, through botocore's Stubber (checked against the AWS model).

Several deployments at once, a FAILED rollout, non-zero failedTasks, circuit
breaker settings, and throttling, access-denied and server errors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from jarvis.actuators.base import ActuatorError
from jarvis.model import (
    Action,
    ErrorKind,
    Health,
    ResourceRef,
    Restart,
    Rollout,
    RolloutState,
    Scale,
    Versions,
)
from tests.actions import new_key
from tests.aws.conftest import MakeEcs

pytestmark = pytest.mark.anyio

ARN = "arn:aws:ecs:us-east-1:123456789012"
SERVICE_ARN = f"{ARN}:service/prod/api"


def _deployment(
    status: str, revision: int, rollout: str, *, failed: int = 0, day: int = 1
) -> dict[str, Any]:
    return {
        "id": f"ecs-svc/{revision}",
        "status": status,
        "taskDefinition": f"{ARN}:task-definition/api:{revision}",
        "desiredCount": 3,
        "runningCount": 3 if status == "ACTIVE" else 0,
        "pendingCount": 0,
        "failedTasks": failed,
        "rolloutState": rollout,
        "rolloutStateReason": f"rollout {rollout.lower()}",
        "createdAt": datetime(2025, 3, day, tzinfo=UTC),
    }


def _stub_fleet(stubber: Stubber, deployments: list[dict[str, Any]]) -> None:
    stubber.add_response(
        "list_services", {"serviceArns": [SERVICE_ARN]}, {"cluster": "prod", "maxResults": 100}
    )
    primary = next(d for d in deployments if d["status"] == "PRIMARY")
    stubber.add_response(
        "describe_services",
        {
            "services": [
                {
                    "serviceArn": SERVICE_ARN,
                    "serviceName": "api",
                    "clusterArn": f"{ARN}:cluster/prod",
                    "status": "ACTIVE",
                    "desiredCount": 3,
                    "runningCount": 3,
                    "pendingCount": 0,
                    "launchType": "FARGATE",
                    "taskDefinition": primary["taskDefinition"],
                    "deploymentConfiguration": {
                        "deploymentCircuitBreaker": {"enable": True, "rollback": False},
                        "maximumPercent": 200,
                        "minimumHealthyPercent": 100,
                    },
                    "deployments": deployments,
                }
            ],
            "failures": [],
        },
        {"cluster": "prod", "services": [SERVICE_ARN], "include": []},
    )


async def test_failed_rollout_beside_an_older_deployment_is_unhealthy(make_ecs: MakeEcs) -> None:
    """A FAILED primary deployment makes the service unhealthy and names the older version."""
    actuator = make_ecs(metrics=False, clusters=["prod"])
    with Stubber(actuator.clients.ecs) as stubber:
        _stub_fleet(
            stubber,
            [
                _deployment("PRIMARY", 8, "FAILED", failed=4, day=3),
                _deployment("ACTIVE", 6, "COMPLETED", day=1),
                _deployment("ACTIVE", 7, "COMPLETED", day=2),
            ],
        )
        (state,) = await actuator.observe()
        stubber.assert_no_pending_responses()

    assert state.health is Health.UNHEALTHY
    assert state.detail.startswith("deployment ecs-svc/8 failed")
    assert state.version == "api:8"
    assert state.record_attributes()["rollout"] == "failed"
    assert state.record_attributes()["rollout_reason"] == "rollout failed"
    assert state.record_attributes()["previous_version"] == "api:7"
    assert state.record_attributes()["versions_available"] == ["api:7", "api:6"]
    assert state.rollout == Rollout(RolloutState.FAILED, reason="rollout failed")
    assert state.versions == Versions(previous="api:7", available=("api:7", "api:6"))
    assert state.record_attributes()["stable_version"] is None
    assert state.record_attributes()["circuit_breaker"] == {"enable": True, "rollback": False}
    primary = state.record_attributes()["deployments"][0]
    assert (primary["failed_tasks"], primary["completed"]) == (4, False)


async def test_rollout_in_progress_is_not_yet_stable(make_ecs: MakeEcs) -> None:
    """While a new deployment rolls out, no version is offered as stable."""
    actuator = make_ecs(metrics=False, clusters=["prod"])
    with Stubber(actuator.clients.ecs) as stubber:
        _stub_fleet(
            stubber,
            [
                _deployment("PRIMARY", 3, "IN_PROGRESS", failed=1, day=2),
                _deployment("ACTIVE", 2, "COMPLETED", day=1),
            ],
        )
        (state,) = await actuator.observe()

    assert state.health is Health.HEALTHY
    assert state.record_attributes()["rollout"] == "in_progress"
    assert state.record_attributes()["stable_version"] is None
    assert state.record_attributes()["previous_version"] == "api:2"


async def test_throttled_listing_raises_a_temporary_error_with_the_code(
    make_ecs: MakeEcs,
) -> None:
    """Throttling on ListServices fails observe as temporary, carrying the AWS code."""
    actuator = make_ecs(metrics=False, clusters=["prod"])
    with Stubber(actuator.clients.ecs) as stubber:
        stubber.add_client_error(
            "list_services", service_error_code="ThrottlingException", http_status_code=400
        )
        with pytest.raises(ActuatorError) as caught:
            await actuator.observe()

    assert caught.value.kind is ErrorKind.TEMPORARY
    assert caught.value.code == "ThrottlingException"


async def test_a_bare_429_is_temporary_whatever_its_code(make_ecs: MakeEcs) -> None:
    """HTTP 429 with a code Jarvis does not know is throttling, as botocore's retries judge it."""
    actuator = make_ecs(metrics=False, clusters=["prod"])
    with Stubber(actuator.clients.ecs) as stubber:
        stubber.add_client_error(
            "list_services", service_error_code="TooManyRequests", http_status_code=429
        )
        with pytest.raises(ActuatorError) as caught:
            await actuator.observe()

    assert caught.value.kind is ErrorKind.TEMPORARY
    assert caught.value.code == "TooManyRequests"


def untagged_service(stubber: Stubber) -> None:
    """The idempotency check's DescribeServices: prod/api, not yet tagged with any key."""
    arn = "arn:aws:ecs:us-east-1:123456789012:service/prod/api"
    stubber.add_response(
        "describe_services",
        {"services": [{"serviceArn": arn, "serviceName": "api", "tags": []}]},
        {"cluster": "prod", "services": ["api"], "include": ["TAGS"]},
    )


async def test_access_denied_names_the_missing_iam_action(make_ecs: MakeEcs) -> None:
    """AccessDenied on UpdateService is terminal and names ecs:UpdateService."""
    actuator = make_ecs(clusters=["prod"])
    # The change goes through the client that never resends it (`ecs_changes`).
    with Stubber(actuator.clients.ecs) as stubber, Stubber(actuator.clients.ecs_changes) as changes:
        untagged_service(stubber)
        changes.add_client_error(
            "update_service",
            service_error_code="AccessDeniedException",
            service_message="not authorized",
            http_status_code=400,
        )
        outcome = await actuator.apply(
            Action(ResourceRef("ecs", "prod/api"), Restart(), "heal", "crashed"), new_key()
        )

    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert outcome.error_code == "AccessDeniedException"
    assert "ecs:UpdateService" in outcome.detail


async def test_server_error_fails_an_action_as_temporary(make_ecs: MakeEcs) -> None:
    """A 5xx answer is temporary: the retry budget may try again later."""
    actuator = make_ecs(clusters=["prod"])
    # The change goes through the client that never resends it (`ecs_changes`).
    with Stubber(actuator.clients.ecs) as stubber, Stubber(actuator.clients.ecs_changes) as changes:
        untagged_service(stubber)
        changes.add_client_error(
            "update_service", service_error_code="ServerException", http_status_code=500
        )
        outcome = await actuator.apply(
            Action(ResourceRef("ecs", "prod/api"), Scale(replicas=4), "scaling", "load"), new_key()
        )

    assert outcome.error_kind is ErrorKind.TEMPORARY
    assert outcome.error_code == "ServerException"


async def test_metrics_failure_keeps_services_observed(make_ecs: MakeEcs) -> None:
    """Throttled CloudWatch leaves services observed, marked with the metrics error."""
    actuator = make_ecs(clusters=["prod"])
    with Stubber(actuator.clients.ecs) as ecs, Stubber(actuator.clients.cloudwatch) as cw:
        _stub_fleet(ecs, [_deployment("PRIMARY", 2, "COMPLETED")])
        cw.add_client_error(
            "get_metric_data", service_error_code="Throttling", http_status_code=400
        )
        (state,) = await actuator.observe()

    assert state.health is Health.HEALTHY
    assert state.metrics == {}
    assert state.record_attributes()["metrics_error"] == "Throttling"


async def test_a_paginated_metric_keeps_its_newest_value(make_ecs: MakeEcs) -> None:
    """A series continued on a later (older) GetMetricData page keeps its newest value."""
    actuator = make_ecs(clusters=["prod"], metrics_window_seconds=86400)
    stamp, older = datetime(2025, 3, 2, 12, 0, tzinfo=UTC), datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with Stubber(actuator.clients.ecs) as ecs, Stubber(actuator.clients.cloudwatch) as cw:
        _stub_fleet(ecs, [_deployment("PRIMARY", 2, "COMPLETED")])
        cw.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "s0_cpu_utilization", "Timestamps": [stamp], "Values": [91.0]},
                ],
                "NextToken": "page-2",
            },
        )
        cw.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "s0_cpu_utilization", "Timestamps": [older], "Values": [12.0]},
                ],
            },
        )
        (state,) = await actuator.observe()
        cw.assert_no_pending_responses()

    assert state.metrics == {"cpu_utilization": 91.0}
