"""Loopback HTTP and HTTPS servers for endpoint probe tests, whose answers a test changes.

Each server is a real aiohttp server on 127.0.0.1 and a free port, stopped by
the fixture. The HTTPS one presents a self-signed certificate made here with
`cryptography` for 127.0.0.1, valid for `CERT_DAYS` days from now.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_DAYS = 10


@dataclass
class Behaviour:
    """What the server answers now; a test changes it between probes."""

    status: int = 200
    body: str = "ok: all systems go"
    delay: float = 0.0
    hits: int = 0
    in_flight: int = 0
    most_in_flight: int = 0


BEHAVIOUR = web.AppKey("behaviour", Behaviour)


@dataclass
class Server:
    url: str
    behaviour: Behaviour


async def _handle(request: web.Request) -> web.Response:
    behaviour: Behaviour = request.app[BEHAVIOUR]
    behaviour.hits += 1
    behaviour.in_flight += 1
    behaviour.most_in_flight = max(behaviour.most_in_flight, behaviour.in_flight)
    try:
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
    finally:
        behaviour.in_flight -= 1
    return web.Response(status=behaviour.status, text=behaviour.body)


async def _serve(context: ssl.SSLContext | None) -> AsyncIterator[Server]:
    behaviour = Behaviour()
    app = web.Application()
    app[BEHAVIOUR] = behaviour
    app.router.add_get("/{tail:.*}", _handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    host, port = runner.addresses[0][:2]
    scheme = "https" if context is not None else "http"
    try:
        yield Server(f"{scheme}://{host}:{port}/healthz", behaviour)
    finally:
        await runner.cleanup()


def self_signed(directory: Path, days: int) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1, good for
    ``days`` more days (a negative number: expired that many days ago)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1) + min(timedelta(days=days), timedelta(0)))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
async def http_server() -> AsyncIterator[Server]:
    async for server in _serve(None):
        yield server


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[Server]:
    async for server in _serve(self_signed(tmp_path, CERT_DAYS)):
        yield server


@pytest.fixture
async def expired_https_server(tmp_path: Path) -> AsyncIterator[Server]:
    """The HTTPS server with a certificate that expired 2 days ago."""
    async for server in _serve(self_signed(tmp_path, -2)):
        yield server
