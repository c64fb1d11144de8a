"""A session's configuration through the real HostPlatform and engine: staged at split,
immune to later edits of the originals, forgotten when the session ends."""

from __future__ import annotations

from pathlib import Path

from activeupgrade.bus import Bus
from activeupgrade.config.model import Config
from activeupgrade.engine.engine import Engine
from activeupgrade.engine.steps import Step
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperatorAction, Request, UpgradeState
from activeupgrade.session.host import HostPlatform
from activeupgrade.store.db import Store
from tests.actions.helpers import act
from tests.config.conftest import Write


class Recording(HostPlatform):
    """The host platform, recording the configuration each request gets, running no step."""

    def __init__(self, instance: Instance, store: Store) -> None:
        super().__init__(instance, store)
        self.seen: dict[Request, Config] = {}

    def steps(self, request: Request, config: Config) -> list[Step]:
        self.seen[request] = config
        return []


def test_split_stages_the_files_and_later_edits_do_not_matter(
    tmp_path: Path, write: Write
) -> None:
    folder = tmp_path / "configs"
    top = write("shop.toml", 'description = "v1"\ninclude = ["db.toml"]\n', folder)
    child = write("db.toml", '[[service]]\nname = "db"\ncommand = ["/bin/db1"]\n', folder)
    instance = Instance(tmp_path / "home")
    instance.ensure()
    store = Store(instance.db)
    platform = Recording(instance, store)
    engine = Engine(instance, store, Bus(), platform)
    engine.set_config(str(top))
    status = act(engine, OperatorAction.SPLIT)
    assert status.upgrade_state is UpgradeState.SPLIT, status.reason
    staged = instance.staging / status.session
    assert sorted(p.name for p in staged.iterdir()) == ["db.toml", "shop.toml"]
    top.write_text('description = "v2"\n')
    child.write_text('[[service]]\nname = "db"\ncommand = ["/bin/db2"]\n')
    assert act(engine, OperatorAction.MERGE).upgrade_state is UpgradeState.MERGE
    cfg = platform.seen[Request.EXECUTE_MERGE]
    assert cfg.description == "v1" and cfg.services[0].command == ("/bin/db1",)
    assert cfg.source == str(top)  # shown as the operator's file
    assert act(engine, OperatorAction.COMMIT).upgrade_state is UpgradeState.COMMIT
    assert act(engine, OperatorAction.FINISH).upgrade_state is UpgradeState.IDLE
    assert not staged.exists()
    store.close()
