"""The API under hostile input: every route of the server's route table gets malformed,
oversized and wrongly typed bodies, huge and negative integers and junk query strings.

Whatever comes in, the answer is never a 5xx and never a traceback: a bad request is a
4xx with the error document (error, message, hint, exit_code). The daemon runs in-process
on a fresh instance (no configuration, no volumes), so the routes that would change the
host refuse in Idle or for want of a volume; the strings the fuzzer sends are never the
path of an existing folder (the working folder is an empty temporary one), so nothing on
the host is adopted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from activeupgrade.api.server import build_app, collect_routes
from activeupgrade.daemon import Daemon
from activeupgrade.instance import Instance
from activeupgrade.model.states import Operation, OperatorAction
from tests.support import new_instance
from tests.ui.asgi import AppClient

UNBOUNDED = {
    "/events": "an endless stream (followed by the CLI tests)",
    "/packages/stage": "downloads packages with apt (network)",
    "/web/start": "opens a TCP listener (tested by the web console's tests)",
}
"""Routes left out of the fuzzer, with why."""

EXAMPLES = 1200
"""Examples per strategy below (bounded so that the file runs in well under a minute)."""

HUGE = [2**63, 2**64 + 1, -(2**63) - 1, 10**30, -5, -1, 0, 1, 2**31]
NASTY = ["", " ", "abc", "nan", "inf", "-inf", "1e400", "9" * 40, "-9" * 20, "0x10",
         "%00", "\x00", "\u202e", "../../etc/shadow", "/nonexistent/au-fuzz", "a" * 5000,
         "/proc/self/environ", "/etc/shadow", "true", "[]", "{}", "1.5", "-0"]
EXISTING = ("/etc/shadow", "/proc/self/environ")
SCALARS = st.one_of(
    st.none(), st.booleans(), st.sampled_from(HUGE), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NASTY),
    st.text(alphabet=st.characters(blacklist_characters="/."), max_size=30),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10)
KEYS = ["path", "file", "name", "text", "config", "force", "reason", "args", "argv",
        "timeout", "user", "role", "mode", "names", "phase", "entry", "returncode",
        "seconds", "terminal", "operator", "listen", "remote", "limit", "after", "root",
        "packages", "volumes", "session"]
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
    st.fixed_dictionaries({"args": st.dictionaries(st.sampled_from(KEYS), VALUES,
                                                   max_size=5)}),
    st.builds(lambda v: {"phase": "close", "entry": v, "returncode": v, "seconds": v},
              SCALARS),
    VALUES,
)
RAW = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"{", b"[1,2", b'{"a":', b"\xff\xfe", b"null", b"1e99999",
                     b'{"path": "\\ud800"}', b"[" * 5000 + b"]" * 5000,
                     b'{"a": ' + b"9" * 5000 + b"}", b"{}" * 1000]),
)
QUERY_KEYS = ["limit", "after", "root", "since", "severity", "newest", "path", "file",
              "config", "session", "event", "side", "request"]
QUERIES = st.dictionaries(st.sampled_from(QUERY_KEYS),
                          st.one_of(st.sampled_from(NASTY),
                                    st.sampled_from([str(h) for h in HUGE]),
                                    st.text(max_size=20)), max_size=4)
PARAMS = {
    "action": [a.value for a in OperatorAction] + ["nope", "check%00", "x" * 300],
    "operation": [o.value for o in Operation] + ["nope", "" + "y" * 300],
    "id": ["9" * 30, "-1", "0", "abc", "o-nope"],
    "name": ["nope", "%2e%2e", "x" * 300, "../../etc"],
}
SAFE_ACTIONS = {"check", "nope", "check%00"}
"""Operator actions the fuzzer may really submit (the others would start a session; with
no volume they are refused, but they are sent with fixed bodies only)."""


@dataclass
class Counts:
    """Requests sent, by kind of input, and the statuses answered."""

    sent: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, kind: str, status: int) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1
        self.statuses[status] = self.statuses.get(status, 0) + 1


@dataclass
class Target:
    client: AppClient
    routes: list[tuple[str, str]]
    counts: Counts


def _targets() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for r in collect_routes():
        assert isinstance(r, Route)
        if r.path in UNBOUNDED:
            continue
        for method in sorted((r.methods or set()) - {"HEAD"}):
            found.append((method, r.path))
    return found


def _paths(template: str) -> list[str]:
    names = re.findall(r"{(\w+)(?::\w+)?}", template)
    if not names:
        return [template]
    out = []
    for value in PARAMS.get(names[0], ["x"]):
        if names[0] == "action" and value not in SAFE_ACTIONS:
            continue
        out.append(re.sub(r"{\w+(?::\w+)?}", value, template))
    if names[0] == "id":
        out.append(template.replace("{id:int}", "9" * 30).replace("{id}", "9" * 30))
    return out


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    home = new_instance(tmp_path_factory.mktemp("fuzz") / "home")
    empty = tmp_path_factory.mktemp("cwd")
    before = os.getcwd()
    os.chdir(empty)
    daemon = Daemon(Instance(home))
    daemon.start()
    client = AppClient(build_app(daemon))
    counts = Counts()
    try:
        yield Target(client, _targets(), counts)
    finally:
        client.close()
        daemon.close()
        os.chdir(before)
        report = Path(os.environ.get("AU_FUZZ_REPORT", "")) if os.environ.get(
            "AU_FUZZ_REPORT") else None
        if report:
            report.write_text(json.dumps({"sent": counts.sent, "statuses": {
                str(k): v for k, v in counts.statuses.items()}}, indent=1))


def _check(t: Target, kind: str, method: str, path: str, **kwargs: Any) -> None:
    r = (t.client.get(path, **kwargs) if method == "GET"
         else t.client.post(path, **kwargs))
    t.counts.add(kind, r.status_code)
    text = r.text
    assert r.status_code < 500, f"{method} {path} {kwargs}: {r.status_code} {text[:400]}"
    assert "Traceback" not in text, f"{method} {path}: {text[:400]}"
    if r.status_code >= 400:
        doc = r.json()
        assert set(doc) >= {"error", "message", "hint", "exit_code"}, doc
        assert doc["error"] != "InternalError", doc
        assert "Error:" not in doc["message"], doc  # a Python exception's repr leaked
        assert "{'" not in doc["message"], doc  # nor a Python dict


def test_every_route_is_fuzzed(target: Target) -> None:
    """The table the fuzzer walks is the server's own: a new route is fuzzed at once."""
    paths = {p for _, p in target.routes}
    assert "/log/{id:int}" in paths and "/config/load" in paths
    assert len(target.routes) >= 30, target.routes


FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_bodies(target: Target, data: st.DataObject) -> None:
    method, template = data.draw(st.sampled_from(target.routes))
    path = data.draw(st.sampled_from(_paths(template)))
    body = data.draw(BODIES)
    if path.startswith("/actions/") and isinstance(body, dict):
        body.pop("config", None)  # never a session on whatever file the fuzzer names
    if path.startswith("/operations/") and any(p in json.dumps(body) for p in EXISTING):
        body = {"args": {"path": "/nonexistent/au-fuzz"}}  # never adopt a real file
    if method == "GET":
        _check(target, "query", method, path,
               params={k: json.dumps(v) if not isinstance(v, str) else v
                       for k, v in (body.items() if isinstance(body, dict) else [])})
    else:
        _check(target, "json", method, path, content=json.dumps(body).encode(),
               headers={"content-type": "application/json"})


@FUZZ
@given(data=st.data())
def test_raw_bodies_and_queries(target: Target, data: st.DataObject) -> None:
    method, template = data.draw(st.sampled_from(target.routes))
    path = data.draw(st.sampled_from(_paths(template)))
    query = data.draw(QUERIES)
    if method == "GET":
        _check(target, "query", method, path, params=query)
    else:
        _check(target, "raw", method, path, params=query, content=data.draw(RAW))


def test_oversized_body(target: Target) -> None:
    """A body far larger than any request needs is refused, not parsed."""
    big = b'{"text": "' + b"x" * (16 * 1024 * 1024) + b'", "name": "big.toml"}'
    for method, path in target.routes:
        if method == "POST" and not path.startswith("/actions/"):
            _check(target, "oversized", method, path.replace("{operation}", "verify"),
                   content=big)
    r = target.client.post("/config/save", content=big)
    assert r.status_code == 400 and "too large" in r.json()["message"], r.text


@pytest.mark.parametrize("value", ["99999999999999999999", "-5", "abc", "1e3", "-0",
                                   "9" * 400])
def test_integer_queries(target: Target, value: str) -> None:
    """Item by item, the integer parameters seen in the field (``au log --limit``)."""
    for path in ("/log", "/history", "/operations"):
        for key in ("limit", "after", "root"):
            r = target.client.get(path, params={key: value})
            target.counts.add("integer", r.status_code)
            if value in ("-5", "abc", "1e3", "99999999999999999999", "9" * 400) and (
                    key == "limit"):
                assert r.status_code == 400, (path, key, value, r.text)
                assert "`limit`" in r.json()["message"]
            assert r.status_code < 500, (path, key, value, r.text)
    for entry in ("9" * 20, "9" * 400):
        r = target.client.get(f"/log/{entry}")
        assert r.status_code == 400 and "no activity log entry" in r.json()["message"], r.text


@pytest.mark.parametrize("value", ["9" * 20, "9" * 400, "-1", "abc", "\u00b2", "1e3"])
def test_events_refuses_a_bad_after_before_streaming(target: Target, value: str) -> None:
    """/events is an endless stream (left out above); its one parameter is checked first."""
    r = target.client.get("/events", params={"after": value})
    target.counts.add("integer", r.status_code)
    assert r.status_code == 400 and "`after`" in r.json()["message"], r.text
