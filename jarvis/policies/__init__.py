"""Policies: pure decision functions of (snapshot, history, now)."""
