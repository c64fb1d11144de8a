"""The platform parts: volumes, Upgrade Side, services, custom actions, backup.

``recipe.py`` composes their steps into the requests of SPEC §3; ``host.py`` is the real
Platform the daemon gives the engine.
"""
