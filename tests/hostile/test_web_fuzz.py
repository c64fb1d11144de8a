"""The web console's own routes (pages, forms, login, log, export) under hostile input,
in-process over a real daemon object: junk queries, form fields, cookies and
Authorization headers never get a 5xx nor a traceback. The API under ``/api`` is the
server's and is fuzzed by ``test_api_fuzz.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from activeupgrade.daemon import Daemon
from activeupgrade.instance import Instance
from activeupgrade.ui.web import app as web_app
from activeupgrade.ui.web.auth import WebAuth
from tests.support import new_instance
from tests.ui.asgi import AppClient

TOKEN = "t" * 43
NASTY = ["", "abc", "-1", "9" * 40, "\x00", "../../etc/shadow", "/etc/shadow", "x.toml",
         "../x.toml", "a" * 3000, "%00", "<script>", "nan", "text", "json", "csv"]
TEXT = st.one_of(st.sampled_from(NASTY), st.text(max_size=30))
FORMS = st.dictionaries(st.sampled_from(["token", "next", "name", "text", "file", "path",
                                         "csrf", "config", "role", "volume", "x"]),
                        TEXT, max_size=5)
QUERIES = st.dictionaries(st.sampled_from(["file", "path", "format", "event", "severity",
                                           "session", "since", "limit", "next", "x"]),
                          TEXT, max_size=4)


@dataclass
class Web:
    app: object
    routes: list[tuple[str, str]]
    sent: dict[str, int] = field(default_factory=dict)


def _routes(app: object) -> list[tuple[str, str]]:
    """(method, path) of every page route of the console's own table (the ``/api`` mount
    and the static files are not pages)."""
    inner = getattr(app, "app", None)
    assert isinstance(inner, Starlette), inner
    return sorted((m, r.path) for r in inner.routes if isinstance(r, Route)
                  for m in (r.methods or set()) - {"HEAD"})


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    home = new_instance(tmp_path_factory.mktemp("webfuzz") / "home")
    empty = tmp_path_factory.mktemp("cwd")
    before = os.getcwd()
    os.chdir(empty)
    daemon = Daemon(Instance(home))
    daemon.start()
    try:
        app = web_app.build_web_app(daemon, WebAuth(TOKEN))
        yield Web(app, _routes(app))
    finally:
        daemon.close()
        os.chdir(before)


def test_the_fuzzed_table_is_the_consoles(web: Web) -> None:
    paths = {p for _, p in web.routes}
    assert {"/login", "/config/save", "/log/{id:int}", "/log/export"} <= paths, paths


def _check(web: Web, r_status: int, text: str, what: str) -> None:
    assert r_status < 500, f"{what}: {r_status} {text[:300]}"
    assert "Traceback" not in text, what


FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_pages_and_forms(web: Web, data: st.DataObject) -> None:
    method, template = data.draw(st.sampled_from(web.routes))
    path = template.replace("{id:int}", data.draw(st.sampled_from(["1", "0", "9" * 30])))
    auth = data.draw(st.sampled_from(["token", "none", "junk"]))
    headers = {"token": {"Authorization": f"Bearer {TOKEN}"}, "none": {},
               "junk": {"Authorization": data.draw(st.sampled_from(
                   ["Bearer", "Bearer " + "x" * 43, "Basic abc", "Bearer  ", "bearer " + TOKEN,
                    "Bearer " + TOKEN + "x"]))}}[auth]
    cookies = {"au_session": data.draw(TEXT.filter(lambda s: s.isprintable()
                                                   and s.isascii() and ";" not in s))}
    with AppClient(web.app, headers=headers) as client:
        client.http.cookies.update(cookies)
        if method == "GET":
            r = client.get(path, params=data.draw(QUERIES), follow_redirects=False)
        else:
            r = client.post(path, data=data.draw(FORMS), follow_redirects=False)
    web.sent[auth] = web.sent.get(auth, 0) + 1
    _check(web, r.status_code, r.text, f"{method} {path} ({auth})")


def test_a_huge_form_is_refused(web: Web) -> None:
    with AppClient(web.app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        r = client.post("/config/save", data={"name": "x.toml", "text": "a" * (8 << 20)},
                        follow_redirects=False)
        _check(web, r.status_code, r.text, "huge form")
    assert not (Path(os.getcwd()) / "x.toml").exists()
