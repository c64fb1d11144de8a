"""What the Upgrade Side sees: the whole system as a private view, planned as data.

The plan is made by the daemon (it knows the volumes, the instances and the mounts of its
own root) and carried out by the side's init (``side/build.py``), layer after layer:

- ``root`` and ``outside``: the daemon's root filesystem and every other filesystem mounted
  on it that is not a volume, copy-on-write (an overlay whose upper folder is on the side's
  scratch) or read-only (``[upgrade_side] outside = "read-only"``); what the side writes
  there is listed for the operator (``side/writes.py``) and never kept;
- ``dev``, ``proc``, ``sys``, ``fresh``: a minimal ``/dev``, its own ``/proc`` (with the host-
  wide knobs read-only or hidden), a read-only ``/sys`` of its own network, its own ``/run``,
  ``/tmp`` and ``/var/tmp``;
- ``system``: each system volume's Upgrade Side replica at the volume's path, read-write;
- ``data``: each data volume (of this instance, selected or not, and of every other instance)
  replaced by writable scratch that starts empty and is discarded;
- ``packages``: the packages staged on the Production Side (``side/packages.py``) as apt's
  cache and lists, copy-on-write;
- ``policy``: ``/usr/sbin/policy-rc.d`` refusing every service start (only inside the side);
- ``needed``: what ``[upgrade_side] packages`` lists, read-only at its own path;
- ``mask``: every instance folder and tool state, and filesystems that must never be seen
  from there (another ``proc``, ``sysfs``, device filesystems), behind an empty read-only
  folder.

Every layer but ``dev`` is mounted ``nodev``: a device node found on a disk cannot open a
host device from inside.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path

from activeupgrade.config.model import Config, VolumeRole
from activeupgrade.instance import INSTANCE_INDEX, ROOT_HOME, Instance, registered
from activeupgrade.platform.side import mounts as mountinfo
from activeupgrade.platform.side.layers import (
    APT_ARCHIVES,
    APT_LISTS,
    POLICY_RC_D,
    Layer,
    LayerKind,
    Outside,
    View,
)
from activeupgrade.platform.volumes import registry
from activeupgrade.store.db import Store

SPECIAL = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp")
"""Paths the side has its own of: nothing the host mounts there is shown."""

DISK_TYPES = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "msdos", "exfat", "ntfs", "ntfs3",
    "f2fs", "zfs", "jfs", "reiserfs", "bcachefs", "overlay", "tmpfs", "ramfs", "squashfs",
    "iso9660", "erofs", "udf", "nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs", "fuse",
    "fuseblk",
})
"""Filesystems that hold files and nothing else: shown (copy-on-write or read-only). Any
other kind the host mounts (proc, sysfs, devpts, cgroup, nsfs, debugfs…) would reach the
host's processes or devices and is hidden."""

def _tag(path: str) -> str:
    return hashlib.sha1(os.fsencode(path)).hexdigest()[:12]


def _owner(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0o755)
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


Signature = tuple[int, int, int, tuple[int, int, int, bytes] | None]
"""What a state database shows of its changes without being opened: the database file's
inode, size and mtime, and its write-ahead log's (with the log's header, whose salts
change whenever the log starts over)."""

def _signature(db: Path) -> Signature | None:
    """``db``'s signature (None: there is no database). A commit in WAL mode appends to the
    log (its size grows) or starts the log over (its header changes); a checkpoint writes
    the database file: either way the signature differs from any taken before."""
    try:
        st = os.stat(db)
    except OSError:
        return None
    try:
        with open(f"{db}-wal", "rb") as log:
            lst = os.fstat(log.fileno())
            wal = (lst.st_ino, lst.st_size, lst.st_mtime_ns, log.read(32))
    except OSError:
        wal = None
    return (st.st_ino, st.st_size, st.st_mtime_ns, wal)


def other_data_paths(home: Path, memo: dict[str, tuple[object, list[tuple[str, str]]]]
                     | None = None) -> list[tuple[str, str]]:
    """(name, path) of the data volumes of the instance at ``home`` (read-only look). With
    the daemon's ``memo`` (``SyncState.others``), read again only when its state database
    has changed since the last look (a host where tests ran keeps hundreds of instance
    folders, each one a database to open)."""
    db = home / "state.db"
    signature = _signature(db)  # before the read: a commit meanwhile makes the next differ
    if signature is None:
        return []
    known = None if memo is None else memo.get(str(home))
    if known is not None and known[0] == signature:
        return list(known[1])
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
        try:
            rows = con.execute("SELECT key, value FROM docs WHERE namespace = ?",
                               (registry.NS,)).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    out = []
    for key, value in rows:
        try:
            doc = json.loads(value)
        except ValueError:
            continue
        if doc.get("role") == VolumeRole.DATA.value and doc.get("path"):
            out.append((str(key), str(doc["path"])))
    if memo is not None:
        memo[str(home)] = (signature, out)
    return list(out)


