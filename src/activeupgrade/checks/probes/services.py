"""Service checks: every service exists, runs and can be stopped.

Only what can be observed without touching the services: their files, systemd's view of
their units, and the supervisor's records.
"""

from __future__ import annotations

import os
import signal

from activeupgrade import proc
from activeupgrade.checks.probe import CheckEnv, Verdict
from activeupgrade.config.model import HealthKind, ServiceBackend, ServiceSpec
from activeupgrade.errors import AUError
from activeupgrade.platform.services import program
from activeupgrade.platform.services.backend import backend_kind, systemd_is_pid1
from activeupgrade.platform.services.backends import backend_for


def _none() -> Verdict:
    return Verdict(True, "no services configured")


def _systemctl_show(unit: str, prop: str) -> str:
    systemctl = proc.which("systemctl")
    if systemctl is None:
        return ""
    done = proc.run([systemctl, "show", "-p", prop, "--value", unit], timeout=30.0,
                    check=False)
    return done.stdout.strip()


def _problem(spec: ServiceSpec) -> str:
    if spec.health.kind is HealthKind.COMMAND:
        try:
            program.trusted(spec.health.argv, what=f"{spec.name}: health check",
                            env=proc.base_env())
        except AUError as exc:
            return exc.message
    if backend_kind(spec) is ServiceBackend.SYSTEMD:
        if not systemd_is_pid1():
            return f"{spec.name}: systemd is not running on this host"
        state = _systemctl_show(spec.unit, "LoadState")
        return "" if state == "loaded" else f"{spec.name}: unit {spec.unit} is {state or 'unknown'}"
    if not spec.command:
        return f"{spec.name}: no command to start it (and no systemd)"
    try:
        program.trusted(spec.command, what=spec.name, env=proc.base_env(dict(spec.env)),
                        workdir=spec.workdir)
    except AUError as exc:
        return exc.message
    if spec.workdir and not os.path.isdir(spec.workdir):
        return f"{spec.name}: working directory {spec.workdir} is missing"
    return ""


def exist(env: CheckEnv) -> Verdict:
    if not env.config.services:
        return _none()
    problems = [p for p in map(_problem, env.config.services) if p]
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"{len(env.config.services)} service(s) can be started")


def running(env: CheckEnv) -> Verdict:
    if not env.config.services:
        return _none()
    stopped, states = [], {}
    for spec in env.config.services:
        try:
            status = backend_for(spec, env.instance, env.store).status(spec)
        except AUError as exc:
            stopped.append(f"{spec.name} ({exc.message})")
            continue
        states[spec.name] = status.detail
        if spec.enabled and not status.running:
            stopped.append(f"{spec.name} ({status.detail})")
    if stopped:
        return Verdict(False, "not running: " + ", ".join(stopped), details={"states": states})
    return Verdict(True, "every enabled service is running", details={"states": states})


def stoppable(env: CheckEnv) -> Verdict:
    if not env.config.services:
        return _none()
    problems = []
    for spec in env.config.services:
        try:
            signal.Signals[spec.stop_signal]
        except KeyError:
            problems.append(f"{spec.name}: unknown stop signal {spec.stop_signal}")
        if backend_kind(spec) is ServiceBackend.SYSTEMD:
            # A unit systemd does not know cannot be stopped either: say so, never "ok".
            if not systemd_is_pid1():
                problems.append(f"{spec.name}: systemd is not running on this host")
                continue
            load = _systemctl_show(spec.unit, "LoadState")
            if load != "loaded":
                problems.append(f"{spec.name}: unit {spec.unit} is {load or 'unknown'} "
                                "(systemd cannot stop it)")
            elif _systemctl_show(spec.unit, "RefuseManualStop") == "yes":
                problems.append(f"{spec.name}: unit {spec.unit} refuses manual stop")
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"{len(env.config.services)} service(s) can be stopped")
