"""The resource glob rule README states ("Resource globs") is the rule the allow-list and
the disruption budgets match by: pinned by a property against a matcher written from
the README's words alone, and `spans_segments` by what a warning-free glob promises."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.model import Action, ResourceRef, Restart
from jarvis.safety import AllowRule, DisruptionBudget
from jarvis.safety.globs import matches, spans_segments

HOUR = timedelta(hours=1)


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
def test_the_allowlist_and_budgets_match_by_the_documented_rule(path: str, glob: str) -> None:
    """An allow-list entry permits, and a budget covers, exactly the paths README's rule
    says its glob matches; ``*`` and ``?`` take ``/`` too."""
    expected = documented(path, glob)
    assert matches(path, glob) is expected
    target = ResourceRef("ecs", path)
    rule = AllowRule("ecs", glob, frozenset({"*"}))
    assert rule.permits(Action(target, Restart(), "p", "r")) is expected
    assert DisruptionBudget("b", HOUR, max_changes=1, resources=glob).covers(target) is expected


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
