"""Resource globs: the one matcher of every glob in the configuration.

The allow-list and the disruption budgets (over the path after
``provider://``), scaling rules' and rollback's ``match`` (over the whole
URI), notification routes, silences and inhibition rules (over an alert's
resource URI or cause) and SLOs' ``endpoints`` (over endpoint names) all
match by `matches`, so an operator learns one rule, the one README's
"Resource globs" states. It is `fnmatch.fnmatchcase`'s: ``*`` matches any run
of characters, ``/`` included, so it crosses path segments; ``?`` matches any
one character, ``/`` included; ``[abc]`` and ``[a-z]`` one character of the
set, ``[!abc]`` one outside it; a ``[`` with no closing ``]`` is itself;
every other character is itself, case-sensitively. Configurations rely on
``*`` crossing ``/`` (``prod/*`` is everything of cluster ``prod``,
``my-project/*`` every Cloud Run service of a project), so the rule stays;
`spans_segments` names the globs where it likely surprises, and
`spanning_example` a path that shows it, for `jarvis config check` to warn
about. Pure; in the model so that every layer may import it.
"""

from __future__ import annotations

import fnmatch
import string

__all__ = ["matches", "spanning_example", "spans_segments"]

#: Characters an example path may put where a glob has a ``?`` or a ``[...]``.
_CANDIDATES = "x" + string.ascii_letters + string.digits + "-_.~"


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


def spanning_example(glob: str, segments: int) -> str | None:
    """A path of ``segments`` segments that ``glob`` matches by its first ``*`` inside a
    segment taking the missing ``/``: ``prod*`` on two segments gives ``prodx/y``,
    ``*-api`` gives ``x/y-api``; every other wildcard becomes one character.

    None when `spans_segments` does not flag ``glob``, or when no such path can be
    built (a ``[...]`` no plain character matches).
    """
    if not spans_segments(glob, segments):
        return None
    parts = glob.split("/")
    filler = "/".join(_names(segments - len(parts) + 1))
    spanning = next(i for i, part in enumerate(parts) if "*" in part and part.strip("*"))
    example = "/".join(
        _concrete(part, filler if i == spanning else None) for i, part in enumerate(parts)
    )
    return example if matches(example, glob) else None


def _names(count: int) -> list[str]:
    return ["xyz"[i] if i < 3 else f"z{i - 2}" for i in range(count)]


def _concrete(part: str, filler: str | None) -> str:
    """``part`` with its first ``*`` as ``filler`` (when given), every other ``*`` and
    ``?`` as ``x``, and each ``[...]`` as a character it matches, read as fnmatch reads it."""
    out: list[str] = []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        i += 1
        if c == "*":
            out.append(filler if filler is not None else "x")
            filler = None
        elif c == "?":
            out.append("x")
        elif c == "[":
            j = i
            if j < n and part[j] == "!":
                j += 1
            if j < n and part[j] == "]":
                j += 1
            while j < n and part[j] != "]":
                j += 1
            if j >= n:
                out.append("[")
                continue
            chars = part[i - 1 : j + 1]
            out.append(next((ch for ch in _CANDIDATES if matches(ch, chars)), chars))
            i = j + 1
        else:
            out.append(c)
    return "".join(out)
