"""Services part of the platform."""
