"""Configuration files over the API: schema, show, summary, validate, load, save.

The same functions as ``au config`` (``config.loader``, ``config.show``, ``config.summary``),
so a bad file gets the identical ConfigError message and hint in the CLI and the consoles.
Files are named by absolute path or by bare name in the default folder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of, read_json
from activeupgrade.config import loader
from activeupgrade.config.export import json_schema
from activeupgrade.config.model import Config
from activeupgrade.config.show import show_dict
from activeupgrade.config.summary import summary_lines
from activeupgrade.durable import write_durably
from activeupgrade.errors import UsageError

MAX_TEXT = 1024 * 1024


def _path_param(request: Request, body: dict[str, Any] | None = None) -> str:
    # ``file`` is accepted too: ``Client.get(route, path=...)`` would clash with its own
    # first parameter.
    query = request.query_params
    raw = (body or {}).get("path", query.get("path", query.get("file")))
    if raw is not None and not isinstance(raw, str):
        raise UsageError("`path` must be a string")
    return raw or ""


def _config(request: Request, name: str) -> Config:
    """``name``'s configuration; "" means the loaded one (or none: every adopted volume)."""
    d = daemon_of(request)
    if not name:
        return d.platform.idle_config(d.engine.status().config)
    return loader.load_file(loader.resolve_in_folder(d.instance, name))


def config_validation(cfg: Config) -> dict[str, Any]:
    return {"valid": True, "source": cfg.source, "files": list(cfg.files),
            "notices": list(cfg.notices)}


async def schema(request: Request) -> JSONResponse:
    """The JSON Schema (draft 2020-12) of configuration files."""
    return JSONResponse(json_schema())


async def show(request: Request) -> JSONResponse:
    """The effective configuration with the file of every setting (``?path=`` or
    ``?file=``; default: the loaded file)."""
    name = _path_param(request)
    cfg = await asyncio.to_thread(_config, request, name)
    return JSONResponse(show_dict(cfg))


async def summary(request: Request) -> JSONResponse:
    """The upgrade summary in plain words (``?path=``; default: the loaded file)."""
    name = _path_param(request)
    cfg = await asyncio.to_thread(_config, request, name)
    lines = summary_lines(cfg)
    return JSONResponse({"source": cfg.source, "lines": lines, "text": "\n".join(lines)})


async def validate(request: Request) -> JSONResponse:
    """Check a file (``{"path": P}``) or unsaved text (``{"name": N, "text": T}``).

    Valid: ``{"valid": true, ...}``; invalid: the ConfigError (file, line, field, hint).
    """
    d = daemon_of(request)
    body = await read_json(request) if request.method == "POST" else {}
    if "text" in body:
        target, text = _save_target(d.instance.configs, body)
        cfg = await asyncio.to_thread(loader.load_text, target, text)
    else:
        cfg = await asyncio.to_thread(_config, request, _path_param(request, body))
    return JSONResponse(config_validation(cfg))


def _save_target(folder: Path, body: dict[str, Any]) -> tuple[Path, str]:
    name, text = body.get("name"), body.get("text")
    if not isinstance(name, str) or not isinstance(text, str):
        raise UsageError("the body needs `name` (a file name) and `text` (TOML)")
    if not name or "/" in name or name.startswith(".") or not name.endswith(".toml"):
        raise UsageError(f"{name!r} is not a configuration file name",
                         hint="Use a plain name ending in .toml, e.g. shop.toml.")
    if len(text.encode()) > MAX_TEXT:
        raise UsageError("the configuration text is too large")
    return folder / name, text


async def save(request: Request) -> JSONResponse:
    """Validate then save ``{"name": N, "text": T}`` in the default folder (atomically)."""
    d = daemon_of(request)
    body = await read_json(request)
    target, text = _save_target(d.instance.configs, body)

    def write() -> Config:
        cfg = loader.load_text(target, text)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        write_durably(target, text.encode(), 0o644)
        return cfg

    cfg = await asyncio.to_thread(write)
    return JSONResponse({"saved": str(target), **config_validation(cfg)})


async def load(request: Request) -> JSONResponse:
    """Make a file the configuration of the next session after validating it
    (``{"path": P}``; ``""`` for none: every adopted volume)."""
    d = daemon_of(request)
    body = await read_json(request)
    name = _path_param(request, body)
    path = ""
    if name:
        resolved = loader.resolve_in_folder(d.instance, name)
        await asyncio.to_thread(loader.load_file, resolved)
        path = str(resolved)
    d.engine.set_config(path)
    return JSONResponse({"loaded": path, "status": await asyncio.to_thread(
        d.engine.status_view)})


async def files(request: Request) -> JSONResponse:
    """The configuration files of the default folder."""
    d = daemon_of(request)
    folder = d.instance.configs
    names = sorted(p.name for p in folder.glob("*.toml")) if folder.is_dir() else []
    return JSONResponse({"folder": str(folder), "files": names,
                         "loaded": d.engine.loaded_config()})


routes = [
    Route("/config/schema", schema, methods=["GET"]),
    Route("/config/show", show, methods=["GET"]),
    Route("/config/summary", summary, methods=["GET"]),
    Route("/config/validate", validate, methods=["GET", "POST"]),
    Route("/config/load", load, methods=["POST"]),
    Route("/config/save", save, methods=["POST"]),
    Route("/config/files", files, methods=["GET"]),
]
