"""The boot unit: the packaged file is the one `au host install` writes for the package's
paths; install, status, attach and uninstall through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from activeupgrade.cli.host import UNIT, WANTED_BY, unit_text
from tests.support import au

TOP = Path(__file__).resolve().parents[2]


def test_packaged_unit_is_the_installed_one() -> None:
    packaged = (TOP / "packaging" / UNIT).read_text()
    assert packaged == unit_text("/usr/bin/au", "/var/lib/activeupgrade")
    assert "ExecStart=/usr/bin/au host attach" in packaged
    assert "DefaultDependencies=no" in packaged and "Before=local-fs.target" in packaged
    assert f"install -D -m 0644 \"$top/packaging/{UNIT}\"" in \
        (TOP / "scripts" / "build-deb.sh").read_text()


def test_install_status_attach_uninstall(tmp_path: Path) -> None:
    home, units = tmp_path / "home", tmp_path / "units"
    assert au(home, "init").returncode == 0
    r = au(home, "host", "install", "--unit-dir", str(units), "--au", "/opt/x/bin/au")
    assert r.returncode == 0, r.stderr
    text = (units / UNIT).read_text()
    assert f"Environment=AU_HOME={home}\n" in text and f"RequiresMountsFor={home}\n" in text
    assert "ExecStart=/opt/x/bin/au host attach\n" in text
    assert (units / f"{WANTED_BY}.wants" / UNIT).resolve() == units / UNIT
    st = json.loads(au(home, "host", "status", "--json", "--unit-dir", str(units)).stdout)
    assert st["installed"] and st["enabled"] and st["volumes"] == []
    au(home, "daemon", "--stop")
    r = au(home, "host", "attach")
    assert r.returncode == 0 and "every live path shows" in r.stdout, r.stderr
    r = au(home, "host", "uninstall", "--unit-dir", str(units))
    assert r.returncode == 0 and not (units / UNIT).exists()
    assert not (units / f"{WANTED_BY}.wants" / UNIT).is_symlink()
    st = json.loads(au(home, "host", "status", "--json", "--unit-dir", str(units)).stdout)
    assert not st["installed"]
