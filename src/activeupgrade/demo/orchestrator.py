"""``au demo``: a full active upgrade of the bundled shop under live load, then an abort.

The run, in order (each step timed and shown as it happens):

1. build the shop's release packages and install release 1 into the demo tree;
2. write the demo configuration (a parent and a child), adopt the shop's system and data
   volumes, load the configuration, start the shop (its socket held by the tool);
3. start the load client (orders written and read back) for the whole run;
4. session 1: check → split → install release 2 inside the Upgrade Side with ``au exec``
   (Production still serves release 1) → merge (release 2 serves, every order is there) →
   commit → finish;
5. session 2: split → install release 3 → merge (release 3 serves) → abort from merge
   (release 2, the version before the session, serves again, every order intact) → finish;
6. stop the load, read every order back, collect the tool's switchover and resync figures;
7. unless ``--keep``: stop the shop and the daemon, release the volumes, remove the tree.

Nothing is simulated: a step that this build cannot do fails the demo and names what is
missing.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from activeupgrade import proc
from activeupgrade.demo import configs, packages
from activeupgrade.demo.driver import Au, missing_feature
from activeupgrade.demo.layout import DemoTree
from activeupgrade.demo.load import LoadClient, ShopClient, verify_orders
from activeupgrade.demo.report import Report
from activeupgrade.errors import AUError
from activeupgrade.instance import is_root

Say = Callable[[str], None]


def stderr_say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Demo:
    """One run of the demo."""

    def __init__(self, *, keep: bool = False, say: Say = stderr_say, progress: bool = True,
                 parent: Path | None = None, tree: DemoTree | None = None) -> None:
        self.keep = keep
        self.say = say
        self.tree = tree or DemoTree.create(parent)
        self.au = Au(self.tree, say, progress=progress)
        self.shop = ShopClient("127.0.0.1", self.tree.port)
        self.load = LoadClient("127.0.0.1", self.tree.port)
        self.report = Report(root=str(self.tree.root), au_home=str(self.tree.home),
                             port=self.tree.port)
        self.started = time.monotonic()
        self.adopted: list[Path] = []
        self.service_started = False
        self.packages: dict[str, Path] = {}
        self.installer = self.tree.packages / packages.INSTALLER.name
        self.side_mode = ""
        self.merged = False

    @classmethod
    def left_by_keep(cls, root: Path, say: Say = stderr_say) -> Demo:
        """The demo a ``--keep`` run left in ``root``, to clean it up."""
        root = root.resolve()
        probe = DemoTree(root, 0)
        if not (probe.home / "state.db").exists() or not (probe.configs / configs.PARENT).exists():
            raise AUError(f"{root} is not a demo tree left by `au demo --keep`",
                          hint="Give the folder printed as 'Demo tree:' by the kept run.")
        demo = cls(say=say, tree=probe)
        demo.adopted = [probe.software, probe.data]
        demo.service_started = True
        return demo

    # -- step bookkeeping ---------------------------------------------------------------

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        self.say(f"==> {name}")
        began = time.monotonic()
        record: dict[str, Any] = {"name": name}
        try:
            yield record
        finally:
            record["seconds"] = round(time.monotonic() - began, 3)
            self.report.steps.append(record)
            s = self.load.stats
            self.say(f"    {record['seconds']:.2f}s  (load: {s.sent} requests, {s.failed} "
                     f"failed, {len(self.load.orders)} orders)")

    def expect_version(self, label: str, version: str) -> None:
        served = self.shop.version()
        self.report.versions[label] = served
        if served != version:
            raise AUError(f"{label}: the shop serves {served}, expected {version}")

    def install_inside(self, release: packages.Release) -> None:
        """The operator's installer step, run inside the Upgrade Side.

        With namespaces the Upgrade Side sees its replica at the usual path. A directory
        Upgrade Side is a working directory (the command's current folder) holding a link
        named after each system volume: the installer is pointed there instead."""
        target = str(self.tree.software)
        if self.side_mode == "directory":
            target = self.tree.software.name
        self.au.run("exec", "--", sys.executable, str(self.installer),
                    str(self.packages[release.version]), target,
                    feature="installing the new release inside the Upgrade Side", echo=False)

    def read_side(self) -> None:
        """How the Upgrade Side was built (its ``side.up`` record in the activity log)."""
        ups = self.au.log(event="side.up")
        if not ups:
            raise missing_feature("no side.up entry in the activity log after split")
        details = dict(ups[-1].get("details") or {})
        self.side_mode = str(details.get("mode", ""))
        self.report.isolation = isolation_text(details)

    def live_release(self) -> str:
        data: dict[str, Any] = json.loads((self.tree.software / "release.json").read_text())
        return str(data["version"])

    # -- the run ------------------------------------------------------------------------

    def run(self) -> Report:
        self.say(f"Active Upgrade demo in {self.tree.root} (AU_HOME={self.tree.home}), "
                 f"shop on {self.tree.url}, running as "
                 f"{'root' if is_root() else 'an unprivileged user'}")
        try:
            self.prepare()
            self.load.start()
            self.session_commit()
            self.session_abort()
            self.load.phase = "after"
            time.sleep(0.3)
        except AUError as exc:
            self.report.problems.append(exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))
        except OSError as exc:
            self.report.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.finish_load()
            self.collect()
            if self.keep:
                self.report.kept = True
            else:
                self.clean_up()
            self.au.close()
        stats = self.load.stats
        if stats.failed:
            self.report.problems.append(f"{stats.failed} client requests failed")
        if self.report.orders.get("orders_lost"):
            self.report.problems.append(f"{self.report.orders['orders_lost']} orders lost")
        self.report.ok = not self.report.problems
        return self.report

    def prepare(self) -> None:
        with self.step("build release packages") as rec:
            for release in (packages.RELEASE_1, packages.RELEASE_2, packages.RELEASE_3):
                self.packages[release.version] = packages.build(release, self.tree.packages)
            packages.copy_installer(self.tree.packages)
            rec["note"] = ", ".join(p.name for p in self.packages.values())
        with self.step("install shop 1.0.0 (before the tool manages it)"):
            proc.run([sys.executable, self.installer, self.packages["1.0.0"],
                      self.tree.software])
        with self.step("write the demo configuration (parent + child)") as rec:
            parent = configs.write(self.tree, sys.executable,
                                   [self.packages["2.0.0"], self.packages["3.0.0"],
                                    self.installer])
            self.au.run("config", "validate", str(parent), feature="configuration files")
            rec["note"] = f"{configs.PARENT} includes {configs.CHILD}"
        with self.step("adopt the volumes"):
            self.au.run("volume", "adopt", str(self.tree.software), "--role", "system",
                        feature="managed volumes")
            self.adopted.append(self.tree.software)
            self.au.run("volume", "adopt", str(self.tree.data), "--role", "data",
                        feature="managed volumes")
            self.adopted.append(self.tree.data)
        with self.step("load the configuration"):
            self.au.run("config", "load", str(parent), feature="configuration files")
        with self.step("start the shop (socket held by the tool)"):
            self.au.run("service", "start", "shop", feature="supervised services")
            self.service_started = True
            self.expect_version("before the sessions", "1.0.0")

    def session_commit(self) -> None:
        with self.step("session 1: check") as rec:
            result = self.au.json("check", feature="readiness checks")
            checks = result.get("checks") or []
            self.report.checks = {
                "ready": bool(result.get("ready")),
                "passed": sum(1 for c in checks if c.get("ok")),
                "warnings": sum(1 for c in checks
                                if not c.get("ok") and c.get("severity") == "warning"),
                "errors": sum(1 for c in checks
                              if not c.get("ok") and c.get("severity") == "error"),
                "failed": [f"{c.get('id')}: {c.get('message')}" for c in checks
                           if not c.get("ok")],
            }
            rec["note"] = f"{len(checks)} checks, ready={result.get('ready')}"
            if not result.get("ready"):
                raise AUError("the readiness checks failed: "
                              + "; ".join(self.report.checks["failed"]))
        self.load.phase = "split"
        with self.step("session 1: split") as rec:
            self.au.action("split")
            self.read_side()
            rec["note"] = f"Upgrade Side: {self.side_mode}"
        with self.step("session 1: install 2.0.0 inside the Upgrade Side (au exec)") as rec:
            self.install_inside(packages.RELEASE_2)
            self.expect_version("during split (Production)", "1.0.0")
            live = self.live_release()
            rec["note"] = f"live path still holds {live}"
            if live != "1.0.0":
                raise AUError(f"the install inside the Upgrade Side changed the live path "
                              f"(it now holds {live})")
        self.load.phase = "merge"
        with self.step("session 1: merge"):
            self.au.action("merge")
            self.merged = True
            self.expect_version("after merge", "2.0.0")
        with self.step("session 1: verify every order so far") as rec:
            found = verify_orders(self.shop, list(self.load.orders))
            rec["note"] = f"{found['orders_verified']} of {found['orders_written']} present"
            if found["orders_lost"]:
                raise AUError(f"{found['orders_lost']} orders missing after merge")
        self.load.phase = "commit"
        with self.step("session 1: commit"):
            self.au.action("commit")
        with self.step("session 1: finish"):
            self.au.action("finish")
            self.expect_version("after commit and finish", "2.0.0")

    def session_abort(self) -> None:
        self.load.phase = "split-2"
        with self.step("session 2: split"):
            self.au.action("split")
        with self.step("session 2: install 3.0.0 inside the Upgrade Side (au exec)"):
            self.install_inside(packages.RELEASE_3)
            self.expect_version("session 2, during split", "2.0.0")
        self.load.phase = "merge-2"
        with self.step("session 2: merge"):
            self.au.action("merge")
            self.expect_version("session 2, after merge", "3.0.0")
        self.load.phase = "abort"
        with self.step("session 2: abort from merge"):
            self.au.action("abort")
            self.expect_version("after abort from merge", "2.0.0")
        with self.step("session 2: finish") as rec:
            self.au.action("finish")
            rec["note"] = f"live path holds {self.live_release()}"

    # -- results and clean-up -----------------------------------------------------------

    def finish_load(self) -> None:
        stats = self.load.stop()
        self.report.load = stats.summary()
        if not self.load.orders:
            return
        with self.step("verify every order written during the run") as rec:
            try:
                self.report.orders = verify_orders(self.shop, list(self.load.orders))
            except OSError as exc:
                self.report.problems.append(f"cannot read the orders back: {exc}")
                return
            o = self.report.orders
            rec["note"] = f"{o['orders_verified']} of {o['orders_written']} present"

    def collect(self) -> None:
        """The tool's own measurements, from its activity log."""
        if not self.tree.home.joinpath("api.sock").exists():
            return
        try:
            entries = self.au.log(limit=100000)
        except AUError as exc:
            self.report.problems.append(f"cannot read the activity log: {exc.message}")
            return
        sessions: list[str] = []
        for e in entries:
            if e.get("session") and e["session"] not in sessions:
                sessions.append(e["session"])
        for e in entries:
            d = dict(e.get("details") or {})
            n = sessions.index(e["session"]) + 1 if e.get("session") in sessions else 0
            if e.get("event") == "service.switchover":
                d["label"] = f"session {n} {d.get('phase', e.get('request', ''))}"
                self.report.switchovers.append(d)
            elif e.get("event") == "volume.resync.done":
                self.report.resyncs.append({
                    "label": f"session {n} {e.get('request', '')}" if n else "adoption",
                    "volume": d.get("volume", ""), "bytes": d.get("copied_bytes", 0),
                    "files": d.get("copied_files", 0), "seconds": d.get("seconds", 0.0),
                    "scanned": d.get("scanned", 0)})
            elif e.get("event") == "backup.saved" and d.get("folder"):
                self.report.backups.append(str(d["folder"]))
        if self.tree.hook_records.exists():
            for line in self.tree.hook_records.read_text().splitlines():
                rec = json.loads(line)
                env = rec.get("env") or {}
                self.report.actions.append(
                    f"{rec.get('kind', ''):<7} side {env.get('ACTIVE_UPGRADE_SIDE', '?'):<10} "
                    f"request {env.get('ACTIVE_UPGRADE_REQUEST', '?'):<14} "
                    f"state {env.get('ACTIVE_UPGRADE_STATE', '?')}")
        if self.tree.backups.is_dir():
            self.report.backups += sorted(str(p) for p in self.tree.backups.iterdir()
                                          if str(p) not in self.report.backups)
        if not self.report.switchovers and self.merged:
            self.report.problems.append(str(missing_feature(
                "no service.switchover measurement in the activity log")))

    def clean_up(self) -> None:
        """Stop what the demo started and remove its tree (never across a mount)."""
        self.say("==> clean up")
        self.back_to_idle()
        if self.service_started:
            # --release also ends the keeper (it holds the port across stops, by design):
            # the demo gives the port back when it is done.
            self._quietly("service", "stop", "shop", "--release")
        for path in reversed(self.adopted):
            self._quietly("volume", "release", str(path))
        self._quietly("daemon", "--stop")
        deadline = time.monotonic() + 10
        while self.tree.home.joinpath("api.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        mounted = mounts_under(self.tree.root)
        if mounted:
            self.report.problems.append(
                "left in place because still mounted: " + ", ".join(mounted))
            return
        failed: list[str] = []
        shutil.rmtree(self.tree.root,
                      onerror=lambda _f, path, exc: failed.append(f"{path}: {exc[1]}"))
        if self.tree.root.exists():
            self.report.problems.append(
                f"{self.tree.root} could not be removed completely: "
                + "; ".join(failed[:5]) + (f" (and {len(failed) - 5} more)"
                                           if len(failed) > 5 else ""))

    def back_to_idle(self) -> None:
        """After a failure, end the session (retry, abort, finish) so the volumes can be
        released; the failure itself is already in the report."""
        for _ in range(4):
            try:
                status = self.au.status()
            except AUError:
                return
            allowed = status.get("allowed_actions") or []
            state, op = status.get("upgrade_state"), status.get("operational_state")
            if state == "Idle" and op != "Broken":
                return
            action = next((a for a in ("retry", "abort", "finish") if a in allowed), None)
            if action is None:
                self.report.problems.append(
                    f"clean-up: the session is {state}/{op} and no action can end it")
                return
            self.say(f"    {action} (to end the session before releasing the volumes)")
            try:
                self.au.action(action)
            except AUError as exc:
                self.report.problems.append(f"clean-up: {action}: {exc.message}")

    def _quietly(self, *args: str) -> None:
        try:
            self.au.run(*args, feature="clean-up", timeout=120)
        except AUError as exc:
            self.report.problems.append(f"clean-up: {exc.message}")


def isolation_text(side: dict[str, Any]) -> str:
    """What the Upgrade Side's ``side.up`` record says about its isolation."""
    mode = str(side.get("mode", "unknown"))
    if mode == "directory":
        missing = "; ".join(str(m) for m in side.get("missing") or [])
        return f"directory (working directory, NOT isolated: {missing or 'no namespaces'})"
    return (f"{mode} (PID, mount, UTS, IPC, network and user namespaces; hostname "
            f"{side.get('hostname', '?')}, private link {side.get('host_address', '?')} <-> "
            f"{side.get('side_address', '?')})")


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (from /proc/self/mountinfo)."""
    found: list[str] = []
    prefix = str(root).rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == str(root) or point.startswith(prefix):
                    found.append(point)
    except OSError:
        pass
    return found


def kept_instructions(report: Report) -> str:
    home = report.au_home
    return (
        f"\nThe demo instance is still running (--keep):\n"
        f"  export AU_HOME={home}\n"
        f"  au status; au log; au service list; au volume list; au console\n"
        f"  curl http://127.0.0.1:{report.port}/version\n"
        f"When done: au demo --clean {report.root}\n"
        f"  (ends the session if one is open, stops the shop and its keeper, releases the "
        f"volumes, stops the daemon, removes the folder)\n"
    )


__all__ = ["Demo", "kept_instructions", "mounts_under"]
