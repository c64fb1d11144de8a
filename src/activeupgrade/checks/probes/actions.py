"""Custom action checks (files, place, permissions, readiness actions) and local files the
upgrade needs (packages, backup paths)."""

from __future__ import annotations

import glob
import os
import stat

from activeupgrade.checks.probe import CheckEnv, Verdict
from activeupgrade.config.model import ControlType
from activeupgrade.errors import AUError
from activeupgrade.instance import is_root
from activeupgrade.platform.actions import security
from activeupgrade.platform.actions.steps import run_readiness_actions


def _none() -> Verdict:
    return Verdict(True, "no custom actions configured")


def files(env: CheckEnv) -> Verdict:
    if not env.config.actions:
        return _none()
    problems: list[str] = []
    for action in env.config.actions:
        try:
            st = os.stat(action.file)
        except OSError as exc:
            problems.append(f"{action.name}: {action.file} {exc.strerror.lower()}"
                            if exc.strerror else f"{action.name}: {action.file} unreadable")
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{action.name}: {action.file} is not a regular file")
        elif not st.st_mode & 0o111:
            problems.append(f"{action.name}: {action.file} is not executable")
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"{len(env.config.actions)} action file(s) are executable")


def on_system_volume(env: CheckEnv) -> Verdict:
    if not env.config.actions:
        return _none()
    outside = [f"{a.name} ({a.file})" for a in env.config.actions
               if not security.on_system_volume(a.file, env.config)]
    if outside:
        return Verdict(False, "not on a system volume: " + ", ".join(outside))
    return Verdict(True, "every action file lies on a system volume")


def permissions(env: CheckEnv) -> Verdict:
    if not env.config.actions:
        return _none()
    allowed = {0} if is_root() else {0, os.geteuid()}
    problems: list[str] = []
    for action in env.config.actions:
        try:
            st = os.stat(action.file)
        except OSError:
            continue  # AU-C013 reports it
        before = len(problems)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append(f"{action.name}: {action.file} is writable by group or others "
                            f"(mode {stat.S_IMODE(st.st_mode):04o})")
        if st.st_uid not in allowed:
            problems.append(f"{action.name}: {action.file} is owned by uid {st.st_uid}")
        if len(problems) == before:
            try:  # the folders on its path and any link on it, too
                security.vet_path(action, env.config)
            except AUError as exc:
                problems.append(exc.message)
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, "only root can change the action files and the folders above them")


def readiness_actions(env: CheckEnv) -> Verdict:
    wanted = env.config.actions_of(ControlType.READINESS_CHECK)
    if not wanted:
        return Verdict(True, "no readiness-check actions configured")
    names = ", ".join(a.name for a in wanted)
    if not env.run_actions or env.step is None:
        return Verdict(True, f"not run (read-only): would run {names} on the {env.side} Side",
                       details={"skipped": True, "actions": [a.name for a in wanted]})

    results = run_readiness_actions(env.config, env.side, env.step, env.dry_run)
    failed = [f"{r.name}: {r.reason}" for r in results if not r.ok]
    details = {"results": [r.to_dict() for r in results]}
    if failed:
        return Verdict(False, "; ".join(failed), details=details)
    return Verdict(True, f"{len(results)} readiness-check action(s) passed on the {env.side} "
                   "Side" + (" (dry run)" if env.dry_run else ""), details=details)


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def packages(env: CheckEnv) -> Verdict:
    wanted = env.config.upgrade_side.packages
    if not wanted:
        return Verdict(True, "no local packages required")
    missing = []
    for path in wanted:
        found = glob.glob(path) if _has_glob(path) else [path]
        if not found or not all(os.access(p, os.R_OK) and os.path.exists(p) for p in found):
            missing.append(path)
    if missing:
        return Verdict(False, "missing locally: " + ", ".join(missing),
                       details={"missing": missing})
    return Verdict(True, f"{len(wanted)} package(s) present locally")


def backup_paths(env: CheckEnv) -> Verdict:
    paths = env.config.backup.paths
    if not paths:
        return Verdict(True, "no backup paths selected")
    outside = [p for p in paths if not security.on_system_volume(p, env.config)]
    if outside:
        return Verdict(False, "not on a system volume (nothing saved): " + ", ".join(outside))
    return Verdict(True, f"{len(paths)} backup path(s) lie on system volumes")
