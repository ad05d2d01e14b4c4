"""The Route 53 actuator against moto: weights observed, UPSERTed level-triggered, replays no-ops.

boto3 with dummy credentials talks to moto's server on loopback; every call is
counted in the clients' `CallLog` and checked against the IAM policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.stub import Stubber

from jarvis.actuators.aws.clients import AwsClients, iam_actions
from jarvis.actuators.aws.route53 import Route53Actuator, listed_name
from jarvis.config.aws import AwsSettings
from jarvis.config.failover import record_name
from jarvis.model import Action, ErrorKind, ResourceRef, SetDnsWeights
from tests.actions import new_key
from tests.aws.conftest import FixedClock, policy_actions
from tests.aws.route53_zone import NAME, create_zone, zone_values, zone_weights

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

pytestmark = pytest.mark.anyio


@pytest.fixture
def route53(moto: str, session: boto3.Session) -> Iterator[Route53Client]:
    """The test's own client, for setting up and reading the zone (not the actuator's)."""
    client = session.client("route53", endpoint_url=moto)
    yield client
    client.close()


@pytest.fixture
def clients(moto: str, session: boto3.Session) -> Iterator[AwsClients]:
    """Clients on moto; at teardown, every call made is one the IAM policy grants."""
    made = AwsClients.create(AwsSettings(endpoint_url=moto), session)
    yield made
    made.close()
    granted = policy_actions()
    for operation in made.calls.snapshot():
        assert all(a in granted for a in iam_actions(operation)), operation


def _actuator(clients: AwsClients, zone: str) -> Route53Actuator:
    return Route53Actuator([(zone, f"{NAME}.", "A")], clients.route53, clock=FixedClock())


def _action(zone: str, **weights: int) -> Action:
    target = ResourceRef("route53", f"{zone}/{NAME}/A", "dns_record")
    return Action(target, SetDnsWeights(record_weights=weights), "failover", "test")


async def test_observe_reads_the_weights_of_the_groups_records_only(
    clients: AwsClients, route53: Route53Client
) -> None:
    """One resource per group, its weighted records' weights, other names and types ignored."""
    zone = create_zone(route53, {"use1": 100, "euw1": 50})
    [state] = await _actuator(clients, zone).observe()
    assert str(state.ref) == f"route53://{zone}/{NAME}/A"
    assert state.dns_weights is not None
    assert dict(state.dns_weights.weights) == {"use1": 100, "euw1": 50}
    assert state.record_attributes() == {"record_weights": {"euw1": 50, "use1": 100}}


async def test_apply_upserts_only_changed_weights_and_a_replay_writes_nothing(
    clients: AwsClients, route53: Route53Client
) -> None:
    """Level-triggered: the changed record keeps its TTL and values; a replay is a no-op."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    values = zone_values(route53, zone)
    actuator, key = _actuator(clients, zone), new_key()
    outcome = await actuator.apply(_action(zone, use1=0, euw1=100), key)
    assert outcome.ok, outcome.detail
    assert "use1=0" in outcome.detail
    assert "euw1" not in outcome.detail
    assert zone_weights(route53, zone) == {"use1": 0, "euw1": 100}
    assert zone_values(route53, zone) == values

    writes = clients.calls.snapshot()["route53:ChangeResourceRecordSets"]
    replay = await actuator.apply(_action(zone, use1=0, euw1=100), key)
    assert replay.ok
    assert replay.detail.startswith("already applied")
    assert clients.calls.snapshot()["route53:ChangeResourceRecordSets"] == writes


async def test_a_record_the_zone_lacks_is_a_terminal_failure(
    clients: AwsClients, route53: Route53Client
) -> None:
    """A set identifier with no record cannot be made by weight alone: terminal, nothing written."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    outcome = await _actuator(clients, zone).apply(_action(zone, use1=0, gcp=100), new_key())
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert outcome.error_code == "NoSuchRecord"
    assert zone_weights(route53, zone) == {"use1": 100, "euw1": 100}
    assert "route53:ChangeResourceRecordSets" not in clients.calls.snapshot()


