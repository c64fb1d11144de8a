"""Following a path for the operator without letting anyone else steer it.

The tool runs as root and follows paths that come from configuration files: the actions it
executes, the configuration files it reads, the files it backs up. A path is only as safe
as every folder on it: whoever can write a folder can replace what is below it (a file by
a symbolic link to ``/usr/bin/env``, a log by a link to ``/etc/shadow``). So a *trusted*
path is opened component by component from ``/``, each with ``O_NOFOLLOW``, and:

- every folder on it and the final object are owned by a trusted owner (root; the tool's
  own user too when it does not run as root);
- no folder is writable by others or by a group other than root's, except a sticky folder
  (``/tmp``), where others cannot replace what a trusted owner made;
- a symbolic link is followed only when it is itself owned by a trusted owner (it sits in a
  trusted folder, so nobody else can have put it there), and what it points to is checked
  in the same way; at most ``MAX_LINKS`` links.

Because nobody but a trusted owner can change any component, what was checked is what runs
or is read afterwards. ``open_trusted`` also returns the descriptor of the final object.

Below a folder the tool owns (a replica being backed up), ``open_beneath`` opens a relative
path without following any symbolic link at all: a link is never followed out of a volume.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from activeupgrade.errors import SecurityError

MAX_LINKS = 40
"""Symbolic links followed on one path before it is refused (as the kernel does)."""
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def trusted_owners() -> frozenset[int]:
    """Root, and the tool's own user when it does not run as root."""
    return frozenset({0, os.geteuid()})


@dataclass
class Trusted:
    """An opened trusted path: its descriptor (``O_PATH`` for a non-folder unless asked
    otherwise), the real path it was found at, and its status."""

    fd: int
    real: Path
    st: os.stat_result

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Trusted:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unsafe(path: str | Path, where: str, why: str, hint: str) -> SecurityError:
    subject = "it" if where == os.fspath(path) else where
    return SecurityError(f"{path}: refused: {subject} {why}", hint=hint,
                         details={"path": str(path), "component": where})


def _check(path: str | Path, where: str, st: os.stat_result, owners: frozenset[int]) -> None:
    if st.st_uid not in owners:
        raise _unsafe(path, where, f"is owned by uid {st.st_uid}, not root",
                      f"chown root: {where}   (after checking what it holds)")
    mode = st.st_mode
    if stat.S_ISLNK(mode) or (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
        # A link's own mode means nothing; in a sticky folder others may add entries,
        # not replace a trusted owner's.
        return
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and st.st_gid != 0):
        who = "others" if mode & stat.S_IWOTH else "its group"
        raise _unsafe(path, where, f"is writable by {who} (mode {stat.S_IMODE(mode):04o}); "
                      "whoever can write it could replace what the tool runs or reads",
                      f"chmod go-w {where}")


def open_trusted(path: str | Path, *, owners: frozenset[int] | None = None,
                 flags: int = os.O_PATH, check_final: bool = True) -> Trusted:
    """Open absolute ``path`` as a trusted path (see the module's docstring).

    ``flags`` are used for the final object when it is not a folder (``os.O_PATH`` by
    default; ``os.O_RDONLY`` to read it). A SecurityError says which component is unsafe;
    a missing component is FileNotFoundError, as from ``open``. Without ``check_final``
    the final object's owner and mode are left to the caller (folders and links on the way
    are still checked).
    """
    owners = owners if owners is not None else trusted_owners()
    text = os.fspath(path)
    if "\x00" in text:
        raise _unsafe(text, "the path", "holds a NUL character", "Give a real path.")
    if not text.startswith("/"):
        raise _unsafe(text, "the path", "is not absolute", "Give an absolute path.")
    stack = [os.open("/", _DIR)]
    real: list[str] = []
    try:
        top = os.fstat(stack[0])
        _check(text, "/", top, owners)
        pending = [p for p in text.split("/") if p not in ("", ".")]
        links = 0
        last = top
        while pending:
            name = pending.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    real.pop()
                continue
            here = "/" + "/".join([*real, name])
            st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise _unsafe(text, here, "is one link too many (a loop?)",
                                  "Give the path without symbolic links.")
                _check(text, here, st, owners)
                target = os.readlink(name, dir_fd=stack[-1])
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                if target.startswith("/"):
                    for fd in stack[1:]:
                        os.close(fd)
                    del stack[1:]
                    real.clear()
                continue
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _DIR, dir_fd=stack[-1])
            elif pending:
                raise _unsafe(text, here, "is not a folder", "Check the path.")
            else:
                extra = 0 if flags & os.O_PATH else os.O_NONBLOCK  # a FIFO never blocks
                fd = os.open(name, flags | extra | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=stack[-1])
            opened = os.fstat(fd)
            stack.append(fd)
            real.append(name)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise _unsafe(text, here, "changed while it was checked", "Try again.")
            if pending or check_final:
                _check(text, here, opened, owners)
            last = opened
        fd = stack.pop()
        return Trusted(fd, Path("/" + "/".join(real)), last)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _unsafe(text, "a component", "was replaced by a symbolic link",
                          "Try again; then find who changes the path.") from None
        raise
    finally:
        for fd in stack:
            os.close(fd)


def check_trusted(path: str | Path, *, owners: frozenset[int] | None = None) -> Trusted:
    """The real path and status of trusted ``path`` (nothing is kept open)."""
    found = open_trusted(path, owners=owners)
    found.close()
    return found


def open_beneath(dir_fd: int, rel: str | Path, flags: int = os.O_PATH) -> int:
    """Open ``rel`` below the folder ``dir_fd`` without following any symbolic link (a
    link anywhere on it, the last component included, is ``OSError(ELOOP)``) and never
    leaving the folder (``..`` is refused)."""
    parts = [p for p in os.fspath(rel).split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, "a path with .. leaves its folder", os.fspath(rel))
    fd = os.dup(dir_fd)
    try:
        for name in parts[:-1]:
            nxt = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if not parts:
            return os.dup(fd)
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
