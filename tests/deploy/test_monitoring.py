"""deploy/monitoring: the alert rules pass promtool, and every query names an exported metric.

The names are checked against the ``/metrics`` of a real `jarvis run`, so a
renamed or removed metric breaks the dashboard or an alert here first, and a
real Prometheus scraping that daemon evaluates every rule (labels, joins).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs and types-PyYAML is not a dependency
from prometheus_client.parser import text_string_to_metric_families

from jarvis.safety.budgets import Remaining
from jarvis.telemetry.metrics import Metrics
from tests.cli.conftest import jarvis_env
from tests.daemon import Daemon, free_port, get, running, sample
from tests.deploy.conftest import DEPLOY, load_yaml, promtool
from tests.prometheus.server import PrometheusServer

MONITORING = DEPLOY / "monitoring"
#: Metric names as Jarvis and prometheus_client spell them; labels and PromQL
#: functions never start with these prefixes.
METRIC = re.compile(r"\b(?:jarvis|process|python)_[a-z_]+\b")
#: Series Prometheus makes itself rather than the daemon.
SYNTHETIC = {"up"}
BUDGETS = json.dumps([{"name": "restarts", "actions": ["restart"], "max": 5}])


def alert_exprs() -> list[str]:
    rules = load_yaml(MONITORING / "alerts.yaml")
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    variables = board["templating"]["list"]
    return exprs + [v["query"]["query"] for v in variables if v["type"] == "query"]


def test_promtool_checks_the_rules() -> None:
    """promtool check rules accepts alerts.yaml."""
    result = subprocess.run(
        [promtool(), "check", "rules", str(MONITORING / "alerts.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    """promtool test rules passes alerts.test.yaml, which tests every alert."""
    result = subprocess.run(
        [promtool(), "test", "rules", str(MONITORING / "alerts.test.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    tests = load_yaml(MONITORING / "alerts.test.yaml")["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    alerts = load_yaml(MONITORING / "alerts.yaml")["groups"]

    assert result.returncode == 0, result.stdout + result.stderr
    assert tested == {rule["alert"] for group in alerts for rule in group["rules"]}


@contextmanager
def ticking_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A real `jarvis run` on one node in ``tmp_path``, a few ticks in."""
    # A budget and a channel configured, so their series are there to be found;
    # nothing listens at the channel's loopback port, and nothing here needs it to.
    env = jarvis_env(
        tmp_path,
        JARVIS_HTTP__HOST="127.0.0.1",
        JARVIS_BUDGETS=BUDGETS,
        JARVIS_NOTIFY__SLACK=json.dumps({"webhook_url_env": "TEST_SLACK_URL"}),
        TEST_SLACK_URL=f"http://127.0.0.1:{free_port()}/hook",
    )
    with running(tmp_path, env, "--interval", "0.2") as started:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and (sample(text, "jarvis_ticks_total") or 0) < 2:
            _, text = get(f"{started.base}/metrics")
            time.sleep(0.1)
        yield started


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A real `jarvis run` on one node, a few ticks in."""
    with ticking_daemon(tmp_path_factory.mktemp("daemon")) as started:
        yield started


@pytest.fixture(scope="module")
def exported(daemon: Daemon) -> set[str]:
    """Every sample name on the daemon's /metrics."""
    _, text = get(f"{daemon.base}/metrics")
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def names_in(exprs: list[str]) -> set[str]:
    found: set[str] = set()
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names or set(re.findall(r"\w+", expr)) & SYNTHETIC, f"no metric in {expr!r}"
        found |= names
    return found


def aggregations(expr: str, metric: str) -> list[frozenset[str]]:
    """The labels each aggregation kept that directly wraps ``metric`` in ``expr``
    (``max by (job) (m)``, ``sum by (job) (rate(m[5m]))``), one per wrapped occurrence."""
    wrapped = re.findall(
        r"\b(?:sum|max|min|avg|count) by \(([^)]*)\)\s*\(\s*(?:\w+\(\s*)?" + metric + r"\b", expr
    )
    return [frozenset(label.strip() for label in labels.split(",")) for labels in wrapped]


