"""The resource glob rule README states ("Resource globs") is the rule every glob of the
configuration matches by (allow-list, budgets, scaling rules, rollback, notification
routes, silences, inhibition rules, SLOs' endpoints): pinned by a property against a
matcher written from the README's words alone; `spans_segments` by what a warning-free
glob promises, and `spanning_example` by the path it shows."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import jarvis
from jarvis.config.endpoints import EndpointSettings, SloSettings
from jarvis.model import Action, ResourceRef, Restart
from jarvis.model.globs import matches, spanning_example, spans_segments
from jarvis.notify.alerts import AlertChange, Severity
from jarvis.notify.groups import Route, Silence
from jarvis.notify.inhibit import Matcher
from jarvis.policies.hpa import MetricTargets
from jarvis.policies.scaling_rules import ScalingRule
from jarvis.safety import AllowRule, DisruptionBudget

HOUR = timedelta(hours=1)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def documented(path: str, glob: str) -> bool:
    """README's rule, read literally: ``*`` any run of characters, ``/`` included; ``?``
    any one character, ``/`` included; ``[...]`` one character of the set (``a-z`` a
    range), ``[!...]`` one outside it; a ``[`` with no ``]`` after it is itself; every
    other character itself."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        end = glob.find("]", i + 1)
        if c == "[" and end != -1:
            tokens.append(("set", glob[i + 1 : end]))
            i = end + 1
        else:
            tokens.append(("any" if c == "*" else "one" if c == "?" else "lit", c))
            i += 1

    def in_set(ch: str, body: str) -> bool:
        negated = body.startswith("!")
        body = body[1:] if negated else body
        found, j = False, 0
        while j < len(body):
            if j + 2 < len(body) and body[j + 1] == "-":
                found |= body[j] <= ch <= body[j + 2]
                j += 3
            else:
                found |= ch == body[j]
                j += 1
        return found != negated

    @cache
    def at(t: int, p: int) -> bool:
        if t == len(tokens):
            return p == len(path)
        kind, text = tokens[t]
        if kind == "any":
            return any(at(t + 1, q) for q in range(p, len(path) + 1))
        if p == len(path):
            return False
        ch = path[p]
        ok = ch == text if kind == "lit" else True if kind == "one" else in_set(ch, text)
        return ok and at(t + 1, p + 1)

    return at(0, 0)


chars = st.sampled_from("ab/-")
sets = st.builds(
    lambda neg, body: f"[{'!' if neg else ''}{body}]",
    st.booleans(),
    st.sampled_from(["a", "ab", "/", "a-b", "b/", "-a"]),
)
tokens = st.one_of(chars, chars, st.just("*"), st.just("?"), sets)
globs = st.builds(
    lambda parts, open_bracket: "".join(parts) + ("[" if open_bracket else ""),
    st.lists(tokens, max_size=7),
    st.booleans(),
)
paths = st.text(alphabet="ab/-[", max_size=8)


@settings(max_examples=500)
@given(path=paths, glob=globs)
def test_every_glob_of_the_configuration_matches_by_the_documented_rule(
    path: str, glob: str
) -> None:
    """An allow-list entry permits, a budget covers, a scaling rule, a notification route
    and a silence match, an inhibition matcher takes a cause, and an SLO selects an
    endpoint name, exactly where README's rule says the glob matches; ``*`` and ``?``
    take ``/`` too. (Rollback's ``match`` is pinned in tests/policies/test_rollback.py.)"""
    expected = documented(path, glob)
    assert matches(path, glob) is expected
    target = ResourceRef("ecs", path)
    rule = AllowRule("ecs", glob, frozenset({"*"}))
    assert rule.permits(Action(target, Restart(), "p", "r")) is expected
    assert DisruptionBudget("b", HOUR, max_changes=1, resources=glob).covers(target) is expected
    assert (
        ScalingRule(match=glob, targets=MetricTargets(cpu_utilization=70)).matches(path) is expected
    )
    change = AlertChange("f", firing=True, at=NOW, event_id=1, resource=path)
    assert Route("slack", frozenset(Severity), (glob,)).matches(change) is expected
    silence = Silence("s", glob, NOW + HOUR)
    cause = "escalated"
    mutes = expected or documented(cause, glob)
    assert silence.mutes({"resource": path, "cause": cause}, NOW) is mutes
    assert Matcher(glob).matches({"cause": path, "severity": "warning"}) is expected
    # Settings built unvalidated: an endpoint's name allows fewer characters than the rule.
    endpoint = EndpointSettings.model_construct(name=path, cloud=None, region=None)
    slo = SloSettings.model_construct(endpoints=(glob,), cloud=None, region=None)
    assert slo.selects(endpoint) is expected


def test_no_module_but_the_matcher_and_the_invariant_oracle_matches_globs_itself() -> None:
    """Every glob of the configuration goes through `jarvis.model.globs`: no other module
    imports fnmatch, but the simulation's invariant checker, an independent oracle."""
    root = Path(jarvis.__file__).parent
    allowed = {"model/globs.py", "simulation/invariants.py", "simulation/invariant_records.py"}
    importers = set()
    for source in root.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if "fnmatch" in names:
                importers.add(source.relative_to(root).as_posix())
    assert importers <= allowed, sorted(importers - allowed)


segment = st.text(alphabet="ab-", min_size=1, max_size=3)


@settings(max_examples=500)
@given(
    glob=st.lists(st.text(alphabet="ab-*", max_size=3), min_size=1, max_size=3).map("/".join),
    names=st.lists(segment, min_size=1, max_size=3),
)
def test_a_glob_without_a_warning_confines_each_inner_star_to_its_segment(
    glob: str, names: list[str]
) -> None:
    """For paths of n segments, a glob `spans_segments` does not flag matches a path as a
    reading of ``*`` confined to its segment does, but for a ``*`` that is a whole
    segment: that one takes the rest of the path ("everything below")."""
    path, n = "/".join(names), len(names)
    if spans_segments(glob, n):
        return
    parts = glob.split("/")
    if len(parts) < n:  # fewer segments than the path: a whole-segment '*' takes the rest
        assert any(part and not part.strip("*") for part in parts) or not matches(path, glob)
        return
    confined = len(parts) == n and all(matches(s, g) for s, g in zip(names, parts, strict=True))
    assert matches(path, glob) is confined


@settings(max_examples=500)
@given(
    glob=st.lists(
        st.lists(st.sampled_from(["a", "-", "*", "?", "[a-b]", "[!a]"]), max_size=4).map("".join),
        min_size=1,
        max_size=3,
    ).map("/".join),
    n=st.integers(min_value=1, max_value=4),
)
def test_a_warning_shows_a_path_its_glob_matches_across_segments(glob: str, n: int) -> None:
    """Where `spans_segments` flags a glob, `spanning_example` is a path of n segments the
    glob matches although it names fewer; elsewhere there is none."""
    example = spanning_example(glob, n)
    if not spans_segments(glob, n):
        assert example is None
        return
    assert example is not None
    assert matches(example, glob)
    assert example.count("/") == n - 1 > glob.count("/")


def test_the_example_of_a_glob_names_its_own_text() -> None:
    """The star inside a segment takes the missing segments, the others one character."""
    assert spanning_example("prod*", 2) == "prodx/y"
    assert spanning_example("*-api", 2) == "x/y-api"
    assert spanning_example("demo*", 3) == "demox/y/z"
    assert spanning_example("*/web-*?[0-9]", 3) == "x/web-x/yx0"
    assert spanning_example("prod/*", 2) is None
