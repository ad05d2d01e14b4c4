"""The [aws] settings section: defaults, validation, and no credentials in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.config import ConfigError, load_settings
from jarvis.config.aws import AwsSettings

TOML = """
[aws]
region = "eu-west-1"
clusters = ["prod", "staging"]
service_tag = "jarvis=managed"
cost = true

[probes]
redis = { cache = "redis://cache.internal:6379/0" }
s3 = [{ bucket = "jarvis-media" }]
"""


def test_toml_aws_table_lands_in_the_section(tmp_path: Path) -> None:
    """A TOML [aws] table becomes typed AwsSettings; [probes] keeps its URLs secret."""
    path = tmp_path / "jarvis.toml"
    path.write_text(TOML, encoding="utf-8")
    settings = load_settings(path)

    aws = settings.aws
    assert aws is not None
    assert (aws.region, aws.clusters, aws.tag_filter) == (
        "eu-west-1",
        ["prod", "staging"],
        ("jarvis", "managed"),
    )
    probes = settings.probes
    assert probes.s3[0].canary_key == "jarvis/canary.txt"
    assert "cache.internal" not in repr(probes)
    assert probes.redis["cache"].get_secret_value().startswith("redis://cache.internal")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("aws_secret_access_key", "x"),
        ("service_tag", "no-equals-sign"),
        ("clusters", []),
        ("max_attempts", 0),
    ],
)
def test_bad_aws_keys_are_named_in_the_error(key: str, value: object) -> None:
    """Credentials, a tag without a value, no cluster or no attempt are refused by key."""
    with pytest.raises(ConfigError) as caught:
        load_settings(aws={key: value})

    assert f"aws.{key}" in str(caught.value)


def test_defaults_retry_in_bounded_standard_mode() -> None:
    """With no keys, the section reads real AWS in us-east-1 with three attempts."""
    aws = AwsSettings()

    assert (aws.endpoint_url, aws.region, aws.max_attempts, aws.cost) == (
        None,
        "us-east-1",
        3,
        False,
    )


def test_cluster_and_service_arns_are_kept_as_their_names() -> None:
    """ARNs in ``clusters`` and ``services`` become the names the resource URIs use."""
    aws = AwsSettings(
        region="eu-west-1",
        clusters=["arn:aws:ecs:eu-west-1:123456789012:cluster/prod", "staging"],
        services=[
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/api",
            "arn:aws:ecs:eu-west-1:123456789012:service/worker",
            "web",
        ],
    )
    assert aws.clusters == ["prod", "staging"]
    assert aws.services == ["api", "worker", "web"]


def test_an_arn_of_another_region_is_refused_with_its_region() -> None:
    """The clients call the configured region: a cluster elsewhere is a clear error."""
    with pytest.raises(ValueError, match=r"us-east-1.*eu-west-1"):
        AwsSettings(
            region="eu-west-1", clusters=["arn:aws:ecs:us-east-1:123456789012:cluster/prod"]
        )
