"""Configuration files named through the API (issue: any root-readable file could be
loaded as a configuration, and its parse errors echoed its content)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.api.server import build_app
from activeupgrade.daemon import Daemon
from activeupgrade.instance import Instance
from tests.support import new_instance, wait_until
from tests.ui.asgi import AppClient

SECRET = "admin:$6$notreallyahash:19000:0:99999:7:::"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppClient]:
    home = new_instance(tmp_path_factory.mktemp("cfgapi") / "home")
    daemon = Daemon(Instance(home))
    daemon.start()
    client = AppClient(build_app(daemon))
    try:
        yield client
    finally:
        client.close()
        daemon.close()


def _refusals(api: AppClient, path: str) -> list[dict[str, object]]:
    answers = [
        api.post("/config/load", json={"path": path}),
        api.post("/config/validate", json={"path": path}),
        api.get("/config/show", params={"path": path}),
        api.get("/config/summary", params={"path": path}),
        api.get("/steps", params={"config": path}),
        api.post("/plan", json={"config": path}),
        api.post("/config/loaded", json={"path": path}),
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text)
    docs = [r.json() for r in answers]
    # A check on it is refused at once, or fails on its own without breaking anything.
    r = api.post("/actions/check", json={"config": path})
    if r.status_code == 200:
        wait_until(lambda: api.get("/status").json()["operational_state"] != "Busy", 60,
                   "the check to end")
        status = api.get("/status").json()
        assert status["operational_state"] == "Ready", status
        docs.append(status["error"])
    else:
        assert 400 <= r.status_code < 500, r.text
        docs.append(r.json())
    return docs


def test_a_file_that_is_not_a_configuration_is_never_opened(api: AppClient,
                                                             tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    for doc in _refusals(api, str(secret)):
        assert doc["error"] == "SecurityError", doc
        assert "not a configuration file" in str(doc["message"]), doc
        assert "admin:" not in str(doc) and "column" not in str(doc["message"]), doc


def test_a_configuration_below_a_folder_others_can_write_is_refused(
        api: AppClient, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    cfg = shared / "x.toml"
    cfg.write_text('description = "planted"\n')
    cfg.chmod(0o644)
    shared.chmod(0o777)
    for doc in _refusals(api, str(cfg)):
        assert doc["error"] == "SecurityError", doc
        assert f"{shared} is writable by others" in str(doc["message"]), doc
    shared.chmod(0o755)
    r = api.post("/config/validate", json={"path": str(cfg)})
    assert r.status_code == 200 and r.json()["valid"] is True, r.text


def test_a_link_named_like_a_configuration_to_a_secret(api: AppClient,
                                                       tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    link = tmp_path / "trap.toml"
    link.symlink_to(secret)
    if os.geteuid() == 0:
        os.lchown(link, 65534, 65534)
        for doc in _refusals(api, str(link)):
            assert "owned by uid 65534" in str(doc["message"]), doc
            assert "admin:" not in str(doc), doc


def test_a_fifo_named_like_a_configuration_never_blocks(api: AppClient, tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: the file is opened without waiting
    and refused as not a regular file."""
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo, 0o644)
    r = api.post("/config/validate", json={"path": str(fifo)})
    assert r.status_code == 400, r.text
    assert "not a regular file" in r.json()["message"], r.text
