"""Helpers for volume tests: trees, tree hashes, an engine on the real host platform."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from activeupgrade.bus import Bus
from activeupgrade.engine.engine import Engine
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.platform.host import HostPlatform
from activeupgrade.store.db import Store


def tree_hash(root: Path) -> str:
    """Content and metadata of a tree, independent of our code (os.walk + sha256)."""
    h = hashlib.sha256()
    root = Path(os.path.realpath(root))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(root))
            h.update(f"{rel}|{stat.S_IFMT(st.st_mode)}|{stat.S_IMODE(st.st_mode)}|"
                     f"{st.st_uid}|{st.st_gid}".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(f"|{st.st_mtime_ns}|".encode() + p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
    return h.hexdigest()


def engine_for(home: Path) -> tuple[Engine, Store]:
    instance = Instance(home)
    instance.ensure()
    store = Store(instance.db)
    return Engine(instance, store, Bus(), HostPlatform(instance, store)), store


def act(engine: Engine, action: OperatorAction) -> None:
    engine.submit(action)
    status = engine.wait(120)
    assert status.operational_state is OperationalState.READY, (action, status.reason)
