"""The resource globs of the allow-list and the disruption budgets: one matcher for both.

A glob is matched against the whole resource path (the part after
``provider://``) as `fnmatch.fnmatchcase` matches, which is the rule README's
"Resource globs" states: ``*`` matches any run of characters, ``/`` included,
so it crosses path segments; ``?`` matches any one character, ``/`` included;
``[abc]`` and ``[a-z]`` one character of the set, ``[!abc]`` one outside it;
a ``[`` with no closing ``]`` is itself; every other character is itself,
case-sensitively. Configurations rely on ``*`` crossing ``/`` (``prod/*`` is
everything of cluster ``prod``, ``my-project/*`` every Cloud Run service of a
project), so the rule stays; `spans_segments` names the globs where it likely
surprises, for `jarvis config check` to warn about. Pure.
"""

from __future__ import annotations

import fnmatch

__all__ = ["matches", "spans_segments"]


def matches(path: str, glob: str) -> bool:
    """Whether ``glob`` matches the whole of ``path``; see the module docstring."""
    return fnmatch.fnmatchcase(path, glob)


def spans_segments(glob: str, segments: int) -> bool:
    """Whether ``glob`` has a ``*`` written inside a path segment (``prod*``, ``web-*``,
    ``*-api``) that must stand for more than that segment on paths of ``segments``
    segments, because the glob names fewer ``/`` than those paths have.

    ``prod*`` on ``ecs://CLUSTER/SERVICE`` reads as "clusters named prod…", yet
    allows ``production/api`` and ``prod-eu/api`` too: its ``*`` takes the ``/``.
    A ``*`` that is a whole segment (``*``, ``prod/*``) says "everything below"
    and is not flagged; nor is any glob with as many ``/`` as the paths
    (``prod*/*``), where no wildcard can take a ``/`` that a ``/`` of the glob
    must match.
    """
    parts = glob.split("/")
    if len(parts) >= segments:
        return False
    return any("*" in part and part.strip("*") for part in parts)
