"""Volumes part of the platform."""
