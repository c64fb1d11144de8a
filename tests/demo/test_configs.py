"""The demo's generated configuration files load through the real loader and use every
feature the demo promises."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.config.loader import load_file
from activeupgrade.config.model import ControlType, HealthKind, Timing, VolumeRole
from activeupgrade.demo import configs
from activeupgrade.demo.layout import DemoTree
from activeupgrade.demo.orchestrator import mounts_under


@pytest.fixture
def trees() -> Iterator[list[DemoTree]]:
    """Demo trees made by a test (in /tmp: pytest's folder is too deep for their sockets),
    removed after it."""
    made: list[DemoTree] = []
    yield made
    for tree in made:
        shutil.rmtree(tree.root, ignore_errors=True)


def make(trees: list[DemoTree], parent: Path) -> DemoTree:
    trees.append(DemoTree.create(parent))
    return trees[-1]


def test_parent_and_child_use_every_feature(tmp_path: Path, trees: list[DemoTree]) -> None:
    tree = make(trees, tmp_path)
    pkg = tree.packages / "shop-2.0.0.tar.gz"
    parent = configs.write(tree, sys.executable, [pkg])
    config = load_file(parent)
    assert config.description
    assert len(config.files) == 2 and config.files[1].endswith(configs.CHILD)
    assert {(v.path, v.role) for v in config.volumes} == {
        (str(tree.software), VolumeRole.SYSTEM), (str(tree.data), VolumeRole.DATA)}
    (shop,) = config.services
    assert shop.sockets[0].listen == f"127.0.0.1:{tree.port}"
    assert shop.health.kind is HealthKind.HTTP
    assert {a.control for a in config.actions} == set(ControlType)
    assert all(a.file == str(tree.software / "bin" / "hook.py") for a in config.actions)
    assert config.actions_of(ControlType.ADVANCED)[0].timing is Timing.EARLY
    # The child adds its backup path to the parent's.
    assert len(config.backup.paths) == 2
    assert config.upgrade_side.packages == (str(pkg),)
    assert config.provenance["action.shop-audit.file"].endswith(configs.CHILD)


def test_trees_do_not_share_ports(tmp_path: Path, trees: list[DemoTree]) -> None:
    a, b = make(trees, tmp_path), make(trees, tmp_path)
    assert a.root != b.root
    assert a.port != b.port
    assert mounts_under(a.root) == []
    assert mounts_under(Path("/")) != []
