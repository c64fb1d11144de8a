"""A booted Debian host whose root is a btrfs filesystem: each volume gets the storage its
folder allows, by itself, and an upgrade of Debian's nginx goes through them.

The host (``tests/host``, recipe NGINX) has its root on a btrfs of the test's own (a
sparse loop image). Before it boots, ``/etc/nginx`` and ``/var/log/nginx`` are made btrfs
subvolumes holding their Debian files (as an operator lays out a server for snapshots);
``/usr/sbin``, ``/var/lib/dpkg`` and ``/var/lib/nginx`` stay plain folders of the root
subvolume. Adopted with ``au`` inside, the subvolumes are duplexed by snapshot
(``storage: snapshot``: replica B is a snapshot of the original, its parent by
``btrfs subvolume show``) and the plain folders by reflink copies (``storage: reflink``).
Then a whole upgrade: split, bookworm-security's nginx installed on the Upgrade Side with
apt while Production serves and logs requests into the snapshot volume, merge (nginx
restarted on the new binary with the log written meanwhile), commit, a reboot, a byte-for-
byte verify of every volume, and release, which leaves no snapshot behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.host import NGINX, Host
from tests.host.fixtures import booted_host
from tests.support import cannot_run

from .test_host_packages import CONFIG, NEW, OLD, au, file_hash, running_binary, version
from .test_host_system import upgrade_inside

SUBVOLUMES = ("/etc/nginx", "/var/log/nginx")
FOLDERS = ("/usr/sbin", "/var/lib/dpkg", "/var/lib/nginx")
IMAGE_BYTES = 8 << 30
"""The loop image's size (sparse): the root, the venv and the replicas of /usr/sbin."""


@pytest.fixture
def btrfs_area(tmp_path: Path) -> Iterator[Path]:
    """A btrfs filesystem on a sparse loop image, mounted for the test."""
    if os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None:
        cannot_run("needs root and mkfs.btrfs (btrfs-progs) to make a btrfs root")
    img, mnt = tmp_path / "root.btrfs.img", tmp_path / "btrfs"
    mnt.mkdir()
    with open(img, "wb") as fh:
        fh.truncate(IMAGE_BYTES)
    subprocess.run(["mkfs.btrfs", "-q", str(img)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        img.unlink(missing_ok=True)


def _make_subvolume(folder: Path) -> None:
    """Turn ``folder`` into a btrfs subvolume holding the same files, with the folder's
    own owner and mode (from outside the host, before it boots)."""
    st = folder.stat()
    fresh = folder.with_name(folder.name + ".subvolume")
    subprocess.run(["btrfs", "-q", "subvolume", "create", str(fresh)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cp", "-a", "--reflink=always", f"{folder}/.", str(fresh)], check=True)
    os.chown(fresh, st.st_uid, st.st_gid)
    os.chmod(fresh, st.st_mode & 0o7777)
    old = folder.with_name(folder.name + ".folder")
    folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old)


def _lay_out(host: Host) -> None:
    for inside in SUBVOLUMES:
        _make_subvolume(host.path(inside))


def _subvolume(host: Host, path: str) -> dict[str, str]:
    """``btrfs subvolume show`` inside the host: its "Name: value" lines."""
    out = host.run(["btrfs", "subvolume", "show", path], check=True).stdout
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(":") for line in out.splitlines()[1:]) if v}


def _get(host: Host, path: str) -> int:
    """An HTTP request to Production's nginx from inside the host: its status."""
    code = ("import sys, urllib.error, urllib.request\n"
            "try:\n"
            "    print(urllib.request.urlopen(sys.argv[1], timeout=30).status)\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code)\n")
    done = host.run(["python3", "-c", code, f"http://127.0.0.1{path}"], check=True)
    return int(done.stdout.strip())


def _au_snapshots(fs: Path, host: Host) -> list[str]:
    """The subvolumes of the btrfs ``fs`` in the host's instance folder (the tool's
    snapshots), as ``btrfs subvolume list`` gives them, read from outside the host."""
    out = subprocess.run(["btrfs", "subvolume", "list", str(fs)], check=True,
                         capture_output=True, text=True).stdout
    home = str(host.path("/var/lib/activeupgrade").relative_to(fs))
    return [path for line in out.splitlines()
            if (path := line.split(" path ", 1)[1]).startswith(home + "/")]


@pytest.fixture
def host(btrfs_area: Path, tmp_path: Path) -> Iterator[Host]:
    with booted_host(NGINX, tmp_path / "host", area=btrfs_area, before_boot=_lay_out) as h:
        yield h


def test_snapshot_and_reflink_volumes_of_a_booted_host_on_btrfs(host: Host,
                                                                btrfs_area: Path) -> None:
    assert host.run(["stat", "-f", "-c", "%T", "/"], check=True).stdout.strip() == "btrfs"
    assert version(host) == OLD and _get(host, "/") == 200
    old_binary = running_binary(host)
    originals = {p: _subvolume(host, p)["UUID"] for p in SUBVOLUMES}
    for path in (*FOLDERS[:2], SUBVOLUMES[0]):
        au(host, "volume", "adopt", path, "--role", "system")
    for path in (SUBVOLUMES[1], FOLDERS[2]):
        au(host, "volume", "adopt", path, "--role", "data")

    shown = {p: json.loads(au(host, "volume", "show", p, "--json"))
             for p in (*SUBVOLUMES, *FOLDERS)}
    assert {p: v["storage"] for p, v in shown.items()} == {
        **{p: "snapshot" for p in SUBVOLUMES}, **{p: "reflink" for p in FOLDERS}}
    for path in SUBVOLUMES:
        b = shown[path]["replicas"]["b"]
        assert _subvolume(host, b)["Parent UUID"] == originals[path], (path, b)
    assert len(_au_snapshots(btrfs_area, host)) == len(SUBVOLUMES)

    host.write_file("/root/nginx.toml", CONFIG)
    au(host, "config", "load", "/root/nginx.toml")
    upgrade_inside(host)
    # Production serves meanwhile and logs into the snapshot volume /var/log/nginx.
    assert _get(host, "/during-the-split") == 404
    assert running_binary(host) == old_binary

    au(host, "merge")
    assert version(host) == NEW
    new_binary = running_binary(host)
    assert new_binary != old_binary and new_binary == file_hash(host, "/usr/sbin/nginx")
    assert _get(host, "/after-the-merge") == 404
    au(host, "commit", "--yes")
    au(host, "finish")

    host.reboot()
    assert version(host) == NEW and running_binary(host) == new_binary
    log = host.run(["cat", "/var/log/nginx/access.log"], check=True).stdout
    assert "/during-the-split" in log and "/after-the-merge" in log
    verified = json.loads(au(host, "volume", "verify", "--full", "--json"))
    assert sorted(r["name"] for r in verified if r["full"]) == sorted(
        v["name"] for v in shown.values()), verified
    for path in (*SUBVOLUMES, *FOLDERS):
        shown_now = json.loads(au(host, "volume", "show", path, "--json"))
        assert shown_now["storage"] == shown[path]["storage"], path

    for path in SUBVOLUMES:
        au(host, "volume", "release", shown[path]["name"])
        assert _subvolume(host, path)["UUID"] == originals[path]  # the original, in place
    assert _au_snapshots(btrfs_area, host) == []
    assert "/after-the-merge" in host.run(["cat", "/var/log/nginx/access.log"],
                                           check=True).stdout
    assert _get(host, "/") == 200
