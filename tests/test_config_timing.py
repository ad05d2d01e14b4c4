"""Each pair of timeouts where the inner one cannot take effect is named, and only those.

`timing_warnings` is what `jarvis config check` prints and `jarvis run` logs once at
start (`jarvis.config.timing`); the settings come through `load_settings`, as the CLI's do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jarvis.config import ConfigError, load_settings
from jarvis.config.timing import timing_warnings

CLOUD_RUN = {
    "project": "demo-project",
    "region": "europe-west1",
    "services": ["api"],
    "credentials": "anonymous",
    "api_endpoint": "http://127.0.0.1:9",
}
CLUSTER = {"host": "https://127.0.0.1:6443", "token": "t"}
STRIPE = {"enabled": True, "stripe": {}}
MAIL = {"host": "smtp.example.com", "sender": "a@example.com"}
EMAIL = {"enabled": True, "email": MAIL}
DNS_TARGET = {"set_identifier": "a", "weight": 1, "endpoints": ["a"]}
FAILOVER = {
    "groups": [
        {
            "zone_id": "Z1",
            "name": "api.example.com",
            "targets": [DNS_TARGET, {**DNS_TARGET, "set_identifier": "b", "endpoints": ["b"]}],
        }
    ],
}
PROMETHEUS = {
    "url": "http://p:9090",
    "queries": {"error_rate": 'sum by (service) (rate(errors{service=~"$services"}[5m]))'},
    "services": {"k8s://default/web": "web"},
}
PROBES = {"endpoints": [{"name": n, "url": f"https://{n}.example.com/"} for n in ("a", "b")]}


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"cloudrun": {**CLOUD_RUN, "operation_timeout": 60}}, "cloudrun.operation_timeout (60 s)"),
        (
            {"cloudrun": {**CLOUD_RUN, "operation_timeout": 20}},
            "cloudrun.operation_timeout (20 s) is not shorter than loop.apply_timeout (20 s)",
        ),
        (
            {"cloudrun": {**CLOUD_RUN, "request_timeout": 30}},
            "cloudrun.request_timeout (30 s) is not shorter than loop.apply_timeout (20 s)",
        ),
        ({"kubernetes": {**CLUSTER, "request_timeout": 25}}, "loop.apply_timeout (20 s)"),
        (
            {"kubernetes": {**CLUSTER, "observe_timeout": 60}},
            "kubernetes.observe_timeout (60 s) is not shorter than loop.observe_timeout (10 s)",
        ),
        (
            {"kubernetes": CLUSTER, "lease": {"backend": "kubernetes", "renew_deadline": 4}},
            "kubernetes.request_timeout (5 s) is not shorter than lease.renew_deadline (4 s)",
        ),
        (
            {"aws": {"region": "eu-west-1", "read_timeout": 18}},
            "aws.connect_timeout + aws.read_timeout (21 s)",
        ),
        (
            {"failover": {**FAILOVER, "read_timeout": 30}, "probes": PROBES},
            "failover.connect_timeout + failover.read_timeout (33 s)",
        ),
        ({"customers": {**STRIPE, "stripe": {"timeout": 20}}}, "customers.stripe.timeout (20 s)"),
        (
            {"customers": {**EMAIL, "email": {**MAIL, "timeout": 60}}},
            "customers.email.timeout (60 s)",
        ),
        (
            {"metrics": {"prometheus": {**PROMETHEUS, "timeout_seconds": 30}}},
            "metrics.prometheus.timeout_seconds (30 s) is not shorter than "
            "loop.observe_timeout (10 s)",
        ),
        (
            {"notify": {"slack": {}}, "loop": {"interval": 5}},
            "loop.interval x (1 + loop.jitter) + the tick timeout (35.25 s) is not shorter "
            "than notify.stall_intervals x loop.interval (15 s): a tick that takes its "
            "allowed time pages loop_stalled",
        ),
    ],
)
def test_an_inner_timeout_at_or_past_its_outer_one_is_named(
    sections: dict[str, Any], named: str
) -> None:
    """One line naming both keys and their values; raising the outer one clears it."""
    (warning,) = timing_warnings(load_settings(**sections))
    assert named in warning
    assert "raise " in warning
    assert "\n" not in warning
    if "lease.renew_deadline" not in named and "loop" not in sections:
        raised = load_settings(**sections, loop={"apply_timeout": 100, "observe_timeout": 100})
        assert timing_warnings(raised) == []


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {"cloudrun": CLOUD_RUN},
        {"kubernetes": CLUSTER},
        {"kubernetes": CLUSTER, "lease": {"backend": "kubernetes"}},
        {"aws": {"region": "eu-west-1"}},
        {"failover": FAILOVER, "probes": PROBES},
        {"customers": STRIPE},
        {"customers": EMAIL},
        {"metrics": {"prometheus": PROMETHEUS}},
        {"notify": {"slack": {}}},
        {"metrics": {"cloud_monitoring": {"url": "http://p:9090", "credentials": "anonymous"}}},
    ],
)
def test_the_defaults_fit_together(sections: dict[str, Any]) -> None:
    """Every section at its defaults draws no warning (Kubernetes' own observe limit, 15 s
    inside the loop's 10 s, only when the operator set it)."""
    assert timing_warnings(load_settings(**sections)) == []


def test_a_lease_renewed_no_more_often_than_it_lasts_is_refused() -> None:
    """Outright unsafe, so refused at load rather than warned: two leaders could overlap."""
    with pytest.raises(ConfigError, match=r"lease\.duration \(10 s\) must be longer"):
        load_settings(lease={"duration": 10, "renew_deadline": 10})
