"""Configuration files (SPEC §8): TOML, nested, with provenance for every setting."""
