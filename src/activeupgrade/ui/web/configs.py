"""The Configuration page: create, load, edit and save configuration files.

Everything goes through the configuration part's API routes (``/config/files``, ``/show``,
``/validate``, ``/save``, ``/load``), so a file gets exactly the ConfigError message and
hint that ``au config validate`` prints, and nothing invalid is ever saved: a refused text
stays in the editor with its error. Only the raw text of a file is read directly, for the
editor (the API serves effective configurations, not file contents).
"""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from activeupgrade.config.model import ControlType, Timing, VolumeRole
from activeupgrade.config.template import template_text
from activeupgrade.errors import ConfigError
from activeupgrade.ui.web.base import Api, render

if TYPE_CHECKING:
    from activeupgrade.api.server import DaemonHandle as Daemon


def checked_name(raw: str) -> str:
    """A plain ``.toml`` name of the configuration folder (the API checks it again)."""
    name = raw.strip()
    if name and not name.endswith(".toml"):
        name += ".toml"
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(
            f"{raw!r} is not a configuration file name",
            hint="Use a plain name ending in .toml (no folders), e.g. shop.toml.",
        )
    return name


def _direct_includes(text: str) -> list[str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    found = data.get("include", [])
    return [str(x) for x in found] if isinstance(found, list) else []


def _top_level(text: str, key: str) -> str:
    try:
        return str(tomllib.loads(text).get(key, ""))
    except tomllib.TOMLDecodeError:
        return ""


def _includes(name: str, text: str, files: list[str], reached: list[str]) -> list[dict[str, Any]]:
    """Check boxes for the other files: direct includes checked, files reached only through
    a child checked and greyed (inherited)."""
    direct = set(_direct_includes(text))
    through = {f.rsplit("/", 1)[-1] for f in reached} - {name}
    return [{"name": f, "direct": f in direct, "inherited": f in through and f not in direct}
            for f in files if f != name]


async def page_context(api: Api, d: Daemon, name: str, *, text: str | None = None,
                       notice: str = "", error: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
    """The page for ``name`` ("" for none); ``text`` is unsaved editor content."""
    listing, list_error = await api.get("/config/files")
    listing = listing or {"folder": str(d.instance.configs), "files": [], "loaded": ""}
    status, _ = await api.get("/status")
    view: dict[str, Any] | None = None
    if name:
        path = d.instance.configs / name
        if text is None:
            try:
                text = path.read_text()
            except OSError as exc:
                error = error or ConfigError(f"cannot read {path}: {exc.strerror}",
                                             hint="Create it with New file.").to_dict()
        shown: dict[str, Any] | None = None
        invalid: dict[str, Any] | None = None
        if text is not None:
            checked, invalid = await api.post("/config/validate", {"name": name, "text": text})
            if checked is not None:
                shown, invalid = await api.get("/config/show", file=name)
        view = {
            "name": name, "path": str(path), "text": text or "",
            "description": _top_level(text or "", "description"),
            "loaded": listing.get("loaded") == str(path),
            "error": invalid, "show": shown,
            "config": (shown or {}).get("config"),
            "includes": _includes(name, text or "", listing["files"],
                                  (shown or {}).get("files", [])),
        }
    return {"folder": listing["folder"], "files": listing["files"],
            "roles": [r.value for r in VolumeRole], "controls": [c.value for c in ControlType],
            "timings": [t.value for t in Timing],
            "loaded": listing.get("loaded", ""), "view": view, "notice_text": notice,
            "action_error": error or list_error,
            "in_session": bool((status or {}).get("session"))}


async def _render(request: Request, ctx: dict[str, Any]) -> Response:

    return await render(request, "config", "Configuration", **ctx)


async def page(request: Request) -> Response:
    api: Api = request.app.state.api
    d: Daemon = request.app.state.daemon
    raw = request.query_params.get("file", "")
    try:
        name = checked_name(raw) if raw else ""
    except ConfigError as exc:
        return await _render(request, await page_context(api, d, "", error=exc.to_dict()))
    return await _render(request, await page_context(api, d, name))


async def save(request: Request) -> Response:
    """Validate the edited text, and save it when valid (``op=save``)."""
    api: Api = request.app.state.api
    d: Daemon = request.app.state.daemon
    form = await request.form()
    text = str(form.get("text", "")).replace("\r\n", "\n")
    try:
        name = checked_name(str(form.get("file", "")))
    except ConfigError as exc:
        return await _render(request, await page_context(api, d, "", error=exc.to_dict()))
    if form.get("op") == "validate":
        return await _render(request, await page_context(api, d, name, text=text))
    saved, error = await api.post("/config/save", {"name": name, "text": text})
    notice = f"Saved {saved['saved']}." if saved else ""
    refused = {**error, "message": "Not saved: " + str(error.get("message"))} if error else None
    return await _render(request, await page_context(api, d, name, text=text, notice=notice,
                                                     error=refused))


async def create(request: Request) -> Response:
    """A new file from the configuration part's commented template, saved through the API."""
    api: Api = request.app.state.api
    d: Daemon = request.app.state.daemon
    form = await request.form()
    try:
        name = checked_name(str(form.get("name", "")))
    except ConfigError as exc:
        return await _render(request, await page_context(api, d, "", error=exc.to_dict()))
    if (d.instance.configs / name).exists():
        err = ConfigError(f"{d.instance.configs / name} already exists",
                          hint="Choose another name, or open the file to edit it.")
        return await _render(request, await page_context(api, d, "", error=err.to_dict()))
    text = template_text(None, str(form.get("description", "")))
    _, error = await api.post("/config/save", {"name": name, "text": text})
    if error:
        return await _render(request, await page_context(api, d, "", error=error))
    return RedirectResponse(f"/config?file={name}", 303)


async def load(request: Request) -> Response:
    """Make the file the configuration of the next session ("" for none)."""
    api: Api = request.app.state.api
    d: Daemon = request.app.state.daemon
    form = await request.form()
    raw = str(form.get("file", ""))
    try:
        name = checked_name(raw) if raw else ""
    except ConfigError as exc:
        return await _render(request, await page_context(api, d, "", error=exc.to_dict()))
    answer, error = await api.post("/config/load", {"path": name})
    notice = ""
    if answer is not None:
        notice = (f"Loaded {answer['loaded']} for the next session." if answer["loaded"]
                  else "No configuration loaded: sessions use every adopted volume.")
    return await _render(request, await page_context(api, d, name, notice=notice, error=error))
