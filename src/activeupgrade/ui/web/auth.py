"""Who may use the web console's TCP listener: the token, browser sessions and CSRF.

- The **token** is random, created on first use in ``AU_HOME/web-token`` (mode 0600) and
  printed by ``au web``. API clients send it as ``Authorization: Bearer TOKEN``.
- Browsers post it once to ``/login``; they get a **session** cookie (HttpOnly,
  SameSite=Strict) naming an in-memory session. Sessions die with the daemon or after
  ``SESSION_IDLE`` seconds without use.
- Every state-changing request of a cookie session carries the session's **CSRF token**
  (synchronizer pattern) in the ``X-CSRF-Token`` header or a ``csrf`` form field; without
  it the answer is 403. Bearer requests need none: a browser never adds that header itself.

Secrets are compared in constant time; sessions are keyed by a hash of their id so a lookup
reveals nothing about stored ids.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activeupgrade.errors import SecurityError
from activeupgrade.instance import Instance

COOKIE = "au_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SESSION_IDLE = 12 * 3600.0
"""Seconds of inactivity after which a browser session must log in again."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/login", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
MAX_FORM_BYTES = 1 << 20


def load_or_create_token(instance: Instance) -> str:
    """The instance's web token, created (0600, never overwritten) on first use."""
    path: Path = instance.web_token
    instance.ensure()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return _read_token(path)
    token = secrets.token_urlsafe(32)
    try:
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


def _read_token(path: Path) -> str:
    try:
        st = path.stat()
        token = path.read_text().strip()
    except OSError as exc:
        raise SecurityError(
            f"cannot read the web token {path}: {exc.strerror}",
            hint="Remove the file; `au web` creates a new token.",
        ) from exc
    if st.st_mode & 0o077:
        raise SecurityError(
            f"the web token {path} is readable by other users (mode {st.st_mode & 0o777:o})",
            hint=f"Remove it (`rm {path}`) and run `au web` again to create a new one.",
        )
    if len(token) < 32:
        raise SecurityError(
            f"the web token {path} is too short to be safe",
            hint=f"Remove it (`rm {path}`) and run `au web` again to create a new one.",
        )
    return token


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class BrowserSession:
    """One logged-in browser."""

    csrf: str
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)


class WebAuth:
    """The token and the live browser sessions of one TCP listener."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._sessions: dict[str, BrowserSession] = {}

    def check_token(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    def open_session(self) -> tuple[str, BrowserSession]:
        """A new session: returns the cookie value and the session (with its CSRF token)."""
        self._expire()
        session_id = secrets.token_urlsafe(32)
        session = BrowserSession(csrf=secrets.token_urlsafe(32))
        self._sessions[_key(session_id)] = session
        return session_id, session

    def session(self, session_id: str) -> BrowserSession | None:
        if not session_id:
            return None
        found = self._sessions.get(_key(session_id))
        if found is None:
            return None
        now = time.time()
        if now - found.last_seen > SESSION_IDLE:
            self._sessions.pop(_key(session_id), None)
            return None
        found.last_seen = now
        return found

    def close_session(self, session_id: str) -> None:
        self._sessions.pop(_key(session_id), None)

    def _expire(self) -> None:
        now = time.time()
        for k, s in list(self._sessions.items()):
            if now - s.last_seen > SESSION_IDLE:
                del self._sessions[k]


def session_cookie(session_id: str) -> str:
    return f"{COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict"


def cleared_cookie() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"


class AuthGate:
    """ASGI middleware in front of the whole listener (pages and ``/api/``).

    Sets ``scope["au_auth"]`` to "token" or "session" and ``scope["au_session"]`` to the
    BrowserSession for pages that need its CSRF token.
    """

    def __init__(self, app: ASGIApp, auth: WebAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            if not self.auth.check_token(authorization[7:].strip()):
                await _deny(scope, receive, send, 401, "the token is not valid")
                return
            scope["au_auth"] = "token"
            await self.app(scope, receive, send)
            return
        session_id = cookie_parser(headers.get("cookie", "")).get(COOKIE, "")
        session = self.auth.session(session_id)
        if session is None:
            if path.startswith("/api/") or scope["method"] not in SAFE_METHODS:
                await _deny(scope, receive, send, 401, "authentication required")
                return
            target = path + (("?" + scope["query_string"].decode()) if scope["query_string"]
                             else "")
            await RedirectResponse(f"/login?next={quote(target)}", 303)(scope, receive, send)
            return
        scope["au_auth"] = "session"
        scope["au_session"] = session
        scope["au_session_id"] = session_id
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        sent = headers.get(CSRF_HEADER, "")
        replay: list[Message] = []
        if not sent and headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            body, replay = await _read_body(receive)
            if len(body) <= MAX_FORM_BYTES:
                sent = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD, [""])[0]
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            await _deny(scope, receive, send, 403, "missing or wrong CSRF token")
            return
        if replay:
            await self.app(scope, _replaying(replay, receive), send)
        else:
            await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _deny(scope: Scope, receive: Receive, send: Send, code: int, message: str) -> None:
    hint = ("Send `Authorization: Bearer TOKEN` (the token is printed by `au web`) or log in."
            if code == 401 else "Reload the page and try again.")
    response: Response = JSONResponse(
        SecurityError(message, hint=hint).to_dict(),
        status_code=code,
        headers={"WWW-Authenticate": "Bearer"} if code == 401 else None,
    )
    await response(scope, receive, send)
