"""Readiness checks (SPEC §9)."""
