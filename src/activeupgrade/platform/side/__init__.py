"""Side part of the platform."""