def fleet_wide() -> dict[str, set[frozenset[str]]]:
    """The metrics every alert reading them aggregates with ``instance`` away (the fleet's
    kill switch, quarantine, budgets, breakers, escalations, observe errors...), each
    with the label sets the alerts keep."""
    exprs = alert_exprs()
    found: dict[str, set[frozenset[str]]] = {}
    for metric in names_in(exprs):
        occurrences = sum(len(re.findall(rf"\b{metric}\b", expr)) for expr in exprs)
        kept = [labels for expr in exprs for labels in aggregations(expr, metric)]
        if len(kept) == occurrences and all("instance" not in labels for labels in kept):
            found[metric] = set(kept)
    return found


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Every panel's expression is PromQL promtool accepts (as a recording rule), with the
    instance variable as Grafana expands it for "All"."""
    rules = [
        {"record": f"panel:{n}", "expr": expr} for n, (_, expr, _) in enumerate(panel_targets())
    ]
    path = tmp_path / "panels.rules.yaml"
    path.write_text(json.dumps({"groups": [{"name": "panels", "rules": rules}]}), encoding="utf-8")

    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_fleet_wide_panels_aggregate_like_the_alerts() -> None:
    """A panel reading a metric the alerts aggregate by job (one reading for the fleet,
    which a leader change moves between instances) aggregates it by the same labels,
    rather than drawing one line per replica."""
    fleet = fleet_wide()
    per_replica = [
        (title, metric, aggregations(expr, metric))
        for title, expr, _ in panel_targets()
        for metric in names_in([expr]) & fleet.keys()
        if len(aggregations(expr, metric)) != len(re.findall(rf"\b{metric}\b", expr))
        or not set(aggregations(expr, metric)) <= fleet[metric]
    ]

    # The alerts' own aggregation, which the set is derived from.
    assert {"jarvis_killswitch_engaged", "jarvis_quarantined_resources"} <= fleet.keys()
    assert {"jarvis_escalations_total", "jarvis_observe_errors_total"} <= fleet.keys()
    assert per_replica == []


def test_the_dashboard_draws_unknown_outcomes_and_what_was_proven_of_them(
    tmp_path: Path,
) -> None:
    """A panel sets the actions counted timed_out or unknown beside those the provider
    proved made later (jarvis_unknown_outcomes_resolved_total), by kind."""
    (title,) = {
        title
        for title, expr, _ in panel_targets()
        if "jarvis_unknown_outcomes_resolved_total" in expr
    }
    targets = {expr: template for t, expr, template in panel_targets() if t == title}
    series = {
        # An hour's window at 90 minutes: 60 timed out, 30 of them proven made later.
        'jarvis_actions_total{instance="a", kind="restart", outcome="timed_out"}': "0+1x120",
        'jarvis_actions_total{instance="a", kind="restart", outcome="applied"}': "0+5x120",
        'jarvis_unknown_outcomes_resolved_total{instance="a", kind="restart", outcome="applied"}': (
            "0+0.5x120"
        ),
    }
    case = {
        "rule_files": [],
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "90m", "exp_samples": samples}
                    for expr, samples in zip(
                        sorted(targets),
                        [
                            # sorted: the actions_total target, then the proven one
                            [{"labels": '{instance="a", kind="restart"}', "value": 60}],
                            [
                                {
                                    "labels": '{instance="a", kind="restart", outcome="applied"}',
                                    "value": 30,
                                }
                            ],
                        ],
                        strict=True,
                    )
                ],
            }
        ],
    }
    path = tmp_path / "panel.test.yaml"
    path.write_text(json.dumps(case), encoding="utf-8")  # JSON is YAML

    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(targets.values()) == sorted(
        ["{{instance}} {{kind}} unknown", "{{instance}} {{kind}} proven {{outcome}}"]
    )


#: Exported only by the replica doing the fleet-wide duties (the revenue gauges,
#: `jarvis.telemetry.metrics._RevenueGauges`): every other replica has no sample.
HOLDER_ONLY = {"jarvis_mrr_usd", "jarvis_mrr_movement_usd", "jarvis_customers"}


def follower_hazards(exprs: list[str]) -> list[str]:
    """Expressions that go wrong where a replica lacks a series: an ``absent()`` of
    anything but a series Prometheus makes (it fires for a follower's missing gauge, or
    for all when the holder changes), or a holder-only gauge read per instance (a join or
    a panel line that is empty on every follower) rather than aggregated by job."""
    wrong = []
    for expr in exprs:
        absent = re.findall(r"\babsent(?:_over_time)?\(\s*(\w+)", expr)
        per_instance = [
            metric
            for metric in names_in([expr]) & HOLDER_ONLY
            if len(re.findall(rf"\b{metric}\b", expr))
            != sum("instance" not in labels for labels in aggregations(expr, metric))
        ]
        if set(absent) - SYNTHETIC or per_instance:
            wrong.append(expr)
    return wrong


def test_no_rule_or_panel_goes_wrong_where_a_follower_lacks_a_series() -> None:
    """The revenue gauges are the fleet-duties holder's alone: no alert or panel asks
    absent() of a Jarvis series, and any reading of them aggregates by job; the check
    sees both mistakes."""
    assert follower_hazards(alert_exprs() + [e for _, e, _ in panel_targets()]) == []
    mistakes = [
        "absent(jarvis_mrr_usd)",
        "jarvis_mrr_usd < 100",
        'max by (instance) (jarvis_customers{status="active"})',
    ]
    assert follower_hazards(mistakes) == mistakes
    assert follower_hazards(["max by (job) (jarvis_mrr_usd) < 100"]) == []


def test_every_dashboard_query_names_an_exported_metric(exported: set[str]) -> None:
    """Each metric a panel or variable queries is on the live daemon's /metrics."""
    assert names_in(dashboard_exprs()) - exported == set()


