"""A status page served in-process on a real store, for the page's own tests.

The server is the real `HttpServer` with the loop's real `AdminService` over
an `EventStore` on SQLite in tmp_path and an in-memory kill-switch backend;
nothing of Jarvis is faked. Seeded rows carry hostile strings on purpose.
`login` logs in to any page, a `jarvis run`'s too, for its forms.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from jarvis.config import Settings
from jarvis.loop.admin import AdminService
from jarvis.loop.clock import WallClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.model import Event, EventKind, RetryState
from jarvis.store import EventStore, MemoryKillSwitch, Redactor
from jarvis.telemetry.http import HttpServer
from jarvis.telemetry.metrics import Metrics
from jarvis.telemetry.web.view import BudgetView

ADMIN_TOKEN = "page-admin-token-0123456789"
READ_TOKEN = "page-read-token-0123456789"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HOSTILE = "sim://<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"


@dataclass
class PageServer:
    server: HttpServer
    store: EventStore
    metrics: Metrics

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


async def seed(store: EventStore) -> None:
    """A quarantined hostile resource, its escalation and an event naming it."""
    now = datetime.now(UTC)
    store.stage_retry(
        RetryState(
            resource=HOSTILE,
            action_kind="restart",
            attempts=(now,),
            consecutive_failures=3,
            quarantined=True,
            last_error="<b>boom</b>",
            updated_at=now,
        )
    )
    store.append(
        [
            Event(
                kind=EventKind.ACTION_ESCALATED,
                ts=now,
                idempotency_key="seed-escalated",
                resource=HOSTILE,
                action_kind="restart",
                reason="3 failures <script>window.pwned=3</script>",
            )
        ]
    )
    await store.flush()


@asynccontextmanager
async def page_server(
    tmp_path: Path,
    *,
    admin_token: str | None = ADMIN_TOKEN,
    store: EventStore | None = None,
    trusted_proxies: Sequence[str] = (),
    **service: Any,
) -> AsyncIterator[PageServer]:
    """The page on a fresh SQLite store in tmp_path, or on ``store`` (seeded either way).

    ``trusted_proxies`` are CIDRs, as in ``http.trusted_proxies``; ``service`` goes to
    `AdminService` (the override queue, the leader, the budgets).
    """
    settings = Settings(
        admin_token=SecretStr(admin_token) if admin_token else None,
        read_token=SecretStr(READ_TOKEN) if admin_token else None,
    )
    store = store or await EventStore.connect(
        f"sqlite+aiosqlite:///{tmp_path}/page.db", redactor=Redactor(settings.secrets)
    )
    await seed(store)
    admin = AdminService(KillSwitch(MemoryKillSwitch(), store, WallClock()), **service)
    metrics = Metrics()
    server = HttpServer(
        host="127.0.0.1",
        port=0,
        metrics=metrics,
        healthy=lambda: (True, "last tick finished 1.0s ago"),
        ready=_ready,
        admin=admin,
        admin_token=admin_token,
        read_token=READ_TOKEN if admin_token else None,
        redact=store.redactor.text,
        page=admin,
        budget=lambda: BudgetView("2026-11", 500.0, 412.5, 530.0),
        trusted_proxies=[ip_network(cidr) for cidr in trusted_proxies],
    )
    await server.start()
    try:
        yield PageServer(server, store, metrics)
    finally:
        await server.stop()
        await store.aclose()


async def _ready() -> tuple[bool, dict[str, str]]:
    return True, {}


def login(base: str, token: str, client: str) -> tuple[str, str]:
    """A session of ``token`` on the page at ``base`` and its CSRF token, logged in as
    ``client`` (a proxied address of its own, so that failed logins from 127.0.0.1 elsewhere
    in a test do not throttle it)."""
    with requests.Session() as session:
        answer = session.post(
            f"{base}/login",
            data={"token": token},
            headers={"X-Forwarded-For": client},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 303, answer.text
        cookie = answer.cookies.get("jarvis_session")
        assert cookie is not None, answer.headers
        page = session.get(f"{base}/", timeout=30)
    found = _CSRF.search(page.text)
    assert found is not None, page.text
    return cookie, found.group(1)
