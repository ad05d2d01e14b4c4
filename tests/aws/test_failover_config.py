"""``[failover]`` as an operator writes it, through the real CLI, and its guard bound."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jarvis.model import Action, DnsWeights, Health, ResourceRef, ResourceState, SetDnsWeights
from jarvis.safety import DnsWeightBounds
from tests.cli.conftest import Jarvis, jarvis  # noqa: F401 - the fixture

ENDPOINTS = """
[[probes.endpoints]]
name = "api-use1"
url = "https://use1.example.com/healthz"

[[probes.endpoints]]
name = "api-euw1"
url = "https://euw1.example.com/healthz"
"""


def _group(targets: str, extra: str = "") -> str:
    return f"""
[[failover.groups]]
zone_id = "/hostedzone/Z0123"
name = "API.example.com."
{extra}
{targets}
"""


TARGETS = """
[[failover.groups.targets]]
set_identifier = "use1"
weight = 100
endpoints = ["api-use1"]

[[failover.groups.targets]]
set_identifier = "euw1"
weight = 100
endpoints = ["api-euw1"]
"""


def test_bad_failover_settings_exit_2_naming_the_key(jarvis: Jarvis, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """An unknown endpoint, a repeated record, all weights 0 or a wrong allow-list entry."""
    cases = [
        (_group(TARGETS.replace('"api-euw1"', '"api-gcp"')), "targets name endpoints api-gcp"),
        (_group(TARGETS.replace('"euw1"', '"use1"')), "targets repeat a set_identifier"),
        (_group(TARGETS.replace("weight = 100", "weight = 0")), "every target's weight is 0"),
        (_group(TARGETS.replace("weight = 100", "weight = 256", 1)), "weight"),
        (_group(TARGETS, 'type = "MX"'), "failover.groups.0.type"),
        (_group(TARGETS) + _group(TARGETS), "groups repeat a record: route53://Z0123/api"),
        (
            _group(TARGETS) + '[[allowlist]]\nprovider = "route53"\nactions = ["restart"]\n',
            "allowlist.0.actions: route53 cannot restart",
        ),
    ]
    for text, expected in cases:
        (tmp_path / "bad.toml").write_text(ENDPOINTS + text)
        result = jarvis("--config", "bad.toml", "config", "check")
        assert result.returncode == 2, (text, result.stderr)
        assert expected in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_good_failover_group_and_its_allow_list_entry_pass(
    jarvis: Jarvis,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """The zone ID loses its prefix, the name its dot and case: one group, allowed to shift."""
    allow = '[[allowlist]]\nprovider = "route53"\nactions = ["set_dns_weights"]\n'
    (tmp_path / "good.toml").write_text(ENDPOINTS + allow + _group(TARGETS))
    result = jarvis("--config", "good.toml", "config", "check")
    assert result.returncode == 0, result.stderr


NOW = datetime(2026, 11, 1, tzinfo=UTC)
REF = ResourceRef("route53", "Z1/api.example.com/A", "dns_record")


def _verdict(weights: dict[str, int], held: dict[str, int] | None) -> str | None:
    current = None
    if held is not None:
        current = ResourceState(REF, Health.HEALTHY, NOW, dns_weights=DnsWeights(held))
    action = Action(REF, SetDnsWeights(weights), "failover", "test")
    return DnsWeightBounds(max_weight_shift=64).violation(action, current)


def test_dns_weight_bounds_name_every_refusal() -> None:
    """Range, all zeros, unobserved, other records, and a move beyond the per-tick shift."""
    held = {"a": 100, "b": 100}
    assert _verdict({"a": 36, "b": 100}, held) is None
    assert "0..255" in str(_verdict({"a": 256, "b": 100}, held))
    assert "all 0" in str(_verdict({"a": 0, "b": 0}, held))
    assert "not observed" in str(_verdict({"a": 36, "b": 100}, None))
    assert "not the records" in str(_verdict({"a": 36, "c": 100}, held))
    assert "moves by 100, more than 64" in str(_verdict({"a": 0, "b": 100}, held))
