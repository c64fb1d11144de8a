"""Building an in-process engine on a temporary instance."""

from __future__ import annotations

from pathlib import Path

from activeupgrade.bus import Bus
from activeupgrade.engine.engine import Engine
from activeupgrade.instance import Instance
from activeupgrade.store.db import Store
from tests.core.filesplatform import FilesPlatform


def make_engine(root: Path) -> tuple[Engine, FilesPlatform, Store]:
    instance = Instance(root / "home")
    instance.ensure()
    store = Store(instance.db)
    platform = FilesPlatform(root / "tree")
    engine = Engine(instance, store, Bus(), platform)
    return engine, platform, store