def test_every_alert_names_an_exported_metric(exported: set[str]) -> None:
    """Each metric an alert rule reads is on the live daemon's /metrics."""
    assert names_in(alert_exprs()) - exported == set()


def test_the_daemon_exports_its_interval(daemon: Daemon) -> None:
    """jarvis_loop_interval_seconds is loop.interval, which JarvisLoopStalled measures by."""
    _, text = get(f"{daemon.base}/metrics")

    assert sample(text, "jarvis_loop_interval_seconds") == 0.2


def prometheus_api(server: PrometheusServer, path: str) -> Any:
    _, text = get(f"{server.url}/api/v1/{path}")
    return json.loads(text)["data"]


def evaluated_rules(server: PrometheusServer) -> list[dict[str, Any]]:
    """Every rule, once Prometheus has evaluated each of them at least once."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        groups = prometheus_api(server, "rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule["health"] != "unknown" for rule in rules):
            return rules
        time.sleep(0.5)
    raise AssertionError(f"the rules were not all evaluated: {server.log()[-2000:]}")


def test_a_real_prometheus_evaluates_every_alert_against_the_daemon(daemon: Daemon) -> None:
    """Prometheus scraping a live one-node daemon evaluates every rule without an error,
    and the loop-stalled rule's leader join matches the daemon's own series."""
    promtool()  # the prometheus package, which carries both binaries
    rules = (MONITORING / "alerts.yaml").read_text(encoding="utf-8")
    with PrometheusServer([daemon.port], rules=rules, job="jarvis") as server:
        evaluated = evaluated_rules(server)
        # The stalled rule with its threshold taken out but its joins kept: one
        # series, the daemon's, or the joins with its interval and `jarvis_leader
        # == 1` would silence the alert for everyone.
        stalled = next(r["query"] for r in evaluated if r["name"] == "JarvisLoopStalled")
        loosened = stalled.replace(
            "clamp_min(3 * jarvis_loop_interval_seconds, 600)", "-1 * jarvis_loop_interval_seconds"
        )
        assert loosened != stalled, stalled
        deadline = time.monotonic() + 90
        matched: list[dict[str, Any]] = []
        while not matched and time.monotonic() < deadline:
            # Empty until the first scrape is in, and for good if the join misses.
            matched = prometheus_api(server, f"query?query={quote(loosened)}")["result"]
            time.sleep(0.5)
        firing = prometheus_api(server, "alerts")["alerts"]

    assert [(r["name"], r["health"], r.get("lastError", "")) for r in evaluated] == [
        (r["name"], "ok", "") for r in evaluated
    ]
    assert [m["metric"]["job"] for m in matched] == ["jarvis"]
    # A one-node daemon that ticks is neither down, stalled nor leaderless, not even pending.
    watched = {"JarvisDown", "JarvisLoopStalled", "JarvisNoLeader"}
    assert [a["labels"] for a in firing if a["labels"]["alertname"] in watched] == []


def panel_targets() -> list[tuple[str, str, str]]:
    """(panel title, expression for every instance, legend) of every panel target."""
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    return [
        (panel["title"], t["expr"].replace("$instance", ".*"), t.get("legendFormat", ""))
        for panel in board["panels"]
        for t in panel["targets"]
    ]


def legend(template: str, labels: dict[str, str]) -> str:
    """A legend as Grafana draws it: each ``{{label}}`` replaced by the series' value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)


