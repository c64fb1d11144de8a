#!python
"""The shop's custom action: one executable, one sub-command per control type.

``hook.py KIND [--record FILE] [ARGS...]`` appends what it was told (the
``ACTIVE_UPGRADE_*`` environment) as a JSON line to FILE (default ``log/actions.log`` beside
the software), prints ``PROGRESS`` lines, and:

- ``ready``: checks the installed release is readable (a readiness-check action);
- ``stop`` / ``start``: note the application handover (stop-/start-application actions);
- ``audit``: records every request (an advanced action);
- ``backup DEST``: copies ``log/*.log`` of this copy of the software into DEST when given
  (a backup action).

Exit 0 on success, 75 to ask the tool to retry later, anything else fails the request.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent


def record(kind: str, args: list[str], log: Path) -> None:
    entry = {
        "kind": kind,
        "args": args,
        "time": time.time(),
        "pid": os.getpid(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("ACTIVE_UPGRADE_")},
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: hook.py ready|stop|start|audit|backup [--record=FILE] [ARGS...]",
              file=sys.stderr)
        return 2
    kind, args = argv[0], argv[1:]
    log = HOME / "log" / "actions.log"
    if args and args[0].startswith("--record="):
        log, args = Path(args[0][len("--record="):]), args[1:]
    print("PROGRESS 10 recording", flush=True)
    record(kind, args, log)
    if kind == "ready":
        try:
            release = json.loads((HOME / "release.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"the shop's release.json is unreadable: {exc}", file=sys.stderr)
            return 1
        print(f"shop release {release.get('version')} installed at {HOME}")
    elif kind == "backup" and args:
        dest = Path(args[0])
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted((HOME / "log").glob("*.log")):
            shutil.copy2(path, dest / path.name)
            print(f"saved {path.name}")
    else:
        print(f"{kind}: side {os.environ.get('ACTIVE_UPGRADE_SIDE', '?')}, "
              f"request {os.environ.get('ACTIVE_UPGRADE_REQUEST', '?')}")
    print("PROGRESS 100 done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