def plan(instance: Instance, store: Store, cfg: Config, *, scratch: str,
         stage: Path | None = None, visible: list[mountinfo.Mount] | None = None,
         others: list[Path] | None = None,
         memo: dict[str, tuple[object, list[tuple[str, str]]]] | None = None) -> View:
    """The view of the Upgrade Side of ``cfg``'s session (nothing is changed); ``memo``:
    see ``other_data_paths``."""
    outside = Outside(cfg.upgrade_side.outside)
    cow = outside is Outside.COPY_ON_WRITE
    selected = {v.path: v for v in registry.for_config(store, cfg)}
    volumes = [selected.get(v.path, v) for v in registry.all_volumes(store)]
    systems = [v for v in volumes if v.role is VolumeRole.SYSTEM and v.session.get("upgrade")
               and v.path in selected]
    datas: list[tuple[str, str, str]] = [
        (v.path, f"data/{v.name}", f"data volume {v.name}: empty scratch, discarded")
        for v in volumes if v.role is VolumeRole.DATA]
    homes = [instance.home]
    for home in (registered() if others is None else others):
        if home == instance.home:
            continue
        homes.append(home)
        for name, path in other_data_paths(home, memo):
            datas.append((path, f"data/{_tag(str(home))}-{name}",
                          f"data volume {name} of the instance {home}: empty scratch"))
    hidden = [str(h) for h in homes]
    if ROOT_HOME.is_dir() and str(ROOT_HOME) not in hidden:
        hidden.append(str(ROOT_HOME))
    hidden.append(str(INSTANCE_INDEX.parent))
    replaced = [v.path for v in systems] + [p for p, _, _ in datas]

    layers = [Layer(LayerKind.ROOT, "/", "root filesystem, " + outside.value, source="/",
                    scratch=f"upper/{_tag('/')}", writable=cow)]
    for m in (mountinfo.visible(mountinfo.current()) if visible is None else visible):
        p = m.point
        if p == "/" or any(mountinfo.under(p, s) for s in SPECIAL) or any(
                mountinfo.under(p, h) for h in hidden) or any(
                mountinfo.under(p, r) for r in replaced):
            continue
        if m.fstype not in DISK_TYPES and not m.fstype.startswith("fuse."):
            if os.path.isdir(p):
                layers.append(Layer(LayerKind.MASK, p, f"{m.fstype} filesystem of the host: "
                                    "hidden"))
            continue
        if os.path.isdir(p):
            layers.append(Layer(LayerKind.OUTSIDE, p, f"{m.fstype} {m.source}, "
                                + outside.value, source=p, scratch=f"upper/{_tag(p)}",
                                writable=cow))
        elif os.path.isfile(p) and not os.path.islink(p):
            layers.append(Layer(LayerKind.FILE, p, f"file mounted by the host ({m.fstype}), "
                                "read-only", source=p, writable=False))
        # (anything else the host mounts on a file, a socket above all, is not shown)
    layers += [
        Layer(LayerKind.DEV, "/dev", "minimal /dev of the Upgrade Side"),
        Layer(LayerKind.PROC, "/proc", "the Upgrade Side's own processes"),
        Layer(LayerKind.SYS, "/sys", "sysfs of the Upgrade Side's network, read-only",
              writable=False),
        Layer(LayerKind.FRESH, "/run", "the Upgrade Side's own /run (empty at boot)",
              scratch="run", owner=(0, 0, 0o755)),
        Layer(LayerKind.FRESH, "/tmp", "the Upgrade Side's own /tmp (empty at boot)",
              scratch="tmp", owner=(0, 0, 0o1777)),
        Layer(LayerKind.FRESH, "/var/tmp", "the Upgrade Side's own /var/tmp", scratch="var-tmp",
              owner=(0, 0, 0o1777)),
    ]
    for v in systems:
        up = v.session["upgrade"]
        layers.append(Layer(LayerKind.SYSTEM, v.path, f"system volume {v.name}: Upgrade Side "
                            f"replica {up}, read-write", source=v.replica(up)))
    for path, name, why in datas:
        layers.append(Layer(LayerKind.DATA, path, why, scratch=name, owner=_owner(path)))
    if stage is not None and (stage / "archives").is_dir():
        for target, part in ((APT_ARCHIVES, "archives"), (APT_LISTS, "lists")):
            if os.path.isdir(target) and (stage / part).is_dir():
                layers.append(Layer(LayerKind.PACKAGES, target, f"packages staged on the "
                                    f"Production Side ({part}), copy-on-write",
                                    source=str(stage / part), scratch=f"upper/{_tag(target)}"))
    for path in cfg.upgrade_side.packages:
        if os.path.exists(path) and not any(mountinfo.under(path, h) for h in hidden):
            layers.append(Layer(LayerKind.NEEDED, path, "listed in [upgrade_side] packages, "
                                "read-only", source=path, writable=False))
    policy = _policy(systems, cow)
    if policy is not None:
        layers.append(policy)
    for h in hidden:
        layers.append(Layer(LayerKind.MASK, h, "Active Upgrade's own state: hidden"))
    return View(layers)


def _policy(systems: list[registry.Volume], cow: bool) -> Layer | None:
    if not os.path.isdir(os.path.dirname(POLICY_RC_D)):
        return None
    why = "policy-rc.d: services are not started on the Upgrade Side"
    for v in systems:
        if mountinfo.under(POLICY_RC_D, v.path):
            real = os.path.join(v.replica(v.session["upgrade"]),
                                os.path.relpath(POLICY_RC_D, v.path))
            return Layer(LayerKind.POLICY, POLICY_RC_D, why, scratch="policy-rc.d",
                         placeholder="" if os.path.lexists(real) else real)
    if os.path.lexists(POLICY_RC_D):
        return Layer(LayerKind.POLICY, POLICY_RC_D, why, scratch="policy-rc.d")
    if not cow:
        return None  # nowhere to put it: a read-only view refuses the installers' writes
    return Layer(LayerKind.POLICY, POLICY_RC_D, why, scratch="policy-rc.d", create=True)
