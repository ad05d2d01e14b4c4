"""The login throttle behind a load balancer: keyed by the client, not by the proxy.

On ECS behind an ALB, or on Cloud Run behind Google's front end, every request
reaches the daemon from the proxy's address. With ``http.trusted_proxies``
naming the proxies' networks, the throttle keys a login by the right-most
``X-Forwarded-For`` address that is not a trusted proxy; a peer outside those
networks is keyed by its own address, whatever it forwards. The server is the
real one on loopback, so 127.0.0.0/8 is the proxy here.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from jarvis.model import EventKind
from tests.cli.conftest import jarvis_env
from tests.daemon import running
from tests.telemetry.page_support import ADMIN_TOKEN, page_server
from tests.telemetry.test_hostile_requests import raw_request

pytestmark = pytest.mark.anyio

LOOPBACK = "127.0.0.0/8"


async def _login(
    session: aiohttp.ClientSession, base: str, token: str, forwarded: str | None
) -> int:
    """One login with ``X-Forwarded-For: forwarded`` (None: no header); its status."""
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    async with session.post(
        f"{base}/login", data={"token": token}, headers=headers, allow_redirects=False
    ) as response:
        return response.status


async def _guess_five_times(session: aiohttp.ClientSession, base: str, forwarded: str) -> None:
    for n in range(5):
        assert await _login(session, base, f"guess-{n}", forwarded) == 401


async def test_behind_a_trusted_proxy_one_client_locked_out_is_not_everyone(
    tmp_path: Path,
) -> None:
    """Five wrong tokens from one client lock out that client; another still logs in."""
    async with (
        page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served,
        aiohttp.ClientSession() as session,
    ):
        await _guess_five_times(session, served.base, "203.0.113.7")
        assert await _login(session, served.base, ADMIN_TOKEN, "203.0.113.7") == 429
        assert await _login(session, served.base, ADMIN_TOKEN, "198.51.100.9") == 303


@pytest.mark.parametrize(
    "forwarded",
    [
        # The client wrote the left-most entry itself; the proxy appended the real address.
        "198.51.100.9, 203.0.113.7",
        # Two layers of proxies, both trusted: the client is the one before them.
        "203.0.113.7, 127.0.0.9",
        "203.0.113.7,127.0.0.9, 127.0.0.10",
    ],
)
async def test_a_locked_out_client_is_known_by_the_address_its_proxies_saw(
    tmp_path: Path, forwarded: str
) -> None:
    """The client is the right-most untrusted address: never the left-most, which it chooses."""
    async with (
        page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served,
        aiohttp.ClientSession() as session,
    ):
        await _guess_five_times(session, served.base, "203.0.113.7")
        assert await _login(session, served.base, ADMIN_TOKEN, forwarded) == 429
        assert await _login(session, served.base, ADMIN_TOKEN, "198.51.100.9") == 303


@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8", "fd00::/8"]], ids=["none", "others"])
async def test_an_untrusted_peer_is_throttled_by_its_own_address_whatever_it_forwards(
    tmp_path: Path, trusted: list[str]
) -> None:
    """A peer outside the trusted networks cannot pick a new key per guess with the header."""
    async with (
        page_server(tmp_path, trusted_proxies=trusted) as served,
        aiohttp.ClientSession() as session,
    ):
        for n in range(5):
            assert await _login(session, served.base, f"guess-{n}", f"203.0.113.{n}") == 401
        assert await _login(session, served.base, ADMIN_TOKEN, "198.51.100.9") == 429


async def test_an_ipv6_client_is_throttled_by_its_64_not_by_each_address_in_it(
    tmp_path: Path,
) -> None:
    """Five guesses from five addresses of one /64 lock out the /64; the next /64 logs in."""
    async with (
        page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served,
        aiohttp.ClientSession() as session,
    ):
        for n in range(1, 6):
            status = await _login(session, served.base, f"guess-{n}", f"2001:db8:1:2::{n:x}")
            assert status == 401
        assert await _login(session, served.base, ADMIN_TOKEN, "2001:db8:1:2:ffff::9") == 429
        assert await _login(session, served.base, ADMIN_TOKEN, "[2001:db8:1:2::7]:443") == 429
        assert await _login(session, served.base, ADMIN_TOKEN, "2001:db8:1:3::1") == 303


@pytest.mark.parametrize(
    ("guessed_as", "locked", "free"),
    [
        ("203.0.113.7", "203.0.113.7", "203.0.113.8"),
        ("::ffff:203.0.113.7", "203.0.113.7", "::ffff:203.0.113.8"),
        ("203.0.113.7", "[::ffff:203.0.113.7]:80", "203.0.113.6"),
    ],
    ids=["v4", "mapped", "mapped-later"],
)
async def test_an_ipv4_client_is_throttled_by_its_own_address_even_written_as_ipv6(
    tmp_path: Path, guessed_as: str, locked: str, free: str
) -> None:
    """IPv4 stays one address a key (a /64 of ::ffff: would be every IPv4 client at once)."""
    async with (
        page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served,
        aiohttp.ClientSession() as session,
    ):
        await _guess_five_times(session, served.base, guessed_as)
        assert await _login(session, served.base, ADMIN_TOKEN, locked) == 429
        assert await _login(session, served.base, ADMIN_TOKEN, free) == 303


@pytest.mark.parametrize(
    ("guessed_as", "again_as"),
    [
        ("203.0.113.7:4711", "203.0.113.7"),
        ("203.0.113.7", "203.0.113.7:50123"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("[2001:db8::1]", "[2001:db8::1]:443"),
        ('"[2001:db8::1]:4711"', "2001:db8::1"),
        ("203.0.113.7:_a1-b", "203.0.113.7:1"),
        ("198.51.100.9:1, 203.0.113.7:4711", "203.0.113.7, 127.0.0.9:8443"),
    ],
    ids=["v4-port", "v4-port-later", "v6-port", "v6-brackets", "quoted", "obfuscated", "chain"],
)
async def test_an_address_forwarded_with_its_port_is_the_client_without_it(
    tmp_path: Path, guessed_as: str, again_as: str
) -> None:
    """An entry with its port (``a:port``, ``[v6]:port``, ``[v6]``, RFC 7239) names its address."""
    async with (
        page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served,
        aiohttp.ClientSession() as session,
    ):
        await _guess_five_times(session, served.base, guessed_as)
        assert await _login(session, served.base, ADMIN_TOKEN, again_as) == 429
        assert await _login(session, served.base, ADMIN_TOKEN, "198.51.100.77:4711") == 303


@pytest.mark.parametrize(
    "forwarded",
    [
        b"",
        b" , ",
        b"garbage",
        b"unknown",
        b"_hidden",
        b"203.0.113.7:",
        b"203.0.113.7:99999",
        b"203.0.113.7:abc",
        b"203.0.113.7:443:1",
        b"[203.0.113.7]:443",
        b"[2001:db8::1",
        b"2001:db8::1]:443",
        b"[2001:db8::1]:",
        b"[2001:db8::1]x",
        b'"203.0.113.7',
        b"203.0.113.7, not-an-address",
        b"203.0.113.7, 127.0.0.9, \xff\xfe",
        b"1" * 4000,
    ],
    ids=[
        "empty",
        "commas",
        "word",
        "unknown",
        "obfuscated-node",
        "empty-port",
        "big-port",
        "word-port",
        "two-ports",
        "bracketed-v4",
        "open-bracket",
        "close-bracket",
        "v6-empty-port",
        "after-bracket",
        "open-quote",
        "word-last",
        "not-utf8",
        "long",
    ],
)
async def test_a_malformed_forwarded_header_counts_against_the_proxy_and_is_never_a_500(
    tmp_path: Path, forwarded: bytes
) -> None:
    """What a trusted proxy would never write picks no key of its own: the peer's counts."""
    async with page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served:
        for n in range(5):
            head = (
                b"POST /login HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"X-Forwarded-For: " + forwarded
            )
            status, _ = await raw_request(served.server.port, head, f"token=guess-{n}".encode())
            assert status == 401
        # Straight from the proxy's own address, no header: locked out with it.
        async with aiohttp.ClientSession() as session:
            assert await _login(session, served.base, ADMIN_TOKEN, None) == 429


