"""The status page's override form, read into the action the daemon's next tick guards.

The form names a resource, one of `OVERRIDE_KINDS` and its one value (the
replicas of a scale, the version of a rollback), and an optional reason. It is
turned into an action by the same builder as ``jarvis restart|rollback|scale``
(`jarvis.policies.operator`), with the page's actor (``admin-token``), so the
record of an override says who asked whichever surface they used.
"""

from __future__ import annotations

from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from jarvis.model import Action, ResourceRef, reason_too_long
from jarvis.policies.operator import operator_action, override_params

__all__ = ["page_action"]


def _text(form: MultiDictProxy[str | bytes | bytearray | FileField], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def page_action(form: MultiDictProxy[str | bytes | bytearray | FileField], actor: str) -> Action:
    """The override the form asks for; ValueError with a line for the operator when malformed."""
    resource = _text(form, "resource")
    if not resource:
        raise ValueError("resource: required (a URI such as ecs://CLUSTER/SERVICE)")
    target = ResourceRef.parse(resource)
    params = override_params(
        _text(form, "action"), replicas=_text(form, "replicas"), version=_text(form, "version")
    )
    reason = _text(form, "reason")
    too_long = reason_too_long(reason)
    if too_long is not None:
        raise ValueError(too_long)
    return operator_action(target, params, actor=actor, reason=reason or None)
