"""The terminal console (Textual)."""
