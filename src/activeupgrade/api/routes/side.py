"""The Upgrade Side. Running a command in it (``exec``) and restarting it are maintenance
operations of the engine (``routes/operations.py``); nothing else here changes it."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
