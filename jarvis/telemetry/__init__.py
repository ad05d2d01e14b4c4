"""Telemetry: how the daemon is watched and stopped from outside.

`logging` configures structlog (JSON lines or console) and routes stdlib
logging through it; `metrics` owns the Prometheus registry; `http` serves
``/metrics``, ``/healthz``, ``/readyz``, the kill-switch admin API (`admin`)
and the status page at ``/`` (`web`); `auth` and `audit` serve both.
This package sits above the store and below the loop: what it needs from the
loop (health, readiness, the kill switch) is injected as callables and a
protocol, never imported. Submodules are imported directly, so importing the
logging setup does not pull in aiohttp.
"""
