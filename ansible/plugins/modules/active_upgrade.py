#!/usr/bin/python
# Copyright: Active Upgrade for Linux
# Apache License 2.0 (see LICENSE in the repository)
"""Drive a host's Active Upgrade instance: split, exec inside the Upgrade Side, merge,
commit, abort, finish."""

from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
---
module: active_upgrade
short_description: Drive a host through an active upgrade with Active Upgrade for Linux
description:
  - Runs one operator action of the C(au) command on the host and waits until the
    instance is Ready in the state the action leads to (C(split) to Split, C(merge) to
    Merge, C(commit) to Commit, C(abort) to Abort, C(finish) to Idle), or runs a command
    inside the Upgrade Side (C(exec)).
  - Idempotent. Asking for the state the host is in already (Ready) changes nothing; an
    action that is running already (after a timed-out task) is waited for, not sent again;
    C(exec) with O(unless) runs only when that command fails inside the Upgrade Side.
  - In check mode it runs C(au plan --json) (a dry run of the whole session) and says
    whether the action would change anything; nothing is sent to the instance. An action
    that comes later in the session than the host's state (C(merge) of a host still Idle)
    counts as possible, so that a whole play can run in check mode.
  - Fails with the tool's message, hint and exit code (the exit-code table of C(au)),
    also when a request ends Broken (its error from C(au status --json)) or the wait
    times out.
version_added: "0.1.0"
extends_documentation_fragment:
  - activeupgrade.fleet.au
author:
  - Active Upgrade for Linux (@activeupgrade)
options:
  action:
    description:
      - The operator action, or C(exec) of O(argv) inside the Upgrade Side (in Split).
    type: str
    required: true
    choices: [split, exec, merge, commit, abort, finish]
  argv:
    description:
      - The command run by C(exec) (no shell), e.g. C([apt-get, install, -y, nginx]).
    type: list
    elements: str
    default: []
  unless:
    description:
      - For C(exec), a command run inside the Upgrade Side first; when it exits 0 the
        install is there already and O(argv) is not run.
    type: list
    elements: str
    default: []
  env:
    description:
      - Environment variables given to O(argv) and O(unless) inside the Upgrade Side.
    type: dict
    default: {}
  config:
    description:
      - For C(split), the configuration file of this session (C(au split --config)).
    type: path
    default: ""
  timeout:
    description:
      - Seconds to wait for the action (or the command of C(exec)) to end.
    type: int
    default: 1800
notes:
  - C(commit) is the point of no return and C(abort) from Merge restarts the
    applications; the module confirms both (C(--yes)), as the playbook asked for them.
"""

EXAMPLES = r"""
- name: Split the host
  activeupgrade.fleet.active_upgrade:
    action: split

- name: Install the staged update inside the Upgrade Side (offline)
  activeupgrade.fleet.active_upgrade:
    action: exec
    argv: [apt-get, install, -y, nginx]
    env:
      DEBIAN_FRONTEND: noninteractive

- name: Move the applications onto the upgraded software
  activeupgrade.fleet.active_upgrade:
    action: merge
    timeout: 600
  register: merged

- name: Make it permanent
  activeupgrade.fleet.active_upgrade:
    action: commit
"""

RETURN = r"""
upgrade_state:
  description: The upgrade state after the task.
  returned: always
  type: str
  sample: Merge
status:
  description: The status document (C(au status --json)) after the task.
  returned: success
  type: dict
seconds:
  description: How long the action (or the command) took, in seconds.
  returned: changed
  type: float
progress:
  description: The steps seen while the instance was Busy (request, step, percent).
  returned: changed
  type: list
  elements: dict
disruption:
  description:
    - For C(merge) and C(abort), the measured switchover of each service (service,
      phase, stop_seconds, switch_seconds, start_seconds, gap_seconds).
  returned: changed
  type: list
  elements: dict
disruption_seconds:
  description: The longest time no instance of a service was serving.
  returned: changed
  type: float
plan:
  description: The dry run of the session (C(au plan --json)), in check mode.
  returned: check mode
  type: dict
rc:
  description: The exit code of the command of C(exec), or of C(au) when it failed.
  returned: exec, failure
  type: int
stdout:
  description: The output of the command of C(exec).
  returned: exec
  type: str
stderr:
  description: The error output of the command of C(exec), or of C(au) when it failed.
  returned: exec, failure
  type: str
hint:
  description: What the tool says to do about a failure.
  returned: failure
  type: str
exit_code:
  description: The tool's exit code of a failure (its error class).
  returned: failure
  type: int
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.activeupgrade.fleet.plugins.module_utils.au import (
    BROKEN,
    BUSY,
    COMMON_OPTIONS,
    CONFIRMED,
    READY,
    TARGETS,
    Au,
    AuFailure,
    broken_failure,
    parse_error,
)

SWITCHOVER = "service.switchover"


class Trail:
    """The distinct steps seen while waiting (the task's progress report)."""

    def __init__(self, module):
        self.module = module
        self.seen = []

    def __call__(self, status):
        progress = status.get("progress") or {}
        row = {"request": status.get("request"), "step": status.get("step") or "",
               "percent": round(float(progress.get("overall") or 0.0) * 100, 1)}
        if not self.seen or (self.seen[-1]["request"], self.seen[-1]["step"]) != (
                row["request"], row["step"]):
            self.seen.append(row)
            self.module.log("active_upgrade: %(request)s %(step)s %(percent)s%%" % row)


def disruption(au, session, since):
    """The switchovers measured in ``session`` from ``since`` on (epoch seconds)."""
    if not session:
        return []
    rows = []
    for entry in au.log("--session", session, "--event", SWITCHOVER):
        details = entry.get("details") or {}
        if float(entry.get("at") or 0) + 1 < since:
            continue
        rows.append({k: details.get(k) for k in (
            "service", "phase", "stop_seconds", "switch_seconds", "start_seconds",
            "gap_seconds")})
    return rows


