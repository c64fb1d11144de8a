"""The Configuration page: create, load, edit and save configuration files.

Files live in the instance's configuration folder. Reading, validating and summarising go
through the configuration part's own functions (``config.loader``, ``config.summary``,
``config.template``), so a file gets exactly the ConfigError message and hint that
``au config validate`` prints. Making a file the next session's configuration goes through
the API (``POST /config/loaded``), which refuses it while a session runs.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from activeupgrade.config import loader
from activeupgrade.config.files import write_durably
from activeupgrade.config.model import Config
from activeupgrade.config.template import write_template
from activeupgrade.errors import AUError, ConfigError

if TYPE_CHECKING:
    from activeupgrade.daemon import Daemon
    from activeupgrade.ui.web.app import Api

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.toml$")
"""File names the console creates and edits: plain names in the configuration folder."""


def checked_name(raw: str) -> str:
    name = raw.strip()
    if name and not name.endswith(".toml"):
        name += ".toml"
    if not NAME.match(name):
        raise ConfigError(
            f"{raw!r} is not a configuration file name",
            hint="Use letters, digits, '.', '_' or '-', ending in .toml (no folders).",
        )
    return name


@dataclass
class ConfigView:
    """Everything the Configuration page shows about one file."""

    name: str = ""
    path: str = ""
    text: str = ""
    includes: list[dict[str, Any]] = field(default_factory=list)
    config: Config | None = None
    error: dict[str, Any] | None = None
    loaded: bool = False


def _direct_includes(text: str) -> list[str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    found = data.get("include", [])
    return [str(x) for x in found] if isinstance(found, list) else []


def view_of(folder: Path, name: str, loaded: str) -> ConfigView:
    path = folder / name
    view = ConfigView(name=name, path=str(path), loaded=(loaded == str(path)))
    try:
        view.text = path.read_text()
    except OSError as exc:
        view.error = ConfigError(f"cannot read {path}: {exc.strerror}",
                                 hint="Create it with New file.").to_dict()
        return view
    try:
        view.config = loader.load_file(path)
    except AUError as exc:
        view.error = exc.to_dict()
    direct = set(_direct_includes(view.text))
    # Files reached only through a child are inherited: shown greyed, not editable here.
    reached = {Path(f).name for f in (view.config.files if view.config else ())} - {name}
    for other in list_files(folder):
        if other == name:
            continue
        view.includes.append({
            "name": other, "direct": other in direct,
            "inherited": other in reached and other not in direct,
        })
    return view


def list_files(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.glob("*.toml") if p.is_file())
    except OSError:
        return []


async def page_context(api: Api, d: Daemon, params: Any, *, notice: str = "",
                       error: dict[str, Any] | None = None) -> dict[str, Any]:
    folder = d.instance.configs
    status, _ = await api.get("/status")
    loaded = (status or {}).get("config", "")
    view = None
    name = params.get("file", "")
    if name:
        try:
            name = checked_name(name)
        except ConfigError as exc:
            error = exc.to_dict()
        else:
            view = await asyncio.to_thread(view_of, folder, name, loaded)
    return {"folder": str(folder), "files": list_files(folder), "view": view,
            "loaded": loaded, "notice_text": notice, "action_error": error,
            "in_session": bool((status or {}).get("session"))}


async def save(request: Request) -> Response:
    """Write the edited text, then show the file validated."""
    from activeupgrade.ui.web.app import render

    d: Daemon = request.app.state.daemon
    form = await request.form()
    text = str(form.get("text", "")).replace("\r\n", "\n")
    try:
        name = checked_name(str(form.get("file", "")))
        folder = d.instance.configs
        folder.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(write_durably, folder / name, text.encode(), 0o644)
    except ConfigError as exc:
        ctx = await page_context(request.app.state.api, d, {}, error=exc.to_dict())
        return await render(request, "config", "Configuration", **ctx)
    except OSError as exc:
        err = ConfigError(f"cannot write {name}: {exc.strerror}").to_dict()
        ctx = await page_context(request.app.state.api, d, {}, error=err)
        return await render(request, "config", "Configuration", **ctx)
    ctx = await page_context(request.app.state.api, d, {"file": name},
                             notice=f"Saved {folder / name}.")
    return await render(request, "config", "Configuration", **ctx)


async def create(request: Request) -> Response:
    """A new file from the configuration part's commented template."""
    from activeupgrade.ui.web.app import render

    d: Daemon = request.app.state.daemon
    form = await request.form()
    try:
        name = checked_name(str(form.get("name", "")))
        await asyncio.to_thread(write_template, d.instance.configs / name, None,
                                str(form.get("description", "")))
    except ConfigError as exc:
        ctx = await page_context(request.app.state.api, d, {}, error=exc.to_dict())
        return await render(request, "config", "Configuration", **ctx)
    return RedirectResponse(f"/config?file={name}", 303)


async def load(request: Request) -> Response:
    """Make the file the configuration of the next session (through the API)."""
    from activeupgrade.ui.web.app import render

    d: Daemon = request.app.state.daemon
    api: Api = request.app.state.api
    form = await request.form()
    raw = str(form.get("file", ""))
    try:
        path = "" if raw == "" else str(d.instance.configs / checked_name(raw))
    except ConfigError as exc:
        ctx = await page_context(api, d, {}, error=exc.to_dict())
        return await render(request, "config", "Configuration", **ctx)
    _, error = await api.post("/config/loaded", {"path": path})
    notice = "" if error else (f"Loaded {path} for the next session." if path
                               else "No configuration loaded: sessions use every adopted volume.")
    ctx = await page_context(api, d, {"file": raw}, notice=notice, error=error)
    return await render(request, "config", "Configuration", **ctx)
