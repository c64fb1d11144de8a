"""The web console's listener: token, login, session cookie, CSRF, loopback-only binding."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from activeupgrade.api.client import Client
from activeupgrade.errors import SecurityError
from activeupgrade.instance import Instance
from tests.support import au, free_port

from .conftest import Web


def login(web: Web) -> tuple[httpx.Client, str]:
    """A logged-in browser-like client and its CSRF token (read from a page)."""
    http = httpx.Client(base_url=web.url.rstrip("/"), timeout=30.0)
    r = http.post("/login", data={"token": web.token, "next": "/upgrade"})
    assert r.status_code == 303 and r.headers["location"] == "/upgrade"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = http.get("/upgrade").text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    assert len(csrf) > 20
    return http, csrf


def test_token_file_and_api_requires_the_token(web: Web) -> None:
    token_file = web.home / "web-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == web.token
    base = web.url.rstrip("/")
    r = httpx.get(f"{base}/api/status")
    assert r.status_code == 401 and r.json()["error"] == "SecurityError"
    r = httpx.get(f"{base}/api/status", headers={"Authorization": "Bearer " + "x" * 43})
    assert r.status_code == 401
    with web.api() as http:
        s = http.get("/api/status").json()
        assert s["upgrade_state"] == "Idle" and "check" in s["allowed_actions"]
        # Bearer clients need no CSRF token: browsers never send that header on their own.
        assert http.post("/api/config/loaded", json={"path": ""}).status_code == 200
        # Listeners are opened only through the Unix socket.
        assert http.post("/api/web/start", json={}).status_code == 403
    # Pages send an anonymous browser to the login page.
    r = httpx.get(f"{base}/log?severity=error")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/log%3Fseverity%3Derror"


def test_login_cookie_and_csrf(web: Web) -> None:
    base = web.url.rstrip("/")
    r = httpx.post(f"{base}/login", data={"token": "wrong", "next": "/upgrade"})
    assert r.status_code == 401 and "not valid" in r.text and "set-cookie" not in r.headers
    r = httpx.post(f"{base}/login", data={"token": web.token, "next": "//evil.example/"})
    assert r.headers["location"] == "/upgrade"
    http, csrf = login(web)
    try:
        assert http.get("/api/status").status_code == 200
        assert http.get("/log/export?format=json").status_code == 200
        # State-changing requests of a cookie session need the session's CSRF token.
        r = http.post("/api/actions/check", json={})
        assert r.status_code == 403 and "CSRF" in r.json()["message"]
        r = http.post("/api/actions/check", json={}, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
        assert r.status_code == 403
        r = http.post("/config/load", data={"csrf": "nope", "file": "shop.toml"})
        assert r.status_code == 403
        r = http.post("/api/config/loaded", json={"path": ""}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        # A form post carries the token as a field (the middleware reads and replays the body).
        r = http.post("/config/load", data={"csrf": csrf, "file": "shop.toml"})
        assert r.status_code == 200 and "Loaded " in r.text
        assert http.get("/api/status").json()["config"].endswith("/configs/shop.toml")
        r = http.post("/logout", data={"csrf": csrf})
        assert r.status_code == 303
        assert http.get("/api/status").status_code == 401
    finally:
        http.close()


def test_non_loopback_needs_an_explicit_listen(web: Web) -> None:
    client = Client.for_instance(Instance(web.home), start=False)
    try:
        client.post("/web/start", {"listen": "192.0.2.1:8470"})
    except SecurityError as exc:
        assert "not a loopback address" in exc.message
    else:
        raise AssertionError("a non-loopback address was accepted without --listen")
    finally:
        client.close()
    r = au(web.home, "web", "--listen", "not-an-address")
    assert r.returncode != 0 and "not HOST:PORT" in r.stderr
    # The same address again answers the same listener and token.
    port = int(web.url.rstrip("/").rsplit(":", 1)[1])
    r = au(web.home, "web", "--listen", f"127.0.0.1:{port}")
    assert r.returncode == 0 and "already open" in r.stdout and web.token in r.stdout
    busy = free_port()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", busy))
        s.listen()
        r = au(web.home, "web", "--listen", f"127.0.0.1:{busy}")
    assert r.returncode != 0 and "cannot listen" in r.stderr


def test_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    from activeupgrade.ui.web.auth import load_or_create_token

    inst = Instance(tmp_path / "home")
    token = load_or_create_token(inst)
    assert load_or_create_token(inst) == token and len(token) >= 40
    inst.web_token.chmod(0o644)
    try:
        load_or_create_token(inst)
    except SecurityError as exc:
        assert "readable by other users" in exc.message
    else:
        raise AssertionError("a world-readable token was used")
