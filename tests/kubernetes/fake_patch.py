"""Patch and label-selector semantics for the fake Kubernetes API server.

Used by `tests.kubernetes.fake_cluster` when a PATCH arrives: the three
content types the `kubernetes` client sends (strategic merge, JSON merge,
JSON patch) and the label-selector grammar of ``?labelSelector=``. Only the
subset Jarvis exercises is implemented, but what is implemented follows the
RFCs and the API server's behaviour, so a wrong patch fails here as it would
against a real cluster.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class PatchError(ValueError):
    """The patch cannot be applied; the API server answers 422 (or 415 for the type)."""


def apply_patch(target: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """Return a patched deep copy of ``target``; ``target`` is left untouched."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError("a JSON patch must be a list of operations")
        return _json_patch(copy.deepcopy(target), patch)
    if not isinstance(patch, dict):
        raise PatchError(f"a {media} body must be a JSON object")
    if media == MERGE:
        return _merge(copy.deepcopy(target), patch, strategic=False)
    if media == STRATEGIC:
        return _merge(copy.deepcopy(target), patch, strategic=True)
    raise PatchError(f"unsupported patch content type {content_type!r}")


def _merge(target: dict[str, Any], patch: Mapping[str, Any], *, strategic: bool) -> dict[str, Any]:
    # RFC 7386: null deletes, objects merge recursively, everything else replaces.
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = _merge(target[key], value, strategic=strategic)
        elif strategic and isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = _merge_list(target[key], value)
        elif isinstance(value, dict):
            target[key] = _merge({}, value, strategic=strategic)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _merge_list(current: list[Any], patch: list[Any]) -> list[Any]:
    # Strategic merge merges lists of named objects (containers, env, ports) by
    # their "name" merge key; other lists are replaced, as for merge patch.
    named = all(isinstance(item, dict) and "name" in item for item in [*current, *patch])
    if not named:
        return copy.deepcopy(patch)
    merged = [copy.deepcopy(item) for item in current]
    index = {item["name"]: pos for pos, item in enumerate(merged)}
    for item in patch:
        if item["name"] in index:
            pos = index[item["name"]]
            merged[pos] = _merge(merged[pos], item, strategic=True)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise PatchError(f"path component {part!r} does not exist") from exc
    return node


def _json_patch(doc: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    # RFC 6902, the operations kubectl and Jarvis send: add, remove, replace, test.
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"malformed JSON patch operation {op!r}")
        parts = _pointer(op["path"])
        if not parts:
            raise PatchError("replacing the whole document is not supported")
        parent = _parent(doc, parts)
        key: Any = parts[-1]
        if isinstance(parent, list):
            key = len(parent) if key == "-" else int(key)
        apply_op = _OPS.get(op["op"])
        if apply_op is None:
            raise PatchError(f"unsupported JSON patch op {op['op']!r}")
        apply_op(parent, key, op)
    return doc


def _present(parent: Any, key: Any) -> bool:
    return key in parent if isinstance(parent, dict) else 0 <= key < len(parent)


def _op_test(parent: Any, key: Any, op: dict[str, Any]) -> None:
    if not _present(parent, key):
        raise PatchError(f"test failed: {op['path']} is absent")
    if parent[key] != op.get("value"):
        raise PatchError(f"test failed: {op['path']} is {parent[key]!r}")


def _op_remove(parent: Any, key: Any, op: dict[str, Any]) -> None:
    if not _present(parent, key):
        raise PatchError(f"cannot remove absent {op['path']}")
    del parent[key]


def _op_add(parent: Any, key: Any, op: dict[str, Any]) -> None:
    if isinstance(parent, list):
        parent.insert(key, copy.deepcopy(op.get("value")))
    else:
        parent[key] = copy.deepcopy(op.get("value"))


def _op_replace(parent: Any, key: Any, op: dict[str, Any]) -> None:
    if not _present(parent, key):
        raise PatchError(f"cannot replace absent {op['path']}")
    parent[key] = copy.deepcopy(op.get("value"))


_OPS = {"test": _op_test, "remove": _op_remove, "add": _op_add, "replace": _op_replace}


_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)([\w./-]+)\s*$")


def _split_requirements(selector: str) -> list[str]:
    parts: list[str] = []
    depth, start = 0, 0
    for pos, char in enumerate(selector):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(selector[start:pos])
            start = pos + 1
    parts.append(selector[start:])
    return [part for part in parts if part.strip()]


def selector_matches(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy a label selector string; raise PatchError if malformed."""
    if not selector:
        return True
    for requirement in _split_requirements(selector):
        if match := _SET_RE.match(requirement):
            key, op, values = match.groups()
            wanted = {value.strip() for value in values.split(",") if value.strip()}
            found = key in labels and labels[key] in wanted
            if found != (op == "in"):
                return False
        elif match := _EQ_RE.match(requirement):
            key, op, value = match.groups()
            equal = labels.get(key) == value
            if equal != (op in {"=", "=="}):
                return False
        elif match := _EXISTS_RE.match(requirement):
            negate, key = match.groups()
            if (key in labels) == bool(negate):
                return False
        else:
            raise PatchError(f"unable to parse requirement: {requirement!r}")
    return True
