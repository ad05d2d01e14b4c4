"""Prometheus as a metric source: service metrics by PromQL over the HTTP query API."""
