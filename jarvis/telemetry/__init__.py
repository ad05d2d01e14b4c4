"""Telemetry: how the daemon is watched and stopped from outside.

`logging` configures structlog (JSON lines or console) and routes stdlib
logging through it; `metrics` owns the Prometheus registry; `http` serves
``/metrics``, ``/healthz``, ``/readyz`` and the kill-switch admin API (`admin`).
This package sits above the store and below the loop: what it needs from the
loop (health, readiness, the kill switch) is injected as callables and a
protocol, never imported. Submodules are imported directly, so importing the
logging setup does not pull in aiohttp.
"""
