"""Actions part of the platform."""
