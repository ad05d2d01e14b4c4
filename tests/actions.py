"""Typed reads of an action's params for assertions: each fails the test on another kind."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from jarvis.model import Action, Rollback, Scale, SetWeights


def replicas(action: Action) -> int | None:
    """The replica count a scale action asks for."""
    assert isinstance(action.params, Scale), action
    return action.params.replicas


def version(action: Action) -> str:
    """The version a rollback action returns to."""
    assert isinstance(action.params, Rollback), action
    return action.params.version


def weights(action: Action) -> Mapping[str, float]:
    """The weights a set_weights action writes."""
    assert isinstance(action.params, SetWeights), action
    return action.params.weights


_keys = itertools.count()


def new_key() -> str:
    """An idempotency key no other apply in this process used: a new action id."""
    return f"test-key-{next(_keys)}"
