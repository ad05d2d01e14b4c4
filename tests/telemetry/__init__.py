"""Tests of jarvis.telemetry: logging, metrics and the HTTP server."""