SESSION = ("split", "exec", "merge", "commit", "finish")
"""A committed session's actions in order (``exec`` inside the Upgrade Side, in Split)."""
NEXT = {"Idle": "split", "Split": "exec", "Merge": "commit", "Commit": "finish"}
"""The first action of ``SESSION`` still ahead of a Ready instance in each state."""


def ahead(status, action):
    """In check mode, a later action of the session counts as possible when the ones
    before it would lead there (a dry run of a whole play: split, exec, merge, ...)."""
    if status.get("operational_state") != READY:
        return False
    first = NEXT.get(status.get("upgrade_state"))
    return (first is not None and action in SESSION
            and SESSION.index(action) >= SESSION.index(first))


def not_allowed(status, action):
    allowed = ", ".join(status.get("allowed_actions") or []) or "none while Busy"
    return AuFailure("`%s` is not allowed in %s / %s" % (
        action, status.get("upgrade_state"), status.get("operational_state")),
        hint="Allowed now: %s." % allowed, exit_code=4, error="StateError")


def run_exec(module, au, status):
    p = module.params
    env_args = ["%s=%s" % kv for kv in sorted(p["env"].items())]
    prefix = ["exec", "--timeout", str(p["timeout"]), "--"] + (
        ["env"] + env_args if env_args else [])
    if not p["argv"]:
        raise AuFailure("exec needs argv: the command to run inside the Upgrade Side",
                        hint="Give argv, e.g. [apt-get, install, -y, nginx].", exit_code=2,
                        error="UsageError")
    if module.check_mode and ahead(status, "exec"):
        return {"changed": True, "upgrade_state": status.get("upgrade_state"),
                "plan": au.json("plan")}
    if status.get("upgrade_state") != "Split" or status.get("operational_state") != READY:
        raise AuFailure("exec runs inside the Upgrade Side, which exists in Split / Ready "
                        "only; the instance is %s / %s" % (status.get("upgrade_state"),
                                                           status.get("operational_state")),
                        hint="Split the host first (action: split).", exit_code=4,
                        error="StateError")
    if p["unless"]:
        rc, _out, err = au.run_raw(*(prefix + p["unless"]))
        if "au: error: " in err:
            raise parse_error(err, rc)
        if rc == 0:
            return {"changed": False, "rc": 0, "stdout": "", "stderr": "",
                    "upgrade_state": "Split", "skipped_because": "unless exited 0"}
    if module.check_mode:
        return {"changed": True, "upgrade_state": "Split", "plan": au.json("plan")}
    began = time.monotonic()
    rc, out, err = au.run_raw(*(prefix + p["argv"]))
    seconds = round(time.monotonic() - began, 3)
    if "au: error: " in err:
        raise parse_error(err, rc)
    if rc != 0:
        raise AuFailure("%s exited %d inside the Upgrade Side" % (p["argv"][0], rc),
                        hint="Its output is in stdout and stderr; fix it with another exec "
                             "or abort the session.", exit_code=rc, error="CommandFailed",
                        stderr=err[-4000:], details={"stdout": out[-4000:]})
    return {"changed": True, "rc": rc, "stdout": out, "stderr": err, "seconds": seconds,
            "upgrade_state": "Split"}


def run_action(module, au, status):
    p = module.params
    action = p["action"]
    target = TARGETS[action]
    state = status.get("operational_state")
    if state == READY and status.get("upgrade_state") == target:
        return {"changed": False, "upgrade_state": target, "status": status}
    running = state == BUSY and status.get("action") == action
    if not running:
        if state == BROKEN and action != "abort":
            raise broken_failure(status)
        allowed = action in (status.get("allowed_actions") or [])
        if not allowed and not (module.check_mode and ahead(status, action)):
            raise not_allowed(status, action)
    if module.check_mode:
        return {"changed": True, "upgrade_state": status.get("upgrade_state"),
                "plan": au.json("plan"), "status": status}
    began_wall = time.time()
    began = time.monotonic()
    if not running:
        args = [action, "--no-wait"]
        if action in CONFIRMED:
            args.append("--yes")
        if action == "split" and p["config"]:
            args += ["--config", p["config"]]
        au.run(*args)
    trail = Trail(module)
    final = au.wait(target, p["timeout"], on_progress=trail,
                    stale=status.get("updated") if state == BROKEN else None)
    result = {"changed": True, "upgrade_state": target, "status": final,
              "seconds": round(time.monotonic() - began, 3), "progress": trail.seen}
    if action in ("merge", "abort"):
        rows = disruption(au, final.get("session") or status.get("session"), began_wall)
        result["disruption"] = rows
        result["disruption_seconds"] = max([float(r.get("gap_seconds") or 0) for r in rows]
                                           or [0.0])
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            **COMMON_OPTIONS,
            "action": {"type": "str", "required": True,
                       "choices": ["split", "exec", "merge", "commit", "abort", "finish"]},
            "argv": {"type": "list", "elements": "str", "default": []},
            "unless": {"type": "list", "elements": "str", "default": []},
            "env": {"type": "dict", "default": {}},
            "config": {"type": "path", "default": ""},
            "timeout": {"type": "int", "default": 1800},
        },
        supports_check_mode=True,
    )
    au = Au(module, module.params["executable"], module.params["au_home"])
    try:
        status = au.status()
        if module.params["action"] == "exec":
            result = run_exec(module, au, status)
        else:
            result = run_action(module, au, status)
    except AuFailure as failure:
        module.fail_json(**failure.result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
