"""A scoped ECS observe (shards): list every service, describe only the owned ones."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from jarvis.actuators.aws.ecs import DESCRIBE_BATCH
from jarvis.actuators.base import Scope
from jarvis.loop.shards import shard_of
from tests.aws.conftest import MakeEcs, create_fleet

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

pytestmark = pytest.mark.anyio


def owned(uri: str) -> bool:
    return shard_of(uri, 4) == 0


async def test_a_scoped_observe_describes_only_owned_services(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """DescribeServices is called for the owned services alone; the rest are only named."""
    uris = create_fleet(ecs_client, per_cluster=15)
    mine = sorted(uri for uri in uris if owned(uri))
    assert 0 < len(mine) < len(uris)
    actuator = make_ecs(metrics=False)

    scope = Scope(owned)
    states = await actuator.observe(scope)

    assert [str(s.ref) for s in states] == mine
    assert sorted(str(ref) for ref in scope.others) == sorted(set(uris) - set(mine))
    clusters = ("prod", "staging")
    per_cluster = [sum(1 for uri in mine if uri.startswith(f"ecs://{c}/")) for c in clusters]
    batches = sum(math.ceil(count / DESCRIBE_BATCH) for count in per_cluster)
    assert actuator.calls.counts["ecs:DescribeServices"] == batches
    assert batches < 2 * math.ceil(15 / DESCRIBE_BATCH)


async def test_under_a_tag_filter_services_out_of_scope_are_not_counted(
    make_ecs: MakeEcs, ecs_client: ECSClient
) -> None:
    """Whether an unowned service carries the tag is unknown undescribed: it is not named."""
    uris = create_fleet(ecs_client, per_cluster=15)
    actuator = make_ecs(metrics=False, service_tag="jarvis=managed")

    scope = Scope(owned)
    states = await actuator.observe(scope)

    assert states
    assert all(owned(str(s.ref)) for s in states)
    assert scope.others == []
    assert len(states) < len(uris)
