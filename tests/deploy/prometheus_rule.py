"""The Kubernetes monitoring component's PrometheusRule, generated from the alert rules.

`alerts.yaml` is the one source of the alert rules (promtool checks and
unit-tests it); the Prometheus Operator wants the same groups wrapped in a
`PrometheusRule`. `render` builds that wrapper; tests/deploy/test_kubernetes.py
checks the file in deploy/kubernetes/monitoring/ is exactly what it renders.
After editing alerts.yaml, regenerate it:

    uv run python -m tests.deploy.prometheus_rule
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs and types-PyYAML is not a dependency

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "monitoring" / "alerts.yaml"
RULE = ROOT / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/monitoring/alerts.yaml; do not edit by hand.
# Regenerate with: uv run python -m tests.deploy.prometheus_rule
# (tests/deploy/test_kubernetes.py fails when the two disagree.)
"""


def render() -> str:
    """The PrometheusRule manifest carrying every group of alerts.yaml, unchanged."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "jarvis",
            "namespace": "jarvis",
            "labels": {"app.kubernetes.io/name": "jarvis"},
        },
        "spec": {"groups": rules["groups"]},
    }
    body: str = yaml.safe_dump(manifest, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


if __name__ == "__main__":
    RULE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {RULE.relative_to(ROOT)}\n")