def test_two_replicas_are_told_apart_on_every_panel(daemon: Daemon, tmp_path: Path) -> None:
    """With two daemons scraped side by side, every panel target draws each replica's
    own series, but a fleet-wide one (the alerts' aggregation by job) draws one for the
    job; and no two series of a panel share a legend."""
    fleet = fleet_wide().keys()
    with ticking_daemon(tmp_path) as other:
        instances = {f"127.0.0.1:{daemon.port}", f"127.0.0.1:{other.port}"}
        # A fleet-wide target's series carries the job, no instance.
        expected = {
            expr: {None} if names_in([expr]) & fleet else instances
            for _, expr, _ in panel_targets()
        }
        with PrometheusServer([daemon.port, other.port], job="jarvis") as server:
            deadline = time.monotonic() + 90
            drawn: dict[tuple[str, str], list[dict[str, str]]] = {}
            while time.monotonic() < deadline:
                drawn = {
                    (title, expr): [
                        {**r["metric"], "__legend__": legend(template, r["metric"])}
                        for r in prometheus_api(server, f"query?query={quote(expr)}")["result"]
                    ]
                    for title, expr, template in panel_targets()
                }
                if all(
                    {s.get("instance") for s in rows} == expected[e]
                    for (_, e), rows in drawn.items()
                ):
                    break
                time.sleep(0.5)
    merged = [
        key for key, rows in drawn.items() if {s.get("instance") for s in rows} != expected[key[1]]
    ]
    legends: dict[str, list[str]] = {}
    for (title, _), rows in drawn.items():
        legends.setdefault(title, []).extend(s["__legend__"] for s in rows)

    assert merged == []
    assert {t: sorted(ls) for t, ls in legends.items() if len(set(ls)) < len(ls)} == {}


def test_the_check_would_see_an_unknown_metric(exported: set[str]) -> None:
    """A misspelt metric is caught: the check compares names, not prefixes."""
    assert names_in(["rate(jarvis_tick_total[5m])"]) - exported == {"jarvis_tick_total"}


def plotted_units(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(expression, unit it is drawn in) for every panel target: the panel's
    default unit unless an override matched by the target's refId sets one."""
    pairs: list[tuple[str, str]] = []
    for panel in board["panels"]:
        config = panel["fieldConfig"]
        units = {
            rule["matcher"]["options"]: prop["value"]
            for rule in config["overrides"]
            if rule["matcher"]["id"] == "byFrameRefID"
            for prop in rule["properties"]
            if prop["id"] == "unit"
        }
        default = config["defaults"]["unit"]
        pairs += [(t["expr"], units.get(t["refId"], default)) for t in panel["targets"]]
    return pairs


def test_the_dashboard_draws_bytes_in_bytes_and_nothing_else() -> None:
    """A target reading a ``_bytes`` metric is drawn in bytes; any other target is not."""
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))

    wrong = [
        (expr, unit)
        for expr, unit in plotted_units(board)
        if ("_bytes" in expr) != (unit == "bytes")
    ]

    assert wrong == []


