"""Fixtures of the services tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.config.model import ServiceSpec
from activeupgrade.platform.services.supervisor import Supervisor

from .helpers import open_instance


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    """A supervisor of a fresh instance; every service it started is shut down after."""
    inst, store = open_instance(tmp_path / "home")
    s = Supervisor(inst, store)
    yield s
    for name in list(store.docs("services")):
        s.shutdown(ServiceSpec(name=name, stop_grace=2))