async def test_a_group_it_does_not_manage_is_refused(
    clients: AwsClients, route53: Route53Client
) -> None:
    """An action on another record name is refused, terminally, without a call."""
    zone = create_zone(route53, {"use1": 100, "euw1": 100})
    other = Action(
        ResourceRef("route53", f"{zone}/www.example.com/A", "dns_record"),
        SetDnsWeights(record_weights={"use1": 1}),
        "failover",
        "test",
    )
    outcome = await _actuator(clients, zone).apply(other, new_key())
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert clients.calls.snapshot() == {}


async def test_a_change_refused_while_a_prior_one_is_pending_is_temporary(
    clients: AwsClients,
) -> None:
    """PriorRequestNotComplete (HTTP 400) is temporary: Route 53 asks to retry with backoff."""
    zone = "Z0123456789ABC"
    records = [
        {
            "Name": f"{NAME}.",
            "Type": "A",
            "SetIdentifier": record,
            "Weight": 100,
            "TTL": 60,
            "ResourceRecords": [{"Value": value}],
        }
        for record, value in (("euw1", "10.0.0.1"), ("use1", "10.0.0.2"))
    ]
    with Stubber(clients.route53) as stubber:
        stubber.add_response(
            "list_resource_record_sets",
            {"ResourceRecordSets": records, "IsTruncated": False, "MaxItems": "100"},
        )
        stubber.add_client_error(
            "change_resource_record_sets",
            service_error_code="PriorRequestNotComplete",
            service_message="The request was rejected because Route 53 was still processing "
            "a prior request.",
            http_status_code=400,
        )
        outcome = await _actuator(clients, zone).apply(_action(zone, use1=0), new_key())
        stubber.assert_no_pending_responses()

    assert not outcome.ok
    assert (outcome.error_kind, outcome.error_code) == (
        ErrorKind.TEMPORARY,
        "PriorRequestNotComplete",
    )


async def test_a_wildcard_group_finds_the_records_route53_lists_escaped(
    clients: AwsClients, route53: Route53Client
) -> None:
    """Route 53 lists ``*`` as ``\\052``: a ``*.`` group still reads and writes its records."""
    zone = create_zone(route53, {"use1": 100})
    wildcard = f"*.{NAME}"
    # What Route 53 answers for a record created as *.api.example.com (moto keeps names as given).
    listed = f"\\052.{NAME}"
    route53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": listed,
                        "Type": "A",
                        "SetIdentifier": record,
                        "Weight": 100,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": value}],
                    },
                }
                for record, value in (("euw1", "10.1.0.1"), ("use1", "10.1.0.2"))
            ]
        },
    )
    actuator = Route53Actuator([(zone, wildcard, "A")], clients.route53, clock=FixedClock())
    [state] = await actuator.observe()
    assert str(state.ref) == f"route53://{zone}/{wildcard}/A"
    assert state.dns_weights is not None
    assert dict(state.dns_weights.weights) == {"euw1": 100, "use1": 100}

    target = ResourceRef("route53", f"{zone}/{wildcard}/A", "dns_record")
    action = Action(target, SetDnsWeights(record_weights={"use1": 0}), "failover", "test")
    outcome = await actuator.apply(action, new_key())
    assert outcome.ok, outcome.detail
    answer = route53.list_resource_record_sets(HostedZoneId=zone)
    weights = {
        r["SetIdentifier"]: int(r["Weight"])
        for r in answer["ResourceRecordSets"]
        if r["Name"] == f"{listed}." and "Weight" in r
    }
    assert weights == {"euw1": 100, "use1": 0}
    # The plain name's records are another group: untouched.
    assert zone_weights(route53, zone) == {"use1": 100}


def test_an_escaped_name_and_its_plain_spelling_are_one_group() -> None:
    """``\\052`` and octal-escaped bytes read as the characters Route 53 escaped."""
    assert record_name("\\052.API.Example.com.") == "*.api.example.com"
    assert record_name("caf\\303\\251.example.com") == "café.example.com"
    assert record_name("a\\\\b.example.com") == "a\\b.example.com"
    assert listed_name("*.café.example.com") == "\\052.caf\\303\\251.example.com"
    assert record_name(listed_name("*.café.example.com")) == "*.café.example.com"
