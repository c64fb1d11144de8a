# Copyright: Active Upgrade for Linux
# Apache License 2.0 (see LICENSE in the repository)
"""A per-host table at the end of a rolling active upgrade."""

from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
---
name: rollout_summary
type: aggregate
short_description: A per-host summary of a rolling active upgrade
description:
  - At the end of the playbook (also when the rollout was stopped) prints one row per
    host that the playbook read or upgraded. Outcome (committed, aborted, failed,
    untouched), upgrade state, the seconds of split, install, merge, health gate,
    commit or abort, the merge disruption (the longest time no instance of a service was
    serving, measured by the tool) and the failure.
  - The steps are the tasks of the C(activeupgrade.fleet.active_upgrade) module (by
    action) and the task named C(Health gate); the outcome is the C(au_outcome) fact that
    the C(rolling_upgrade) role sets.
version_added: "0.1.0"
author:
  - Active Upgrade for Linux (@activeupgrade)
options:
  summary_file:
    description: Also write the rows as a JSON document to this file.
    type: path
    default: ""
    env:
      - name: AU_ROLLOUT_SUMMARY
    ini:
      - section: activeupgrade_rollout
        key: summary_file
"""

import json
import re
import time

from ansible import context
from ansible.plugins.callback import CallbackBase

MODULES = ("activeupgrade.fleet.active_upgrade", "active_upgrade")
STATUS_MODULES = ("activeupgrade.fleet.active_upgrade_status", "active_upgrade_status")
COLUMNS = (("host", "HOST"), ("outcome", "OUTCOME"), ("state", "STATE"),
           ("split", "SPLIT s"), ("install", "INSTALL s"), ("merge", "MERGE s"),
           ("disruption", "DISRUPTION s"), ("gate", "GATE s"), ("end", "COMMIT/ABORT s"),
           ("total", "TOTAL s"), ("reason", "REASON"))


def natural(name):
    """``h2`` before ``h10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "activeupgrade.fleet.rollout_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts = {}
        self.order = []
        self.started = {}

    def row(self, host):
        if host not in self.hosts:
            self.order.append(host)
            self.hosts[host] = {"host": host, "outcome": "untouched", "state": "",
                                "steps": {}, "disruption": None, "reason": "",
                                "first": None, "last": None}
        return self.hosts[host]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = time.monotonic()

    def v2_runner_on_start(self, host, task):
        self.started[(task._uuid, host.get_name())] = time.monotonic()

    def _seconds(self, result):
        task = result._task
        began = self.started.get((task._uuid, result._host.get_name()),
                                 self.started.get(task._uuid, time.monotonic()))
        return time.monotonic() - began, began

    def _record(self, result, failed):
        task = result._task
        host = result._host.get_name()
        res = result._result
        row = self.row(host)
        seconds, began = self._seconds(result)
        facts = res.get("ansible_facts") or {}
        if task.action in STATUS_MODULES and "active_upgrade" in facts:
            row["state"] = facts["active_upgrade"].get("upgrade_state") or row["state"]
            return
        if "au_outcome" in facts:
            row["outcome"] = facts["au_outcome"]
            if facts.get("au_failure"):
                row["reason"] = " ".join(str(facts["au_failure"]).split())
            return
        step = None
        if task.action in MODULES:
            action = task.args.get("action", "")
            step = {"exec": "install", "commit": "end", "abort": "end"}.get(action, action)
            if res.get("upgrade_state"):
                row["state"] = res["upgrade_state"]
            if action == "merge" and "disruption_seconds" in res:
                row["disruption"] = res["disruption_seconds"]
            if action == "abort" and res.get("changed"):
                row["state"] = "Abort"
        elif (task.name or "").startswith("Health gate"):
            step = "gate"
        if step is None:
            return
        if res.get("changed") or failed or step == "gate":
            row["steps"][step] = row["steps"].get(step, 0.0) + seconds
            row["first"] = began if row["first"] is None else min(row["first"], began)
            row["last"] = time.monotonic()
        if failed:
            row["outcome"] = "failed"
            row["reason"] = " ".join(str(res.get("msg", "")).split())

    def v2_runner_on_ok(self, result):
        self._record(result, failed=False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=not ignore_errors)

    def rows(self):
        out = []
        for host in sorted(self.order, key=natural):
            row = self.hosts[host]
            steps = row["steps"]
            total = (row["last"] - row["first"]) if row["first"] is not None else None
            out.append({
                "host": host, "outcome": row["outcome"], "state": row["state"],
                "split": steps.get("split"), "install": steps.get("install"),
                "merge": steps.get("merge"), "disruption": row["disruption"],
                "gate": steps.get("gate"), "end": steps.get("end"),
                "finish": steps.get("finish"), "total": total, "reason": row["reason"]})
        return out

    def v2_playbook_on_stats(self, stats):
        rows = self.rows()
        if not rows:
            return
        cells = [[self._cell(r[key]) for key, _title in COLUMNS] for r in rows]
        titles = [title for _key, title in COLUMNS]
        widths = [max([len(t)] + [len(c[i]) for c in cells]) for i, t in enumerate(titles)]
        title = "ACTIVE UPGRADE ROLLOUT"
        if context.CLIARGS.get("check"):
            title += " (check mode: nothing was changed)"
        lines = ["", title + " " + "*" * 40,
                 "  ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip()
                  for cell in cells]
        self._display.display("\n".join(lines))
        path = self.get_option("summary_file")
        if path:
            with open(path, "w") as fh:
                json.dump(rows, fh, indent=1)
                fh.write("\n")

    @staticmethod
    def _cell(value):
        if value is None or value == "":
            return "-"
        if isinstance(value, float):
            return "%.2f" % value
        return str(value)
