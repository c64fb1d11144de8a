"""Durable state: one SQLite database per instance (WAL, synchronous=FULL)."""
