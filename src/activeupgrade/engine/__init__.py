"""The engine: runs operator actions as requests made of journaled, idempotent steps."""