async def test_the_audit_trail_names_the_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    """Each ``admin.request`` (admin API and page) records who asked, not the balancer."""
    async with (
        page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served,
        aiohttp.ClientSession() as session,
    ):
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Forwarded-For": "203.0.113.7"}
        body = {"engaged": True, "reason": "incident"}
        async with session.post(f"{served.base}/v1/killswitch", json=body, headers=headers) as r:
            assert r.status == 200
        assert await _login(session, served.base, "wrong", "198.51.100.9") == 401
        events = await served.store.events(limit=20)
    audits = [e.payload["remote"] for e in events if e.kind is EventKind.ADMIN_REQUEST]
    assert audits == ["203.0.113.7", "198.51.100.9"]


async def test_the_daemon_reads_its_trusted_proxies_from_the_environment(tmp_path: Path) -> None:
    """``jarvis run`` with ``JARVIS_HTTP__TRUSTED_PROXIES``: one client locked out, not another."""
    env = jarvis_env(
        tmp_path,
        JARVIS_ADMIN_TOKEN=ADMIN_TOKEN,
        JARVIS_HTTP__HOST="127.0.0.1",
        JARVIS_HTTP__TRUSTED_PROXIES='["127.0.0.0/8"]',
    )
    with running(tmp_path, env, "--interval", "0.5") as daemon:
        async with aiohttp.ClientSession() as session:
            await _guess_five_times(session, daemon.base, "203.0.113.7")
            assert await _login(session, daemon.base, ADMIN_TOKEN, "203.0.113.7") == 429
            assert await _login(session, daemon.base, ADMIN_TOKEN, "198.51.100.9") == 303


async def _login_cookie(base: str, headers: dict[str, str]) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/login", data={"token": ADMIN_TOKEN}, headers=headers, allow_redirects=False
        ) as response,
    ):
        assert response.status == 303
        return response.headers["Set-Cookie"]


async def test_behind_a_trusted_tls_proxy_the_session_cookie_is_secure(tmp_path: Path) -> None:
    """The balancer ended TLS (``X-Forwarded-Proto: https``): the cookie is never sent over http."""
    async with page_server(tmp_path, trusted_proxies=[LOOPBACK]) as served:
        cookie = await _login_cookie(served.base, {"X-Forwarded-Proto": "https"})
        assert "; Secure" in cookie
        assert "HttpOnly" in cookie
        # A balancer's plain-http listener, or a port forward with no header: as it came.
        assert "Secure" not in await _login_cookie(served.base, {"X-Forwarded-Proto": "http"})
        assert "Secure" not in await _login_cookie(served.base, {})


async def test_an_untrusted_peer_does_not_choose_the_cookies_scheme(tmp_path: Path) -> None:
    """``X-Forwarded-Proto`` from a peer outside the trusted networks is not read."""
    async with page_server(tmp_path, trusted_proxies=["10.0.0.0/8"]) as served:
        assert "Secure" not in await _login_cookie(served.base, {"X-Forwarded-Proto": "https"})
