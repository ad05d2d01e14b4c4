"""Requests no well-behaved client sends, on the real server: each is a 4xx, never a 500.

Some are written byte by byte on a raw connection, because an HTTP client
library refuses to send them (a header that is not UTF-8, a body that does
not decode); the server must still answer them, and audit what it audits.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from jarvis.model import EventKind
from tests.telemetry.page_support import ADMIN_TOKEN, READ_TOKEN, page_server

pytestmark = pytest.mark.anyio


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, no blank line) and ``body``; the status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = f"Content-Length: {len(body)}\r\n".encode() if body else b""
        writer.write(head + b"\r\n" + length + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/v1/killswitch", "/", "/ui/events"])
async def test_a_bearer_token_that_is_not_utf8_is_refused_as_unknown(
    tmp_path: Path, path: str
) -> None:
    """An Authorization header with bytes that are not UTF-8 is a 401, like any wrong token."""
    async with page_server(tmp_path) as served:
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + b"Authorization: Bearer \xff\xfe"
        status, _ = await raw_request(served.server.port, head)
    assert status == 401


def _multipart_token(part_headers: bytes) -> bytes:
    """A multipart form whose one field, ``token``, carries ``part_headers``."""
    disposition = b'Content-Disposition: form-data; name="token"\r\n'
    return b"--B\r\n" + disposition + part_headers + b"\r\nx\r\n--B--\r\n"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded; charset=no-such-charset", b"token=x"),
        (
            "multipart/form-data; boundary=B",
            _multipart_token(b"Content-Type: text/plain; charset=no-such-charset\r\n"),
        ),
        (
            "multipart/form-data; boundary=B",
            _multipart_token(b"Content-Transfer-Encoding: no-such-encoding\r\n"),
        ),
    ],
    ids=["form-charset", "field-charset", "field-transfer-encoding"],
)
async def test_a_form_in_an_unknown_encoding_is_a_400_and_audited(
    tmp_path: Path, content_type: str, body: bytes
) -> None:
    """A login form in a charset or transfer encoding nobody knows is a 400 page, recorded."""
    async with page_server(tmp_path) as served, aiohttp.ClientSession() as session:
        headers = {"Content-Type": content_type}
        async with session.post(f"{served.base}/login", data=body, headers=headers) as resp:
            assert resp.status == 400
            assert "form: unreadable" in await resp.text()
        events = await served.store.events(limit=10)
    audits = [e.payload["result"] for e in events if e.kind is EventKind.ADMIN_REQUEST]
    assert audits == ["bad_request"]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (
            "/v1/killswitch",
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        ),
        ("/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    ],
    ids=["admin-api", "page-login"],
)
async def test_a_body_that_does_not_decompress_is_a_400_and_audited(
    tmp_path: Path, path: str, headers: dict[str, str]
) -> None:
    """A body sent as gzip that is not gzip is a 400, recorded, and changes nothing."""
    async with page_server(tmp_path) as served, aiohttp.ClientSession() as session:
        headers = {**headers, "Content-Encoding": "gzip"}
        body = b'{"engaged": true, "reason": "x"}'
        async with session.post(f"{served.base}{path}", data=body, headers=headers) as resp:
            assert resp.status == 400
        events = await served.store.events(limit=10)
    assert [e.payload["result"] for e in events if e.kind is EventKind.ADMIN_REQUEST] == [
        "bad_request"
    ]
    assert not [e for e in events if e.kind.value.startswith("killswitch.")]


async def test_an_events_cursor_past_any_row_id_is_a_400(tmp_path: Path) -> None:
    """``/ui/events?after=`` beyond a 64-bit row id is a 400, not a 503 blaming the store."""
    async with page_server(tmp_path) as served, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {READ_TOKEN}"}
        url = f"{served.base}/ui/events?after={2**63}"
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"].startswith("after:")


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: \x00", "Invalid header value"),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: -1", "Content-Length"),
        (b"GET * HTTP/1.1\r\nHost: x", ""),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000, "more than 8190 bytes"),
        (
            b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
            "Transfer-Encoding",
        ),
    ],
    ids=["nul-header", "negative-length", "star-target", "long-header", "length-and-chunked"],
)
async def test_a_malformed_request_is_a_400_and_one_warning_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, head: bytes, reason: str
) -> None:
    """Any scanner can send these: each is logged once as a warning, never an error with a trace."""
    caplog.set_level(logging.DEBUG)
    async with page_server(tmp_path) as served:
        status, _ = await raw_request(served.server.port, head)
    assert status == 400
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "127.0.0.1" in warning.getMessage()
    assert reason in warning.getMessage()
    assert "\n" not in warning.getMessage()


async def test_tls_sent_to_the_http_port_stays_out_of_the_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A TLS hello on the plain port (a probe, a misconfigured check) is aiohttp's debug line."""
    caplog.set_level(logging.DEBUG)
    async with page_server(tmp_path) as served:
        status, _ = await raw_request(
            served.server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        )
    assert status == 400
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
