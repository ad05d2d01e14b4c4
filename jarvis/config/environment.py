"""The ``JARVIS_*`` environment variables Jarvis reads, and the misspelt ones it refuses.

pydantic-settings ignores a variable that names no field, so a typo such as
``JARVIS_DRYRUN=1`` would silently leave dry run off. `load_settings` calls
`unknown_variables` first and turns each unknown name into an error that names
the closest real key. The names come from the `Settings` model itself
(``JARVIS_<FIELD>``, ``JARVIS_<SECTION>__<FIELD>``, any key under a mapping
field), so a new setting needs no list kept by hand. `not_json` finds the variable
whose list or table is not JSON, where pydantic-settings names only its section.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Mapping

from pydantic import BaseModel

PREFIX = "JARVIS_"
DELIMITER = "__"

#: Read by `load_settings` itself rather than by a settings field.
RESERVED = frozenset({"JARVIS_CONFIG"})
#: The test suite's and the benchmarks' own variables, never read by Jarvis.
FOREIGN_PREFIXES = ("JARVIS_TEST_", "JARVIS_BENCH_")


def known_names(model: type[BaseModel], prefix: str = PREFIX) -> tuple[set[str], set[str]]:
    """Exact variable names, and prefixes under which any name is a mapping key."""
    exact: set[str] = set()
    open_prefixes: set[str] = set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        exact.add(env)
        for member in _members(field.annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                more, under = known_names(member, env + DELIMITER)
                exact |= more
                open_prefixes |= under
            elif typing.get_origin(member) in {dict, Mapping}:
                open_prefixes.add(env + DELIMITER)
    return exact, open_prefixes


def unknown_variables(model: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """One line per ``JARVIS_*`` variable no setting reads, with the closest real name."""
    exact, open_prefixes = known_names(model)
    lines = []
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(PREFIX) or name in exact or name in RESERVED:
            continue
        if name.startswith(FOREIGN_PREFIXES) or name.startswith(tuple(open_prefixes)):
            continue
        close = difflib.get_close_matches(name, sorted(exact | RESERVED), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"  {variable}: no setting has this name{hint}")
    return lines


def _members(annotation: object) -> tuple[object, ...]:
    """The alternatives of a union (``X | None``), or the annotation itself."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def not_json(field: str | None, environ: Mapping[str, str]) -> list[str]:
    """The variables under settings field ``field`` (None: any ``JARVIS_*``) whose value
    opens a list or table (``[`` or ``{``) that is not JSON, or nests too deeply to
    decode; pydantic-settings names only the field."""
    name = PREFIX if field is None else f"{PREFIX}{field.upper()}"
    found = []
    for variable, value in sorted(environ.items()):
        upper = variable.upper()
        under = upper.startswith(name) if field is None else upper == name
        under = under or upper.startswith(name + DELIMITER)
        if under and value.lstrip()[:1] in {"[", "{"}:
            try:
                json.loads(value)
            except (ValueError, RecursionError):
                found.append(variable)
    return found
