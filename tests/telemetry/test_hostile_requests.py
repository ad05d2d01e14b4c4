"""Requests no well-behaved client sends, on the real server: each is a 4xx, never a 500.

Some are written byte by byte on a raw connection, because an HTTP client
library refuses to send them (a header that is not UTF-8, a body that does
not decode); the server must still answer them, and audit what it audits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.telemetry.page_support import page_server

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
