"""A TCP forwarder on 127.0.0.1 that tests stop and start to make a server go away.

Stopping it closes the listening socket and aborts every forwarded connection,
which is what a client sees when a database host dies: pooled connections are
lost and new ones are refused. Starting it again listens on the same port.
Freezing it keeps every connection open and forwards nothing, in either
direction, until it thaws: what a client sees of a database that was SIGSTOPped
or sits behind a partition that drops packets. Told to `cut_at` some bytes, it
stops the moment a client sends them, before forwarding them: a server that
dies at a given statement, for a client in another process that the test cannot
pause between two of its statements.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any


class TcpProxy:
    """Forwards connections on a loopback port to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._holding = asyncio.Event()
        self._cut_at: bytes | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen (on a free port the first time, the same port afterwards)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        if self._server is None:
            return
        self._cut()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def _cut(self) -> None:
        """Close the listening socket and abort every connection, at once."""
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.abort()

    def cut_at(self, marker: bytes) -> None:
        """Stop (as `stop`, once) when a client sends bytes containing ``marker``, which are
        not forwarded."""
        self._cut_at = marker

    def _upstream(self, data: bytes) -> bool:
        """Whether a client's ``data`` may go on to the server; cut everything if not."""
        if self._cut_at is None or self._cut_at not in data:
            return True
        self._cut_at = None
        self._cut()
        return False

    def freeze(self) -> None:
        """Keep connections (and accepting) but forward nothing until `thaw`."""
        self._holding.clear()
        self._flowing.clear()

    async def holding(self) -> None:
        """Return once a frozen proxy holds bytes back: a client is waiting on it."""
        await self._holding.wait()

    def thaw(self) -> None:
        self._flowing.set()

    def url_for(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        from sqlalchemy.engine import make_url

        return (
            make_url(url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._transports.add(writer.transport)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                writer.transport.abort()
                return
            self._transports.add(up_writer.transport)
            await asyncio.gather(
                _pipe(reader, up_writer, self._flowing, self._holding, self._upstream),
                _pipe(up_reader, writer, self._flowing, self._holding),
            )
        finally:
            self._tasks.discard(task)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    flowing: asyncio.Event,
    holding: asyncio.Event,
    passes: Callable[[bytes], bool] = lambda _data: True,
) -> None:
    try:
        while data := await reader.read(65536):
            if not flowing.is_set():
                holding.set()
            await flowing.wait()
            if not passes(data):
                return
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
