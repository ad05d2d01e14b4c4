"""Health checks for local services: an HTTP URL or a command, each under a timeout.

Used by `jarvis.actuators.local.actuator` on every observe and while a start
waits for the service to come up. A check answers (passed, detail); it never
raises, since a failing check is what it exists to report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import aiohttp
import anyio
from anyio.abc import ByteReceiveStream

from jarvis.actuators.local.process import why_not_run
from jarvis.config.local import LocalServiceSettings

_TAIL_CHARS = 300
"""Characters of a failed health command's last stderr line kept in the detail."""
_STDERR_BYTES = 4096
"""Bytes of a health command's stderr kept to find that line."""


async def check(service: LocalServiceSettings, environment: dict[str, str]) -> tuple[bool, str]:
    """Run the service's health check; with none configured, a live process passes.
    ``environment``: a health command's, the service's own."""
    if service.health_url is not None:
        return await _url(service.health_url, service.health_timeout)
    if service.health_command is not None:
        return await _command(service, environment)
    return True, "no health check configured"


async def _url(url: str, seconds: float) -> tuple[bool, str]:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            status = response.status
    except TimeoutError:
        return False, f"health check {url}: no answer within {seconds:g} s"
    except aiohttp.ClientError as exc:
        return False, f"health check {url}: {type(exc).__name__}: {exc}"
    if 200 <= status < 400:
        return True, f"health check {url}: HTTP {status}"
    return False, f"health check {url}: HTTP {status}"


async def _command(service: LocalServiceSettings, environment: dict[str, str]) -> tuple[bool, str]:
    argv = service.health_command or []
    try:
        process = await anyio.open_process(
            argv,
            cwd=service.working_directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # A session of its own, so what it forked can be ended with it.
            start_new_session=True,
        )
    except OSError as exc:
        return False, f"health command cannot run: {why_not_run(exc, service.working_directory)}"
    finished = False
    async with process:
        try:
            with anyio.fail_after(service.health_timeout):
                stderr = await _tail(process.stderr)
                code = await process.wait()
                finished = True
        except TimeoutError:
            return False, f"health command did not finish within {service.health_timeout:g} s"
        finally:
            if not finished:
                # Timed out or cancelled: a hung check and its children, every
                # tick, would pile up on the host.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
    if code == 0:
        return True, "health command passed"
    tail = stderr.decode(errors="replace").strip().splitlines()
    # The end of the last line, as for a service's own stderr: the detail goes into events.
    last = tail[-1][-_TAIL_CHARS:] if tail else ""
    return False, f"health command exited {code}" + (f": {last}" if last else "")


async def _tail(stream: ByteReceiveStream | None) -> bytes:
    """The last `_STDERR_BYTES` of a stream, read to its end (so the pipe never fills)."""
    kept = b""
    if stream is not None:
        async for chunk in stream:
            kept = (kept + chunk)[-_STDERR_BYTES:]
    return kept
