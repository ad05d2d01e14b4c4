"""Which configured values are secrets, for the store's redactor (`jarvis.store.redact`).

Every ``SecretStr`` anywhere in the settings is one (the admin and read
tokens, the Kubernetes token, probe URLs, and any webhook URL a section types
as ``SecretStr``), and so is the password inside any URL, secret or not
(``database_url``, ``redis_url``): a connection error message that quotes its
URL must not carry the password into an event. Walking the model instead of
listing keys means a secret added later is redacted without anyone
remembering to add it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

__all__ = ["known_secrets", "secret_variables"]


def known_secrets(settings: BaseModel) -> tuple[str, ...]:
    """Secret strings in ``settings``: SecretStr values and URL passwords, unique."""
    found: dict[str, None] = {}
    for value, secret in _strings(settings):
        if secret:
            found[value] = None
        password = _password(value)
        if password:
            found[password] = None
            found[unquote(password)] = None
    return tuple(found)


def secret_variables(settings: BaseModel) -> frozenset[str]:
    """The environment variables ``settings`` read secrets from: every ``*_env`` field's
    value (``webhook_url_env = "SLACK_WEBHOOK_URL"``), wherever it is in the tree."""
    return frozenset(_variables(settings))


def _variables(value: object) -> Iterator[str]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field = getattr(value, name)
            if name.endswith("_env") and isinstance(field, str):
                yield field
            else:
                yield from _variables(field)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _variables(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _variables(item)


def _password(value: str) -> str | None:
    if "://" not in value or "@" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def _strings(value: object) -> Iterator[tuple[str, bool]]:
    """Every string in a settings tree, and whether it was typed a secret."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value(), True
    elif isinstance(value, str):
        yield value, False
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _strings(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
