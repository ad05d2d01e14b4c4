"""The endpoint sensor against loopback servers that answer awkwardly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from pydantic import SecretStr

from jarvis.actuators.probes.endpoints import EndpointSensor
from jarvis.config.endpoints import EndpointSettings
from jarvis.loop.clock import WallClock
from jarvis.model import Health, ResourceState

pytestmark = pytest.mark.anyio

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/healthz"
    finally:
        await runner.cleanup()


async def _in_two_pieces(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"status: ")
    # The rest comes in a later packet, as from any server that streams its page.
    await asyncio.sleep(0.2)
    await response.write(b"all systems go")
    await response.write_eof()
    return response


@pytest.fixture
async def two_piece_server() -> AsyncIterator[str]:
    async for url in _serve(_in_two_pieces):
        yield url


async def _observe(endpoint: EndpointSettings) -> ResourceState:
    sensor = EndpointSensor([endpoint], clock=WallClock())
    try:
        [state] = await sensor.observe()
        return state
    finally:
        await sensor.aclose()


async def test_the_expected_body_is_found_when_it_arrives_in_pieces(
    two_piece_server: str,
) -> None:
    """expect_body is matched against the whole body, not only its first packet."""
    endpoint = EndpointSettings(
        name="api",
        url=two_piece_server,  # type: ignore[arg-type]
        expect_body="all systems go",
        failure_threshold=1,
    )
    state = await _observe(endpoint)
    assert state.detail == ""
    assert state.health is Health.HEALTHY


@pytest.fixture
async def garbled_server() -> AsyncIterator[str]:
    """A server whose answer is not valid HTTP: a Content-Length that is not a number."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}/healthz"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_garbled_answer_is_described_without_the_url_secrets(garbled_server: str) -> None:
    """The HTTP client quotes the URL in its error; the detail keeps no token or password."""
    url = garbled_server.replace("http://", "http://probe:hunter22@") + "?token=s3cr3t-t0ken"
    state = await _observe(EndpointSettings(name="api", url=SecretStr(url), failure_threshold=1))
    assert state.health is Health.UNHEALTHY
    assert "Content-Length" in state.detail
    record = repr(state)
    assert "hunter22" not in record
    assert "s3cr3t-t0ken" not in record


async def _in_latin_1(_request: web.Request) -> web.StreamResponse:
    return web.Response(
        body="état: prêt".encode("iso-8859-1"),
        headers={"Content-Type": "text/plain; charset=iso-8859-1"},
    )


async def _undecodable(_request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=b"\xff\xfe ready \xc3",
        headers={"Content-Type": "text/plain; charset=no-such-charset"},
    )


async def test_the_expected_body_is_read_in_the_charset_the_server_names() -> None:
    """A page in ISO-8859-1, saying so, contains "prêt" as the operator wrote it."""
    async for url in _serve(_in_latin_1):
        state = await _observe(
            EndpointSettings(
                name="api", url=SecretStr(url), expect_body="prêt", failure_threshold=1
            )
        )
    assert state.health is Health.HEALTHY, state.detail


async def test_a_body_in_an_unknown_charset_is_judged_not_a_failed_observe() -> None:
    """An unknown charset and bytes that are not text: the body is read as UTF-8, loosely."""
    async for url in _serve(_undecodable):
        state = await _observe(
            EndpointSettings(
                name="api", url=SecretStr(url), expect_body="ready", failure_threshold=1
            )
        )
    assert state.health is Health.HEALTHY, state.detail
