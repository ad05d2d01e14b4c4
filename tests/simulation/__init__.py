"""Tests for the simulation harness, its fault plan and its invariant checker."""
