"""No module-level mutable state in ``platform/``: state that lives longer than a call is
an object someone owns and passes (the volumes' ``state.SyncState``, owned by the daemon).

Every module of the package is imported and its globals are listed. A global fails when
it holds something that changes as the program runs: a lock, a counter, an instance of a
class of the project, or a mutable container (dict, list, set, deque, …) under a name that
is not an UPPER_CASE constant. UPPER_CASE containers are read-only tables by the house's
convention (a test of their own checks nothing writes them: see below).
"""

from __future__ import annotations

import ast
import collections
import importlib
import itertools
import pkgutil
import threading
import types
from pathlib import Path

import pytest

import activeupgrade.platform as platform_pkg

PLATFORM = Path(platform_pkg.__file__).parent
CONTAINERS = (dict, list, set, bytearray, collections.deque, collections.OrderedDict,
              collections.defaultdict, collections.Counter)
STATEFUL = (type(threading.Lock()), type(threading.RLock()), threading.Event,
            threading.Condition, threading.Semaphore, threading.local, itertools.count)

PENDING: dict[str, str] = {}
"""Known offences not removed yet, each with why. Listed, never silently allowed: an entry
whose offence is gone fails too, so the list only shrinks."""


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PLATFORM)],
                                                        "activeupgrade.platform."))


def _offences(module: types.ModuleType) -> list[str]:
    out = []
    for name, value in vars(module).items():
        if name.startswith("__") or isinstance(value, types.ModuleType | type):
            continue
        if callable(value) and not isinstance(value, STATEFUL):
            continue  # functions, and callables such as CDLL handles or partials
        where = f"{module.__name__}.{name}"
        if isinstance(value, STATEFUL):
            out.append(f"{where}: a {type(value).__name__}")
        elif isinstance(value, CONTAINERS) and not name.lstrip("_").isupper():
            out.append(f"{where}: a {type(value).__name__} under a lower-case name")
        elif (type(value).__module__.startswith("activeupgrade")
              and not isinstance(value, str | int | float | tuple | frozenset)
              and not _frozen(value)):
            out.append(f"{where}: a {type(value).__name__} instance")
    return out


def _frozen(value: object) -> bool:
    params = getattr(type(value), "__dataclass_params__", None)
    return bool(params is not None and params.frozen)


def _written_constants(path: Path) -> list[str]:
    """UPPER_CASE module constants that a function of the same module writes to
    (``NAME[k] = v``, ``NAME.append(…)``, ``global NAME``…)."""
    tree = ast.parse(path.read_text())
    constants = {t.id for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
                 for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                 if isinstance(t, ast.Name) and t.id.lstrip("_").isupper()}
    found = []
    mutators = {"append", "extend", "insert", "pop", "popitem", "clear", "update",
                "setdefault", "add", "discard", "remove", "appendleft"}
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                found += [f"{path.name}:{node.lineno}: global {n}" for n in node.names]
            elif (isinstance(node, ast.Assign | ast.AugAssign | ast.Delete)
                  and any(isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)
                          and t.value.id in constants
                          for t in (node.targets if isinstance(node, ast.Assign | ast.Delete)
                                    else [node.target]))):
                found.append(f"{path.name}:{node.lineno}: writes a constant")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and isinstance(node.func.value, ast.Name)
                  and node.func.value.id in constants and node.func.attr in mutators):
                found.append(f"{path.name}:{node.lineno}: {node.func.value.id}."
                             f"{node.func.attr}()")
    return found


@pytest.mark.parametrize("name", _modules())
def test_platform_module_holds_no_mutable_state(name: str) -> None:
    module = importlib.import_module(name)
    found = _offences(module)
    pending = sorted(k for k in PENDING if k.rpartition(".")[0] == name)
    assert sorted(f.partition(":")[0] for f in found) == pending, found
    assert module.__file__ is not None
    assert _written_constants(Path(module.__file__)) == []


def test_the_check_finds_module_state() -> None:
    """The listing catches what it is meant to (a test that cannot fail is a defect)."""
    fake = types.ModuleType("activeupgrade.platform.fake")
    fake._cache = {}  # type: ignore[attr-defined]
    fake._lock = threading.Lock()  # type: ignore[attr-defined]
    fake._serial = itertools.count(1)  # type: ignore[attr-defined]
    fake.TABLE = {"a": 1}  # type: ignore[attr-defined]
    found = _offences(fake)
    assert len(found) == 3 and not any("TABLE" in f for f in found), found
    src = ("TABLE = {}\n_LIST = []\ndef f():\n    TABLE['x'] = 1\n    _LIST.append(2)\n"
           "def g():\n    global _n\n")
    probe = Path(__file__).parent / "golden" / "__module_state_probe.py"
    try:
        probe.write_text(src)
        assert len(_written_constants(probe)) == 3
    finally:
        probe.unlink(missing_ok=True)
