"""A hosted zone on moto with weighted records, and readers of them, for the failover tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.type_defs import ChangeTypeDef

NAME = "api.example.com"


def create_zone(route53: Route53Client, weights: Mapping[str, int]) -> str:
    """example.com with one weighted A record per set identifier (and decoys); its bare ID."""
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="jarvis-test")
    zone_id = zone["HostedZone"]["Id"].removeprefix("/hostedzone/")
    records: list[ChangeTypeDef] = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": NAME,
                "Type": "A",
                "SetIdentifier": record,
                "Weight": weight,
                "TTL": 60,
                "ResourceRecords": [{"Value": f"10.0.0.{index + 1}"}],
            },
        }
        for index, (record, weight) in enumerate(sorted(weights.items()))
    ]
    decoys: list[ChangeTypeDef] = [
        # Same name, other type; and a plain record of another name: neither is ours.
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": NAME,
                "Type": "TXT",
                "TTL": 60,
                "ResourceRecords": [{"Value": '"v=1"'}],
            },
        },
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": f"www.{NAME}",
                "Type": "A",
                "TTL": 60,
                "ResourceRecords": [{"Value": "10.9.9.9"}],
            },
        },
    ]
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [*records, *decoys]},
    )
    return zone_id


def zone_weights(route53: Route53Client, zone_id: str) -> dict[str, int]:
    """The weights of NAME's weighted A records, as the zone holds them now."""
    answer = route53.list_resource_record_sets(HostedZoneId=zone_id)
    return {
        r["SetIdentifier"]: int(r["Weight"])
        for r in answer["ResourceRecordSets"]
        if r["Name"] == f"{NAME}." and r["Type"] == "A" and "Weight" in r
    }


def zone_values(route53: Route53Client, zone_id: str) -> dict[str, tuple[int, list[str]]]:
    """TTL and values per set identifier: what an UPSERT of a weight must leave alone."""
    answer = route53.list_resource_record_sets(HostedZoneId=zone_id)
    return {
        r["SetIdentifier"]: (int(r["TTL"]), [v["Value"] for v in r["ResourceRecords"]])
        for r in answer["ResourceRecordSets"]
        if r["Name"] == f"{NAME}." and r["Type"] == "A" and "Weight" in r
    }
