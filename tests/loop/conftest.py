"""Fixtures for loop tests: a virtual clock, a fake fleet and an app factory
wired through the real composition root on a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.policies.base import Policy
from tests.fakes import FakeActuator

AppFactory = Callable[..., Awaitable[App]]

ALLOW_SIM = [{"provider": "sim", "resources": "*", "actions": ["*"]}]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def fleet(clock: VirtualClock) -> FakeActuator:
    return FakeActuator(clock).add("api", "web", "worker")


@pytest.fixture
async def db_url(sqlite_url: str) -> str:
    """The database loop tests run on; modules override it to run on Postgres too."""
    return sqlite_url


@pytest.fixture
async def make_app(
    db_url: str, clock: VirtualClock, fleet: FakeActuator
) -> AsyncIterator[AppFactory]:
    """Builds apps on one database; every app built is closed at the end."""
    apps: list[App] = []

    async def factory(
        policies: Sequence[Policy] = (),
        *,
        database_url: str | None = None,
        actuators: Sequence[Any] | None = None,
        sources: Sequence[Any] | None = None,
        **overrides: Any,
    ) -> App:
        overrides.setdefault("allowlist", ALLOW_SIM)
        settings = load_settings(database_url=database_url or db_url, **overrides)
        app = await build_app(
            settings,
            clock=clock,
            actuators=[fleet] if actuators is None else actuators,
            sources=sources,
            policies=policies,
            run_id="test",
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()
