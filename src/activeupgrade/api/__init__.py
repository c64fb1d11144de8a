"""The daemon's HTTP API (Unix socket, root-only; optionally TCP with a token)."""
