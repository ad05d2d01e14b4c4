"""The ``[cloudrun]`` settings section: what it accepts and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jarvis.config import ConfigError, load_settings
from jarvis.config.cloudrun import CloudRunSettings
from jarvis.providers import enabled

TOML = """
[cloudrun]
project = "demo-project"
region = "europe-west4"
services = ["producer", "vocal-coach"]
operation_timeout = 60
"""


def test_a_toml_cloudrun_table_configures_the_provider(tmp_path: Path) -> None:
    """A ``[cloudrun]`` table lands in `Settings.cloudrun` and turns the simulated fleet off."""
    path = tmp_path / "jarvis.toml"
    path.write_text(TOML, encoding="utf-8")
    settings = load_settings(path)
    section = settings.cloudrun
    assert section is not None
    assert section.services == ["producer", "vocal-coach"]
    assert section.credentials == "application-default" and section.api_endpoint is None
    assert section.operation_timeout == 60
    assert section.resource_path("producer") == "demo-project/europe-west4/producer"
    assert [p.name for p in enabled(settings)] == ["cloudrun"]


def test_an_unknown_key_in_the_section_is_named(tmp_path: Path) -> None:
    """A typo in the section is an error that names the key."""
    path = tmp_path / "jarvis.toml"
    path.write_text(TOML + 'zone = "a"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cloudrun\.zone: unknown key"):
        load_settings(path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"credentials": "anonymous"}, "requires api_endpoint"),
        ({"services": ["api", "api"]}, "listed twice"),
        ({"services": ["Api_Service"]}, "should match pattern"),
        ({"services": []}, "at least 1 item"),
        ({"api_endpoint": "127.0.0.1:8085"}, "must start with http"),
        ({"poll_initial": 5, "poll_maximum": 1}, "poll_maximum"),
        ({"scaling_level": "job"}, "'service' or 'revision'"),
        # Cloud Run's v2 API rejects template annotations in its system namespaces.
        ({"restart_annotation": "run.googleapis.com/restarted-at"}, "reserved"),
        ({"restart_annotation": "autoscaling.knative.dev/restart"}, "reserved"),
        ({"restart_annotation": "serving.knative.dev/restart"}, "reserved"),
        ({"restart_annotation": "cloud.googleapis.com/restart"}, "reserved"),
        # Kubernetes annotation key rules: a name of at most 63 characters, alphanumeric
        # at both ends; a prefix that is a DNS subdomain.
        ({"restart_annotation": "jarvis.dev/" + "r" * 64}, "63 characters"),
        ({"restart_annotation": "jarvis.dev/-restarted"}, "annotation key"),
        ({"restart_annotation": ".jarvis./restarted"}, "annotation key"),
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    """Settings that cannot work are refused at load time with a message saying why."""
    values: dict[str, object] = {
        "project": "demo-project",
        "region": "us-central1",
        "services": ["api"],
    }
    values.update(overrides)
    with pytest.raises(ValidationError, match=message):
        CloudRunSettings.model_validate(values)
