"""Which configured values are secrets, for the store's redactor (`jarvis.store.redact`).

Every ``SecretStr`` anywhere in the settings is one (the admin and read
tokens, the Kubernetes token, probe URLs, and any webhook URL a section types
as ``SecretStr``), and so is the password inside any URL, secret or not
(``database_url``, ``redis_url``): a connection error message that quotes its
URL must not carry the password into an event. Walking the model instead of
listing keys means a secret added later is redacted without anyone
remembering to add it here.

`Token` is the type of the admin and read tokens: long enough not to be guessed, and
free of the line break a token read from a file may keep (`jarvis.config.urls.plain_text`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, SecretStr

from jarvis.config.urls import plain_text

__all__ = ["TOKEN_MIN_LENGTH", "Token", "known_secrets", "secret_variables"]

TOKEN_MIN_LENGTH = 16
"""Characters a bearer token needs at least: ``openssl rand -hex 32`` gives 64."""


def _usable_token(value: SecretStr) -> SecretStr:
    # Empty stays allowed: it counts as unset (`jarvis.telemetry.auth`), which refuses all.
    text = value.get_secret_value()
    if not text:
        return value
    plain_text(text)
    if len(text) < TOKEN_MIN_LENGTH:
        raise ValueError(
            f"must be at least {TOKEN_MIN_LENGTH} characters, or a guess could find it; "
            "generate one with `openssl rand -hex 32`"
        )
    return value


Token = Annotated[SecretStr, AfterValidator(_usable_token)]
"""A bearer token (the admin or read token); the error never quotes it."""


def known_secrets(settings: BaseModel) -> tuple[str, ...]:
    """Secret strings in ``settings``: SecretStr values and URL passwords, unique."""
    found: dict[str, None] = {}
    for _, value in _leaves(settings):
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            found[text] = None
        elif isinstance(value, str):
            text = value
        else:
            continue
        password = _password(text)
        if password:
            found[password] = None
            found[unquote(password)] = None
    return tuple(found)


def secret_variables(settings: BaseModel) -> frozenset[str]:
    """The environment variables ``settings`` read secrets from: every ``*_env`` field's
    value (``webhook_url_env = "SLACK_WEBHOOK_URL"``), wherever it is in the tree."""
    leaves = _leaves(settings)
    return frozenset(v for name, v in leaves if name.endswith("_env") and isinstance(v, str))


def _password(value: str) -> str | None:
    if "://" not in value or "@" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def _leaves(value: object, name: str = "") -> Iterator[tuple[str, object]]:
    """Every value in a settings tree that is not a model, dict, list or tuple, with the
    name of the field that holds it."""
    if isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from _leaves(getattr(value, field), field)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item, name)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item, name)
    else:
        yield name, value
