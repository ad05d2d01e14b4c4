"""A private PostgreSQL on a free loopback port, with password (SCRAM) authentication.

The shared server on 5432 trusts every role, so it cannot refuse a password; a test
that needs one refused starts its own here (`initdb`, `pg_ctl`) and stops it when it
ends. initdb refuses to run as root, and the tests run as root: the server's programs
then run under ``setpriv`` as ``nobody``, as `tests.cli.conftest.as_another_user`
runs `jarvis` under ``setpriv`` without root's file capabilities. Its files live in a
directory of their own under the system temp directory (pytest's is root's alone).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.loopback import free_port

SUPERUSER_PASSWORD = "private-superuser-pw"
"""The password of role ``postgres`` on a private server."""


def _bindir() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, or Debian's newest version's."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = Path("/usr/lib/postgresql").glob("*/bin/initdb")
    newest = max(
        versions, key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0, default=None
    )
    return None if newest is None else newest.parent


class PrivatePostgres:
    """One PostgreSQL server with ``pg_hba`` lines of the test's choosing (SCRAM)."""

    def __init__(self, bindir: Path, hba: Sequence[str]) -> None:
        self.bindir = bindir
        self.hba = list(hba)
        """``pg_hba.conf``'s lines, first match wins."""
        self.port = free_port()
        self.halted = False
        self.root = Path(tempfile.mkdtemp(prefix="jarvis-test-pg-"))
        self._as: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
            self._as.append("--clear-groups")

    def url(self, user: str, password: str | None = None, database: str = "postgres") -> str:
        secret = "" if password is None else f":{password}"
        return f"postgresql+asyncpg://{user}{secret}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_dsn(self) -> str:
        """The superuser's, as asyncpg takes it."""
        return self.url("postgres", SUPERUSER_PASSWORD).replace("postgresql+asyncpg", "postgresql")

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> None:
        data = self.root / "data"
        secret = self.root / "superuser-password"
        secret.write_text(SUPERUSER_PASSWORD + "\n")
        secret.chmod(0o644)
        self._run(
            "initdb", "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={secret}", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        (data / "pg_hba.conf").write_text("\n".join(self.hba) + "\n")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "password_encryption = 'scram-sha-256'\nfsync = off\n"
            )
        self._run(
            "pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-w", "-t", "60", "start"
        )

    def halt(self) -> None:
        """Stop the server now, as an outage would, its sessions ended; `stop` then only
        removes its files."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        self.halted = True

    def stop(self) -> None:
        try:
            if not self.halted:
                self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres(hba: Sequence[str]) -> Iterator[PrivatePostgres]:
    """A started server; skipped (failed under CI=true) when none can be started here."""
    bindir = _bindir()
    if bindir is None:
        message = "PostgreSQL's initdb is not installed"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true a missing server is a failure")
        pytest.skip(message)
    server = PrivatePostgres(bindir, hba)
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        shutil.rmtree(server.root, ignore_errors=True)
        if IN_CI:
            pytest.fail(f"cannot start a private PostgreSQL: {exc}")
        pytest.skip(f"cannot start a private PostgreSQL: {exc}")
    try:
        yield server
    finally:
        server.stop()
