"""The demo's tree: a stand-in host root holding the shop's volumes, packages and instance.

Everything the demo creates lies under one temporary folder, so that clean-up is one
``release`` per volume and one removal. Paths mirror a real host: ``opt/shop`` (software,
a system volume), ``var/lib/shop`` (orders, a data volume), ``var/cache/shop`` (packages,
present locally because the Upgrade Side has no network), ``au-home`` (the instance).
"""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class DemoTree:
    """The paths of one demo run."""

    root: Path
    """The temporary stand-in host root."""
    port: int
    """Where the shop listens (127.0.0.1). The private link's addresses are not set: each
    instance gets a free /30 of its own when its Upgrade Side starts."""

    @classmethod
    def create(cls, parent: Path | None = None) -> DemoTree:
        base = (parent or Path(tempfile.gettempdir())).resolve()
        root = Path(tempfile.mkdtemp(prefix="au-demo-", dir=base)).resolve()
        tree = cls(root, free_port())
        for d in (tree.software, tree.data, tree.packages, tree.home):
            d.mkdir(parents=True, exist_ok=True)
        tree.home.chmod(0o700)
        return tree

    @property
    def software(self) -> Path:
        """The system volume: the shop's software, actions and request log."""
        return self.root / "opt" / "shop"

    @property
    def data(self) -> Path:
        """The data volume: the orders."""
        return self.root / "var" / "lib" / "shop"

    @property
    def packages(self) -> Path:
        """Release tarballs and the installer."""
        return self.root / "var" / "cache" / "shop"

    @property
    def home(self) -> Path:
        """The demo's own instance (``AU_HOME``)."""
        return self.root / "au-home"

    @property
    def configs(self) -> Path:
        """The instance's configuration folder (parent and child files side by side)."""
        return self.home / "configs"

    @property
    def backups(self) -> Path:
        """Where the backup action and the backup step save the old release's logs."""
        return self.home / "backups"

    @property
    def hook_records(self) -> Path:
        """Where the shop's custom action records each run (outside the volumes)."""
        return self.root / "var" / "log" / "shop-hooks.jsonl"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
