"""The fleet tests' Ansible runs share nothing with another run on the same machine.

Two fleet tests at once reach the same addresses (``root@10.248.1.2``, each in a network
namespace of its own). With Ansible's default folder of SSH connection masters
(``~/.ansible/cp``, named by address, port and user only) the second run's ``ssh``
joined the first run's master, and its commands ran on the other run's host. Here two
``Ansible`` runs of two work folders try the same address (nobody listens there: the
connection is refused at once) and the ``ssh`` command lines Ansible ran are read.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.fleet.playbook import CONTROL_DIR_MAX, Ansible
from tests.support import cannot_run, free_port

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
"""


def control_paths(ansible: Ansible, inventory: Path, playbook: Path) -> list[Path]:
    """The ``ControlPath`` of every ``ssh`` that ``ansible-playbook`` ran."""
    run = ansible.playbook(playbook, inventory, env={"ANSIBLE_VERBOSITY": "3"}, timeout=120)
    assert run.returncode == 4, run.output  # unreachable, as meant
    found = [Path(p) for p in re.findall(r"ControlPath=\"?([^\"' ]+)", run.output)]
    assert found, run.output
    return found


def test_two_runs_never_share_an_ssh_connection_master(tmp_path: Path) -> None:
    if shutil.which("ssh") is None:
        cannot_run("needs the ssh client (Debian package openssh-client)")
    port = free_port()
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"h1 ansible_host=127.0.0.1 ansible_port={port} ansible_user=root "
                         "ansible_ssh_common_args='-o ConnectTimeout=10'\n")
    playbook = tmp_path / "ping.yml"
    playbook.write_text(PLAYBOOK)
    runs = [Ansible(tmp_path / "none", tmp_path / name) for name in ("a", "b")]
    for ansible in runs:
        ansible.workdir.mkdir()
    paths = [control_paths(a, inventory, playbook) for a in runs]
    for ansible, used in zip(runs, paths, strict=True):
        assert {p.parent for p in used} == {ansible.control_dir()}, used
        assert not any(p.is_relative_to(Path.home() / ".ansible") for p in used), used
    assert not set(paths[0]) & set(paths[1])


def test_a_long_work_folder_gets_a_short_folder_of_its_own(tmp_path: Path) -> None:
    deep = [tmp_path / ("x" * 60) / name for name in ("a", "b")]
    folders = [Ansible(tmp_path / "none", d).control_dir() for d in deep]
    assert all(len(str(f)) <= CONTROL_DIR_MAX and f.is_dir() for f in folders), folders
    assert folders[0] != folders[1]
    short = Ansible(tmp_path / "none", tmp_path / "a").control_dir()
    assert short == tmp_path / "a" / "cp"
    for f in folders:
        f.rmdir()
