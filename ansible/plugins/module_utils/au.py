# Copyright: Active Upgrade for Linux
# Apache License 2.0 (see LICENSE in the repository)
"""The ``au`` command as the modules of this collection speak it.

Every call goes through ``AnsibleModule.run_command`` with an argument list (never a
shell). Read commands are run with ``--json``; a command that fails prints
``au: error: MESSAGE`` and ``hint: HINT`` on stderr and exits with the code of its error
class (the exit-code table of the README); ``AuFailure`` carries the three. A request that
ends Broken leaves its error document (``error``, ``message``, ``hint``, ``exit_code``) in
``au status --json``.
"""

from __future__ import annotations

import json
import time

__metaclass__ = type

BUSY = "Busy"
BROKEN = "Broken"
READY = "Ready"

TARGETS = {
    "split": "Split",
    "merge": "Merge",
    "commit": "Commit",
    "abort": "Abort",
    "finish": "Idle",
}
"""The upgrade state (Ready) each operator action ends in."""

CONFIRMED = ("commit", "abort")
"""Actions that ask for confirmation on a terminal: given ``--yes`` here."""


class AuFailure(Exception):
    """``au`` refused or failed: its message, hint and exit code."""

    def __init__(self, message, hint="", exit_code=1, error="", stderr="", details=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
        self.error = error
        self.stderr = stderr
        self.details = dict(details or {})

    def result(self):
        """The keys a failed task reports (``msg`` is the tool's message)."""
        return {"msg": self.message, "hint": self.hint, "exit_code": self.exit_code,
                "rc": self.exit_code, "error": self.error, "stderr": self.stderr,
                "details": self.details}


def parse_error(stderr, exit_code):
    """The tool's message and hint from its stderr (progress lines may come first)."""
    message = ""
    hint = ""
    for line in stderr.splitlines():
        if line.startswith("au: error: "):
            message = line[len("au: error: "):].strip()
            hint = ""
        elif line.startswith("hint: ") and message:
            hint = line[len("hint: "):].strip()
    if not message:
        lines = [x for x in stderr.splitlines() if x.strip()]
        message = lines[-1] if lines else "au exited %d" % exit_code
    return AuFailure(message, hint=hint, exit_code=exit_code, stderr=stderr)


def broken_failure(status):
    """The failure that left the instance Broken, from its status document."""
    error = status.get("error") or {}
    return AuFailure(
        str(error.get("message") or status.get("reason") or "the request failed"),
        hint=str(error.get("hint") or "Fix the cause (au log), then retry or abort."),
        exit_code=int(error.get("exit_code") or 10),
        error=str(error.get("error") or ""),
        details={"upgrade_state": status.get("upgrade_state"),
                 "request": status.get("request"), "step": status.get("step"),
                 "reason": status.get("reason")})


COMMON_OPTIONS = {
    "au_home": {"type": "path", "default": ""},
    "executable": {"type": "str", "default": "au"},
}
"""The options every module takes (documented once, in doc_fragments/au.py)."""


class Au:
    """One host's ``au`` (instance ``au_home`` when given, else the default one)."""

    def __init__(self, module, executable="au", au_home=""):
        self.module = module
        self.binary = module.get_bin_path(executable, required=True)
        self.env = {"NO_COLOR": "1", "LANG": "C.UTF-8"}
        if au_home:
            self.env["AU_HOME"] = au_home

    def run(self, *args):
        """Run ``au ARGS``; its (stdout, stderr); ``AuFailure`` when it fails."""
        rc, out, err = self.module.run_command([self.binary] + list(args),
                                               environ_update=self.env)
        if rc != 0:
            raise parse_error(err, rc)
        return out, err

    def run_raw(self, *args):
        """Run ``au ARGS`` whatever it exits with: (rc, stdout, stderr)."""
        return self.module.run_command([self.binary] + list(args), environ_update=self.env)

    def json(self, *args):
        out, _err = self.run(*(list(args) + ["--json"]))
        try:
            return json.loads(out)
        except ValueError:
            raise AuFailure("au %s --json printed no JSON document" % " ".join(args),
                            hint="Check the installed au version (au --version).",
                            exit_code=1, stderr=out[-2000:])

    def status(self):
        return self.json("status")

    def log(self, *args):
        """Entries of ``au log --json ARGS`` (one JSON document: a list)."""
        return self.json("log", *args)

    def wait(self, target, timeout, poll=0.5, on_progress=None, stale=None):
        """Poll ``au status`` until the instance is Ready in ``target`` (the status), is
        Broken (``AuFailure`` of its error), or ``timeout`` seconds pass (``AuFailure``
        naming the step it was at). ``on_progress`` gets every status seen while Busy.
        ``stale``: the ``updated`` time of a Broken status from before the action was
        sent (an abort of a Broken request), which is not the action's outcome."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            state = status.get("operational_state")
            if state == BROKEN and stale is not None and status.get("updated") == stale:
                pass
            elif state == BROKEN:
                raise broken_failure(status)
            if state == READY and status.get("upgrade_state") == target:
                return status
            if state == BUSY and on_progress is not None:
                on_progress(status)
            if time.monotonic() > deadline:
                progress = status.get("progress") or {}
                raise AuFailure(
                    "timed out after %ds waiting for %s: the instance is %s / %s at step "
                    "%s (%.0f%%)" % (timeout, target, status.get("upgrade_state"), state,
                                     status.get("step") or "-",
                                     float(progress.get("overall") or 0.0) * 100),
                    hint="The work goes on in the daemon: follow it with `au status "
                         "--watch` or `au log -f`, or raise the task's timeout.",
                    exit_code=11, error="Timeout",
                    details={"upgrade_state": status.get("upgrade_state"),
                             "step": status.get("step")})
            time.sleep(poll)


def facts(status, volumes, services):
    """The ``active_upgrade`` facts of one host."""
    pending = (status.get("facts") or {}).get("pending_resync") or {}
    return {
        "upgrade_state": status.get("upgrade_state"),
        "operational_state": status.get("operational_state"),
        "partner_state": status.get("partner_state"),
        "request": status.get("request"),
        "step": status.get("step"),
        "session": status.get("session") or "",
        "duplex": bool(status.get("duplex")),
        "allowed_actions": list(status.get("allowed_actions") or []),
        "costs": dict(status.get("costs") or {}),
        "reason": status.get("reason") or "",
        "error": status.get("error"),
        "pending_resync": {"bytes": int(pending.get("bytes") or 0),
                           "files": int(pending.get("files") or 0),
                           "seconds_estimate": float(pending.get("seconds_estimate") or 0)},
        "volumes": [{"path": v.get("path"), "name": v.get("name"), "role": v.get("role"),
                     "live": v.get("live"), "duplex": v.get("duplex"),
                     "phase": v.get("phase")} for v in volumes],
        "services": [{"name": s.get("name"), "backend": s.get("backend"),
                      "running": bool(s.get("running")), "healthy": s.get("healthy"),
                      "pid": s.get("pid"), "unit": s.get("unit", ""),
                      "enabled": s.get("enabled", True)} for s in services],
    }
