"""Ansible for the fleet tests: the collection built and installed, playbooks run.

``installed_collection(workdir)`` builds ``ansible/`` with ``ansible-galaxy collection
build`` and installs the tarball into ``workdir/collections`` (as an operator installs it).
``Ansible(collections, workdir).playbook(...)`` runs ``ansible-playbook`` with a clean
Ansible home, temp folders and SSH connection masters under ``workdir``, the project's
``au`` first on PATH, and a test callback (``callback_plugins/record_results.py``) that
writes every task's result as a JSON line; ``results`` reads one host's results of a run,
in order.

Nothing of a run is shared with another run on the same machine. The SSH connection
masters need saying: Ansible keeps them in ``~/.ansible/cp`` whatever ``ANSIBLE_HOME``
says (``ANSIBLE_SSH_CONTROL_PATH_DIR``), each named by a hash of the host's address, port
and user only. Two fleet tests at once reach ``root@10.248.1.2`` each in a network
namespace of its own, so with that default the second run's ``ssh`` joined the first
run's master and its commands ran on the *other* run's host (apt locks taken, a split
refused as already under way, the host shut down under it when the other run ended).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activeupgrade import proc

COLLECTION = Path(__file__).resolve().parents[2] / "ansible"
"""The collection's source (``galaxy.yml`` at its top)."""
BIN = Path(sys.executable).parent
"""The test environment's programs: ansible-*, au."""
CONTROL_DIR_MAX = 107 - len("/0123456789") - len(".0123456789abcdef")
"""The longest folder of SSH connection masters: a Unix socket path has 107 bytes; Ansible
adds ``/`` and a 10-character hash, ``ssh`` a 17-character suffix while it creates one."""


def tool(name: str) -> str:
    return str(BIN / name)


def installed_collection(workdir: Path) -> Path:
    """Build the collection and install it; the folder for ``ANSIBLE_COLLECTIONS_PATH``."""
    dist = workdir / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    env = proc.base_env({"ANSIBLE_HOME": str(workdir / "ansible-home")})
    proc.run([tool("ansible-galaxy"), "collection", "build", "--force", "--output-path",
              str(dist), str(COLLECTION)], env=env, timeout=120)
    tarballs = sorted(dist.glob("activeupgrade-fleet-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    target = workdir / "collections"
    proc.run([tool("ansible-galaxy"), "collection", "install", "--force", "-p", str(target),
              str(tarballs[0])], env=env, timeout=120)
    assert (target / "ansible_collections/activeupgrade/fleet/MANIFEST.json").exists()
    return target


@dataclass
class Ansible:
    """``ansible-playbook`` with the installed collection."""

    collections: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    launcher: tuple[str, ...] = ()
    """Put before ``ansible-playbook`` (e.g. ``ip netns exec NAME``)."""
    runs: int = 0

    def control_dir(self) -> Path:
        """This run's folder of SSH connection masters (``ControlPath``): ``WORKDIR/cp``,
        or, when that path is too long for a Unix socket, a short folder in the temp
        directory named by a hash of ``WORKDIR`` (as unique as the work folder)."""
        folder = self.workdir / "cp"
        if len(os.fsencode(folder)) > CONTROL_DIR_MAX:
            tag = hashlib.sha256(os.fsencode(self.workdir.resolve())).hexdigest()[:16]
            folder = Path(tempfile.gettempdir()) / f"au-ansible-cp-{tag}"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        home = self.workdir / "ansible-home"
        return proc.base_env({
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            # Not under ANSIBLE_HOME by default (see the module docstring).
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir()),
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent / "callback_plugins"),
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            **self.env, **(extra or {})})

    def playbook(self, playbook: Path, inventory: str | Path, *, check: bool = False,
                 extra_vars: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 forks: int = 5, timeout: float = 900) -> Run:
        argv = [*self.launcher, tool("ansible-playbook"), "-i", str(inventory), "--forks",
                str(forks), str(playbook)]
        if check:
            argv.append("--check")
        if extra_vars:
            argv += ["--extra-vars", json.dumps(extra_vars)]
        self.runs += 1
        record = self.workdir / f"results-{self.runs}.jsonl"
        done = proc.run(argv, env=self.environment({**(env or {}),
                                                    "AU_TEST_RECORD": str(record)}),
                        timeout=timeout, check=False, cwd=self.workdir)
        return Run(done, record)


@dataclass
class Run:
    """One ``ansible-playbook`` run: its output, and where its results were recorded."""

    done: proc.Completed
    record: Path

    @property
    def returncode(self) -> int:
        return self.done.returncode

    @property
    def output(self) -> str:
        return self.done.stdout + self.done.stderr

    def results(self, host: str) -> list[dict[str, Any]]:
        """``host``'s result of every task run, in order (``task``: its name; ``run_status``:
        ok, failed, skipped or unreachable)."""
        if not self.record.exists():
            return []
        rows = [json.loads(line) for line in self.record.read_text().splitlines()]
        return [r for r in rows if r["host"] == host]