def test_the_seconds_since_the_last_tick_are_the_leaders_only(tmp_path: Path) -> None:
    """The panel beside JarvisLoopStalled leaves out a follower, which never ticks
    (it read ~56 years, time() less a timestamp of 0), as the alert does."""
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    (expr,) = [e for e, _ in plotted_units(board) if "jarvis_last_tick_timestamp_seconds" in e]
    case = {
        "rule_files": [],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # The leader finishes a tick every minute; the standby never does.
                    {
                        "series": 'jarvis_last_tick_timestamp_seconds{instance="a"}',
                        "values": "0+60x10",
                    },
                    {"series": 'jarvis_leader{instance="a"}', "values": "1x10"},
                    {
                        "series": 'jarvis_last_tick_timestamp_seconds{instance="b"}',
                        "values": "0x10",
                    },
                    {"series": 'jarvis_leader{instance="b"}', "values": "0x10"},
                ],
                "promql_expr_test": [
                    {
                        "expr": expr.replace("$instance", ".*"),
                        "eval_time": "5m",
                        "exp_samples": [{"labels": '{instance="a"}', "value": 0}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "panel.test.yaml"
    path.write_text(json.dumps(case), encoding="utf-8")  # JSON is YAML

    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def layout_faults(panels: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the panels' places on Grafana's 24-column grid: a panel off its
    edges (x < 0, w <= 0, x + w > 24) or two panels on one cell."""
    faults = []
    boxes = [(p["title"], p["gridPos"]) for p in panels]
    for title, pos in boxes:
        if pos["x"] < 0 or pos["w"] <= 0 or pos["x"] + pos["w"] > 24:
            faults.append(f"{title}: x={pos['x']} w={pos['w']} off the 24 columns")
    for n, (title, a) in enumerate(boxes):
        for other, b in boxes[n + 1 :]:
            across = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            down = a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
            if across and down:
                faults.append(f"{title} overlaps {other}")
    return faults


def test_every_panel_fits_the_grid_without_overlapping() -> None:
    """Each panel lies within Grafana's 24 columns and no two share a cell; the check sees
    a panel past the right edge and two on one place."""
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    wide = {"title": "wide", "gridPos": {"x": 16, "y": 0, "w": 16, "h": 8}}
    under = {"title": "under", "gridPos": {"x": 20, "y": 4, "w": 4, "h": 8}}

    assert layout_faults(board["panels"]) == []
    assert layout_faults([wide, under]) == [
        "wide: x=16 w=16 off the 24 columns",
        "wide overlaps under",
    ]


def exposition_series(metrics: Metrics, instance: str, names: set[str]) -> list[dict[str, str]]:
    """The samples of ``names`` a `Metrics` renders on /metrics, as promtool input series
    scraped from ``instance`` of job jarvis, each holding its value for half an hour."""
    text = metrics.render()[0].decode()
    found = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in names:
                labels = {**s.labels, "job": "jarvis", "instance": instance}
                pairs = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                value = "Inf" if s.value == math.inf else f"{s.value:g}"
                found.append({"series": f"{s.name}{{{pairs}}}", "values": " ".join([value] * 31)})
    return found


def test_the_breaker_and_budget_panels_draw_the_fleet_once(tmp_path: Path) -> None:
    """With a leader and a follower scraped, the breaker panel draws each breaker, and the
    budget panel each budget's changes left and its limit, once for the job at the leader's
    reading; the input series are what `Metrics` renders for each (the follower stepped down)."""
    names = {
        "jarvis_breaker_open",
        "jarvis_disruption_budget_remaining",
        "jarvis_disruption_budget_limit",
    }
    leader, follower = Metrics(), Metrics()
    for metrics in (leader, follower):
        metrics.breaker_open.labels(scope="provider", provider="aws").set(1)
        metrics.breaker_open.labels(scope="fleet", provider="all").set(0)
        metrics.set_budgets(
            [
                Remaining("restarts", "aws", "restart", limit=5, used=2),
                # Outside its schedule: no limit, +Inf for both.
                Remaining("nights", "aws", "scale", limit=None, used=0),
            ]
        )
    follower.stepped_down()
    series = exposition_series(leader, "a", names) + exposition_series(follower, "b", names)
    targets = {expr for _, expr, _ in panel_targets() if names_in([expr]) & names}
    nights = '{budget="nights", job="jarvis", kind="scale", provider="aws"}'
    restarts = '{budget="restarts", job="jarvis", kind="restart", provider="aws"}'
    expected = {
        "max by (job, scope, provider) (jarvis_breaker_open)": [
            ('{job="jarvis", provider="all", scope="fleet"}', 0.0),
            ('{job="jarvis", provider="aws", scope="provider"}', 1.0),
        ],
        "max by (job, kind, provider, budget) (jarvis_disruption_budget_remaining)": [
            (nights, math.inf),
            (restarts, 3.0),
        ],
        "max by (job, kind, provider, budget) (jarvis_disruption_budget_limit)": [
            (nights, math.inf),
            (restarts, 5.0),
        ],
    }
    case = {
        "rule_files": [],
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "20m",
                        "exp_samples": [{"labels": ls, "value": v} for ls, v in samples],
                    }
                    for expr, samples in expected.items()
                ],
            }
        ],
    }
    path = tmp_path / "panel.test.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")  # +Inf as .inf, which JSON lacks

    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert targets == expected.keys()
    # Both replicas export the breakers (the follower at 0), the leader alone the budgets.
    assert {s["series"].split("{")[0] for s in series if 'instance="b"' in s["series"]} == {
        "jarvis_breaker_open"
    }
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    """Unique panel ids, every panel on the templated data source, a uid to import by."""
    board: dict[str, Any] = json.loads(
        (MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8")
    )
    ids = [panel["id"] for panel in board["panels"]]

    assert board["uid"] == "jarvis"
    assert len(ids) == len(set(ids))
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"])
