"""A real Prometheus server and an exporter the test controls, both on loopback.

`Exporter` serves `http_requests_total{service,code}` and
`http_request_duration_seconds{service}` from its own registry through
prometheus_client's HTTP server; a background thread feeds them at the rates
the test sets (`Exporter.traffic`), so Prometheus computes real rates from
real scrapes. `PrometheusServer` runs Debian's /usr/bin/prometheus with a
temporary configuration scraping that exporter every second (and, if given,
evaluating recording rules every second), and stops it when the test ends.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from tests.loopback import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
READY_DEADLINE = 90.0
STEP = 0.05


@dataclass
class Load:
    """One service's traffic: requests per second, the share that fails, and their latency."""

    per_second: float = 0.0
    error_share: float = 0.0
    latency_seconds: float = 0.05


class Exporter:
    """Counters the test moves, served over HTTP on a free loopback port."""

    def __init__(self, services: list[str]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests", "Requests served.", ["service", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency.",
            ["service"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.loads = {service: Load() for service in services}
        for service in services:  # present at zero, as an instrumented server would be
            self.requests.labels(service, "200").inc(0)
            self.requests.labels(service, "500").inc(0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.server, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port: int = self.server.server_port
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def traffic(self, service: str, load: Load) -> None:
        with self._lock:
            self.loads[service] = load

    def _feed(self) -> None:
        while not self._stop.wait(STEP):
            with self._lock:
                loads = dict(self.loads)
            for service, load in loads.items():
                count = load.per_second * STEP
                if count <= 0:
                    continue
                self.requests.labels(service, "500").inc(count * load.error_share)
                self.requests.labels(service, "200").inc(count * (1 - load.error_share))
                self.latency.labels(service).observe(load.latency_seconds)

    def close(self) -> None:
        self._stop.set()
        self._feeder.join(timeout=10)
        self.server.shutdown()
        self.server.server_close()


class PrometheusServer:
    """/usr/bin/prometheus scraping ``targets`` every second, on a free loopback port."""

    def __init__(self, targets: list[int], rules: str | None = None, job: str = "app") -> None:
        """``rules``: a rule file's YAML (rules evaluated every second), if any;
        ``job``: the scrape job's name, the ``job`` label of every series."""
        self._dir = Path(tempfile.mkdtemp(prefix="jarvis-prom-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        listed = ", ".join(f"'127.0.0.1:{port}'" for port in targets)
        rule_files = ""
        if rules is not None:
            (self._dir / "rules.yml").write_text(rules, encoding="utf-8")
            rule_files = f"rule_files: ['{self._dir / 'rules.yml'}']\n"
        (self._dir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"{rule_files}"
            f"scrape_configs:\n  - job_name: {job}\n"
            f"    static_configs:\n      - targets: [{listed}]\n",
            encoding="utf-8",
        )
        self._log = (self._dir / "prometheus.log").open("wb")
        try:
            self._process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self._dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self._dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:  # not installed: say so, and leave no file open or directory behind
            self._log.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise RuntimeError(
                f"cannot start {PROMETHEUS} (apt-get install prometheus): {exc}"
            ) from exc

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:  # noqa: S310 - loopback
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {READY_DEADLINE:g}s: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self._dir / "prometheus.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
