"""Volumes at size, through the CLI as an operator runs it, side by side with the obvious
baselines in one run:

- ``au volume adopt`` of a tree of N files vs ``cp -a`` of the same tree;
- ``au status`` latency (wall, the whole command) on an instance with that volume;
- ``au volume resync`` after 0.1 % and 1 % of the files changed vs ``rsync -a --delete``
  carrying the same changes to a copy made at the same time;
- ``au volume resync`` with nothing changed;
- ``au volume verify`` (quick) and ``au volume verify --full`` (byte for byte), when the
  CLI has it;
- a session with nothing changed: ``au split``, ``merge``, ``commit --yes``, ``finish``
  (wall, and the daemon's CPU seconds for each);
- the daemon's peak RSS (VmHWM) after all of it.

With ``--btrfs`` (root) everything runs on a btrfs filesystem made on a loop image, the
volume's directory a subvolume: adoption makes replica B a snapshot (``au volume show``:
storage snapshot), against ``cp -a``, which reflinks there (coreutils 9 does by default).
With ``--xfs`` (root) everything runs on an XFS filesystem with ``reflink=1`` on a loop image:
adoption makes replica B by reflink copies (storage reflink), against ``cp -a`` (which
reflinks there too) and ``cp -a --reflink=never`` (a copy of every byte).
With ``--ext4`` (root) everything runs on a fresh ext4 filesystem on a loop image (storage
plain): the baseline and the adoption on a filesystem that earlier runs have not aged (a
filesystem churned by many copies and deletions can make ``cp -a`` itself several times
slower from one run to the next).
With ``--ram`` as well, that loop image is a file in ``/dev/shm`` (memory): the same
filesystem with no disk under it, so that the figures measure the work of the CPU and
not a shared disk's mood (a virtual machine's disk can make the same ``cp -a`` take 4 or
20 s from one hour to the next).
With ``--tree PATH`` the volume is a copy of a real tree (``/usr``, say) instead, whose
regular files are rewritten for the resyncs.

Each size gets a fresh instance (its own daemon, started by the first command), a fresh
tree of small files (100 per folder, 0–8 KiB), and is released afterwards. Prints one line
per figure with the absolute times, the ratio ours/baseline, and a growth table by size.

    .venv/bin/python bench/scale.py [--sizes 10000,50000] [--dir /var/tmp/au-bench]
                                    [--btrfs | --xfs | --ext4] [--ram] [--tree /usr]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def au(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AU_HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "activeupgrade", *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"au {' '.join(args)} exited {done.returncode}: "
                           f"{done.stderr.strip()[-400:]}")
    return done


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def build(root: Path, files: int, seed: int = 1) -> int:
    """A tree of ``files`` small files; returns its bytes."""
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        d = root / f"d{i // 1000:03d}" / f"s{(i // 100) % 10}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(0, 8192)
        (d / f"f{i}").write_bytes(rng.randbytes(size))
        total += size
    return total


def regular_files(root: Path) -> list[str]:
    """The regular files of a tree (relative paths, sorted), not following symlinks."""
    out = []
    for top, dirs, names in os.walk(root):
        dirs.sort()
        for n in names:
            p = os.path.join(top, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def edit_real(root: Path, regulars: list[str], share: float, seed: int) -> int:
    """Rewrite ``share`` of the regular files of a copied real tree (new content of up to
    64 KiB each); returns how many."""
    rng = random.Random(seed)
    count = max(1, int(len(regulars) * share))
    for rel in rng.sample(regulars, count):
        p = root / rel
        p.write_bytes(rng.randbytes(max(1, min(p.stat().st_size, 65536))))
    return count


def edit(root: Path, files: int, share: float, seed: int) -> int:
    """Rewrite ``share`` of the files of a ``build`` tree; returns how many."""
    rng = random.Random(seed)
    count = max(1, int(files * share))
    for i in rng.sample(range(files), count):
        p = root / f"d{i // 1000:03d}" / f"s{(i // 100) % 10}" / f"f{i}"
        p.write_bytes(rng.randbytes(rng.randrange(1, 8192)))
    return count


def status_server_ms(home: Path, rounds: int = 20) -> float:
    """Median time of ``GET /status`` answered by the daemon (one client, connection kept:
    the server's time plus the socket's round trip, without the CLI's start-up)."""
    from activeupgrade.api.client import Client

    old = os.environ.get("AU_HOME")
    os.environ["AU_HOME"] = str(home)
    try:
        client = Client.from_env(start=False)
        times = [timed(lambda: client.get("/status")) for _ in range(rounds)]
    finally:
        if old is None:
            del os.environ["AU_HOME"]
        else:
            os.environ["AU_HOME"] = old
    return statistics.median(times) * 1000


def resync_cli(home: Path, name: str) -> tuple[float, int, float]:
    """``au volume resync NAME --json``: (seconds, files copied, the daemon's own seconds
    for the resync itself)."""
    t0 = time.perf_counter()
    done = au(home, "volume", "resync", name, "--json")
    took = time.perf_counter() - t0
    try:
        doc = json.loads(done.stdout)
        return took, int(doc.get("copied_files", -1)), float(doc.get("seconds", 0.0))
    except (ValueError, AttributeError):
        return took, -1, float("nan")


def daemon_cpu(home: Path) -> float:
    """CPU seconds (user + system) the instance's daemon has used so far."""
    try:
        pid = int((home / "engine.lock").read_text().strip())
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def peak_rss_mib(home: Path) -> float:
    try:
        pid = int((home / "engine.lock").read_text().strip())
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


MKFS = {"btrfs": ["mkfs.btrfs", "-q", "-f"], "xfs": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"],
        "ext4": ["mkfs.ext4", "-q", "-F", "-i", "4096"]}


@contextlib.contextmanager
def loop_fs(fs: str, where: Path, files: int, tree: str = "", ram: bool = False
            ) -> Iterator[None]:
    """A ``fs`` filesystem (btrfs, xfs, ext4) on a sparse loop image, mounted at ``where``
    meanwhile: room for six copies of ``tree`` or of ``files`` small files (sparse: at most
    four are there at once, and ``fstrim`` gives back what was deleted); the image in
    ``/dev/shm`` if ``ram``."""
    image = (Path("/dev/shm") if ram else where.parent) / f"{where.name}.{fs}.img"
    if tree:
        du = subprocess.run(["du", "-sbx", tree], check=True, capture_output=True, text=True)
        room = 6 * int(du.stdout.split()[0]) + (1 << 30)
    else:
        room = files * 48 << 10  # several trees of ~4 KiB files
    with open(image, "wb") as fh:
        fh.truncate(max(4 << 30, room))
    run([*MKFS[fs], str(image)])
    run(["mount", "-o", "loop", str(image), str(where)])
    try:
        yield
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-R", "-l", str(where)], check=False)
        image.unlink(missing_ok=True)


def one_size(base: Path, files: int, fs: str = "", tree: str = "", ram: bool = False
             ) -> dict[str, float]:
    work = base / (f"n{files}" if not tree else "tree")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    home, vol = work / "home", work / "srv" / "vol"
    try:
        with loop_fs(fs, work, files, tree, ram) if fs else contextlib.nullcontext():
            try:
                return _measure(work, home, vol, files, fs, tree)
            finally:
                _release(home, vol)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _release(home: Path, vol: Path) -> None:
    name = str(vol).strip("/").replace("/", "-")
    if (home / "engine.lock").exists():
        au(home, "abort", "--yes", check=False)  # a session a failure left behind
        au(home, "volume", "release", name, check=False)
        au(home, "daemon", "--stop", check=False)


def _measure(work: Path, home: Path, vol: Path, files: int, fs: str, tree: str
             ) -> dict[str, float]:
    src, theirs = work / "src", work / "cp"
    regulars: list[str] = []
    if tree:
        run(["cp", "-a", tree, str(src)])
        regulars = regular_files(src)
        files = sum(len(d) + len(n) for _, d, n in os.walk(src))
        size = sum((src / r).stat().st_size for r in regulars)
    else:
        size = build(src, files)
    vol.parent.mkdir()
    out: dict[str, float] = {"files": files, "mib": size / 2**20}
    run(["sync"])
    out["cp"] = timed(lambda: run(["cp", "-a", str(src), str(theirs)]))
    if fs == "xfs":  # cp -a reflinks here: a copy of every byte too, for scale
        every_byte = work / "cp-full"
        out["cp full"] = timed(lambda: run(["cp", "-a", "--reflink=never", str(src),
                                            str(every_byte)]))
        shutil.rmtree(every_byte)
    if fs == "btrfs":
        run(["btrfs", "-q", "subvolume", "create", str(vol)])
        run(["cp", "-a", f"{src}/.", str(vol)])
        shutil.rmtree(theirs)
    else:  # the copy cp -a made is the volume: one tree fewer on the filesystem
        theirs.rename(vol)
    # the source is no longer needed (the copy after the adoption reads the volume, a tree
    # written by cp -a as the source was): room for a real tree of GBs in memory
    shutil.rmtree(src)
    if fs:
        run(["fstrim", str(work)])  # a loop image in memory gets its pages back
    run(["sync"])
    au(home, "init")
    au(home, "status")  # the daemon started: not part of the adoption's time
    out["adopt"] = timed(lambda: au(home, "volume", "adopt", str(vol), "--role", "system"))
    # cp -a again, after the adoption: a copy made right after others is slower (ext4's
    # inode allocator, writeback), so the baseline is the mean of one before and one after;
    # it is the copy the resyncs are compared against (rsync carries the same changes)
    run(["sync"])
    out["cp after"] = timed(lambda: run(["cp", "-a", str(vol), str(theirs)]))
    out["cp before"] = out["cp"]
    out["cp"] = (out["cp before"] + out["cp after"]) / 2
    out["rss adopt"] = peak_rss_mib(home)
    name = str(vol).strip("/").replace("/", "-")
    shown = json.loads(au(home, "volume", "show", name, "--json").stdout)
    out["storage"] = shown.get("storage", "?")
    run(["rsync", "-a", "--delete", f"{vol}/", f"{theirs}/"])
    lat = [timed(lambda: au(home, "status")) for _ in range(5)]
    out["status"] = statistics.median(lat)
    out["status_server"] = status_server_ms(home)
    out["status_bare"] = statistics.median(
        [timed(lambda: run([sys.executable, "-m", "activeupgrade", "--version"]))
         for _ in range(3)])
    # the first resync of a daemon's life reads both trees in full (its change tracking
    # starts there); every later one looks only at what changed
    out["resync first"], _, out["inner first"] = resync_cli(home, name)
    for label, share in (("0.1%", 0.001), ("1%", 0.01)):
        if tree:
            changed = edit_real(vol, regulars, share, seed=int(share * 1e4))
        else:
            changed = edit(vol, files, share, seed=int(share * 1e4))
        run(["sync"])
        out[f"rsync {label}"] = timed(lambda: run(
            ["rsync", "-a", "--delete", f"{vol}/", f"{theirs}/"]))
        (out[f"resync {label}"], out[f"copied {label}"],
         out[f"inner {label}"]) = resync_cli(home, name)
        out[f"changed {label}"] = changed
    out["resync idle"], out["copied idle"], out["inner idle"] = resync_cli(home, name)
    out["changed idle"] = 0
    out["rsync idle"] = timed(lambda: run(["rsync", "-a", "--delete", f"{vol}/", f"{theirs}/"]))
    out["verify"] = timed(lambda: au(home, "volume", "verify", name))
    full = au(home, "volume", "verify", "--help", check=False)
    if "--full" in full.stdout:
        out["verify full"] = timed(lambda: au(home, "volume", "verify", "--full", name))
    for verb in ("split", "merge", "commit", "finish"):
        cpu = daemon_cpu(home)
        out[verb] = timed(lambda v=verb: au(home, v, *(["--yes"] if v == "commit" else [])))
        out[f"{verb} cpu"] = daemon_cpu(home) - cpu
    out["rss"] = peak_rss_mib(home)
    return out


def report(rows: list[dict[str, float]]) -> None:
    print(f"load average while measuring: {os.getloadavg()}, cores: {os.cpu_count()}")
    index = Path("/run/activeupgrade/instances")
    known = sum(1 for e in index.iterdir() if not e.name.startswith(".")) if index.is_dir() else 0
    print(f"instances registered on this host since boot: {known} (the Upgrade Side hides "
          "the data volumes of each: its start looks at every one's state)")
    for r in rows:
        n = int(r["files"])
        print(f"\n== {n} entries, {r['mib']:.0f} MiB, storage {r['storage']} ==")
        print(f"adopt            au {r['adopt']:8.2f}s   cp -a {r['cp']:8.2f}s   "
              f"ratio {r['adopt'] / r['cp']:.2f} (cp -a before the adoption "
              f"{r['cp before']:.2f}s, after it {r['cp after']:.2f}s)")
        if "cp full" in r:
            print(f"                               cp -a --reflink=never {r['cp full']:8.2f}s"
                  f"   ratio {r['adopt'] / r['cp full']:.2f}")
        print(f"resync first     au {r['resync first']:8.2f}s   (nothing changed; the "
              f"daemon's first look at the trees: {r['inner first']:.3f}s of it)")
        for label in ("0.1%", "1%", "idle"):
            ours, base = r[f"resync {label}"], r[f"rsync {label}"]
            print(f"resync {label:5}     au {ours:8.2f}s   rsync -a --delete {base:8.2f}s   "
                  f"ratio {ours / base:.2f} ({base / ours:.1f}x faster); "
                  f"{int(r[f'changed {label}'])} changed, {int(r[f'copied {label}'])} copied; "
                  f"the resync itself {r[f'inner {label}']:.3f}s in the daemon")
        print(f"au status        {r['status'] * 1000:8.0f}ms  (au --version "
              f"{r['status_bare'] * 1000:.0f}ms; GET /status alone "
              f"{r['status_server']:.1f}ms)")
        print(f"verify (quick)   {r['verify']:8.2f}s"
              + (f"   verify --full {r['verify full']:8.2f}s" if "verify full" in r else ""))
        print("session          " + "   ".join(
            f"{v} {r[v]:.2f}s (daemon CPU {r[f'{v} cpu']:.2f}s)"
            for v in ("split", "merge", "commit", "finish")))
        print(f"daemon peak RSS  {r['rss']:8.0f} MiB   "
              f"(after the adoption {r['rss adopt']:.0f} MiB)")
    print("\ngrowth by size (seconds; status in ms; RSS in MiB):")
    keys = ["adopt", "cp", "resync 0.1%", "rsync 0.1%", "resync 1%", "rsync 1%",
            "resync idle", "inner first", "inner 0.1%", "inner 1%", "inner idle", "status",
            "status_server", "verify", "verify full", "split", "split cpu", "finish", "rss"]
    print("files".rjust(8) + "".join(k.rjust(14) for k in keys))
    print("(inner: the resync's own time in the daemon, without the CLI and the engine)")
    for r in rows:
        cells = [r.get(k, float("nan")) * (1000 if k == "status" else 1) for k in keys]
        print(f"{int(r['files']):8d}" + "".join(f"{c:14.2f}" for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,50000")
    ap.add_argument("--dir", default="/var/tmp/au-bench")
    ap.add_argument("--tree", default="",
                    help="a copy of this real tree (e.g. /usr) instead of generated ones")
    fs = ap.add_mutually_exclusive_group()
    fs.add_argument("--btrfs", action="store_true",
                    help="on a btrfs loop image, the volume a subvolume (root)")
    fs.add_argument("--xfs", action="store_true",
                    help="on an XFS loop image with reflinks (root)")
    fs.add_argument("--ext4", action="store_true",
                    help="on a fresh ext4 loop image (root): a plain filesystem that "
                         "earlier runs have not aged")
    ap.add_argument("--ram", action="store_true",
                    help="with --btrfs, --xfs or --ext4: the loop image in /dev/shm (no "
                         "disk: the CPU's work)")
    args = ap.parse_args()
    base = Path(args.dir) / "scale"
    rows = []
    fs_kind = next((k for k in ("btrfs", "xfs", "ext4") if getattr(args, k)), "")
    if args.ram and not fs_kind:
        ap.error("--ram needs --btrfs, --xfs or --ext4 (the loop image it puts in memory)")
    for n in (int(s) for s in args.sizes.split(",")) if not args.tree else (0,):
        print(f"measuring {args.tree or n} files"
              f"{f' on a {fs_kind} loop image' if fs_kind else ''}"
              f"{' in memory' if args.ram else ''}, load average {os.getloadavg()}",
              file=sys.stderr)
        rows.append(one_size(base, n, fs_kind, args.tree, args.ram))
        print(f"measured {rows[-1]['files']:.0f} files, load average {os.getloadavg()}",
              file=sys.stderr)
    report(rows)


if __name__ == "__main__":
    main()
