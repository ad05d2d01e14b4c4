"""Dependency probes: observe-only checks that the fleet's Postgres, Redis and S3 answer."""
