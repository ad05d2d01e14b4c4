"""``[metrics.prometheus]`` is validated up front, every error naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.config import ConfigError, load_settings
from jarvis.providers import build_metric_sources, check_allowlist

GOOD = """
[kubernetes]
host = "http://127.0.0.1:1"
token = "t"

[metrics.prometheus]
url = "http://127.0.0.1:9090"
services = { "k8s://default/web" = "web" }
queries = { requests_per_minute = 'sum by (service) (rate(x{service=~"$services"}[1m])) * 60' }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jarvis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_section_builds_one_prometheus_source(tmp_path: Path) -> None:
    """A valid section gives one source supplying its metrics for its services."""
    settings = load_settings(write(tmp_path, GOOD))
    check_allowlist(settings)
    (source,) = build_metric_sources(settings)
    assert source.name == "prometheus"
    assert list(source.services) == ["k8s://default/web"]
    assert source.metrics == {"requests_per_minute"}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("requests_per_minute =", "requests_per_hour ="), "metrics.prometheus.queries"),
        (("requests_per_minute =", "latency_ms ="), "metrics.prometheus.queries"),
        (('{service=~"$services"}', '{service="web"}'), "metrics.prometheus.queries"),
        (('"k8s://default/web"', '"web"'), "metrics.prometheus.services"),
        (('url = "http://127.0.0.1:9090"', 'url = "not a url"'), "metrics.prometheus.url"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    """Unknown metrics, ones no source supplies (a probe's latency), templates without
    ``$services``, bad URIs and URLs are refused."""
    with pytest.raises(ConfigError, match=rf"\n  {key}"):
        load_settings(write(tmp_path, GOOD.replace(*change)))


def test_a_service_of_no_enabled_provider_is_refused(tmp_path: Path) -> None:
    """Metrics for ``k8s://`` with Kubernetes off would be read and thrown away every tick."""
    text = GOOD.replace('[kubernetes]\nhost = "http://127.0.0.1:1"\ntoken = "t"\n', "")
    settings = load_settings(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"metrics\.prometheus\.services: k8s://default/web"):
        check_allowlist(settings)
