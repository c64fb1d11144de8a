"""The demo's configuration files: a parent (volumes, service, backup, Upgrade Side) and a
child (the custom actions), written with the paths of this run.

Together they use every feature: a system and a data volume, a supervised service with a
held socket and an HTTP health check, a custom action of each control type (the advanced
one with a timing), backup of the service's log files, packages checked locally, a
description, and nesting.
"""

from __future__ import annotations

import json
from pathlib import Path

from activeupgrade.demo.layout import DemoTree

PARENT = "shop-demo.toml"
CHILD = "shop-demo-actions.toml"


def _q(text: str | Path) -> str:
    """A TOML basic string (JSON string syntax is valid TOML for these values)."""
    return json.dumps(str(text))


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def parent_text(tree: DemoTree, python: str, packages: list[Path]) -> str:
    sw, data = tree.software, tree.data
    command = [python, str(sw / "app.py"), "--data", str(data), "--log",
               str(sw / "log" / "shop.log"), "--listen", f"127.0.0.1:{tree.port}"]
    return f"""\
# The demo shop: upgrade its software (a system volume) while its orders (a data volume)
# keep flowing. Written by `au demo` for this run; child: {CHILD}.
description = "Upgrade the demo shop to the next release under live load"
include = [{_q(CHILD)}]

[[volume]]
path = {_q(sw)}
role = "system"

[[volume]]
path = {_q(data)}
role = "data"

[[service]]
name = "shop"
command = {_list(command)}
workdir = {_q(sw)}
env = {{ PYTHONDONTWRITEBYTECODE = "1" }}
stop_signal = "SIGTERM"
stop_grace = "10s"
start_timeout = "30s"

[[service.socket]]
name = "http"
listen = "127.0.0.1:{tree.port}"
backlog = 1024

[service.health]
kind = "http"
target = "{tree.url}/health"
timeout = "2s"
interval = "50ms"

[backup]
paths = [{_q(sw / "log" / "shop*.log")}]

[upgrade_side]
hostname = "shop-upgrade"
isolation = "auto"
packages = {_list([str(p) for p in packages])}
"""


def child_text(tree: DemoTree) -> str:
    hook = tree.software / "bin" / "hook.py"
    saved = tree.backups / "hook-%ACTIVE_UPGRADE_SESSION%"
    # The records go outside the volumes: a system volume written at every request would
    # differ between its replicas when the tool verifies them.
    rec = f"--record={tree.hook_records}"
    actions = [
        ("shop-ready", "readiness-check", "default", ["ready", rec],
         "The installed shop release is readable"),
        ("shop-drain", "stop-application", "default", ["stop", rec, "%ACTIVE_UPGRADE_SIDE%"],
         "Note the handover before the shop stops"),
        ("shop-warm", "start-application", "default", ["start", rec, "%ACTIVE_UPGRADE_SIDE%"],
         "Note the shop's start on the upgraded software"),
        ("shop-audit", "advanced", "early",
         ["audit", rec, "%ACTIVE_UPGRADE_REQUEST%", "%ACTIVE_UPGRADE_STATE%"],
         "Record every request of the session (runs first)"),
        ("shop-save-logs", "backup", "default", ["backup", rec, str(saved)],
         "Save the old release's logs before commit"),
    ]
    blocks = [f"""\
[[action]]
name = {_q(name)}
file = {_q(hook)}
args = {_list(args)}
control = {_q(control)}
timing = {_q(timing)}
timeout = "1m"
description = {_q(text)}
""" for name, control, timing, args, text in actions]
    return (
        "# The demo shop's custom actions, one of each control type (included by "
        f"{PARENT}).\n\n" + "\n".join(blocks)
        + f"\n[backup]\npaths = [{_q(tree.software / 'release.json')}]\n"
    )


def write(tree: DemoTree, python: str, packages: list[Path]) -> Path:
    """Write both files into the instance's configuration folder; returns the parent."""
    tree.configs.mkdir(parents=True, exist_ok=True)
    (tree.configs / CHILD).write_text(child_text(tree))
    parent = tree.configs / PARENT
    parent.write_text(parent_text(tree, python, packages))
    return parent
