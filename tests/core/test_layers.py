"""The house is layered: every import points down (or stays inside its own layer), and no
module takes part in an import cycle, lazy imports and type-checking imports included.

The layers, bottom first, as data (a module belongs to the first layer that names it or a
package above it):
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "activeupgrade"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("activeupgrade", "errors", "units", "durable", "proc", "instance", "bus", "systemd",
     "safepath", "safecopy", "libc"),
    ("model",),
    ("store",),
    ("config",),
    ("activity",),
    ("engine",),
    ("platform.volumes",),
    ("platform.side",),
    ("platform.actions",),
    ("platform.services",),
    ("platform.backup", "platform"),
    ("checks",),
    ("session",),
    ("api",),
    ("present",),
    ("ui",),
    ("daemon",),
    ("demo",),
    ("cli", "docs", "__main__"),
)
"""Core (model, store, config, activity, engine) → platform parts → checks → session (the
recipe, the host platform, the plan) → API → presentation → consoles → daemon (composes the
API and the web console) → demo → CLI."""


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    inner = module.removeprefix("activeupgrade").lstrip(".") or "activeupgrade"
    best, best_len = -1, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (inner == name or inner.startswith(name + ".")) and len(name) > best_len:
                best, best_len = index, len(name)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (types only, never run)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and (
                node.test.id == "TYPE_CHECKING"):
            found |= {id(n) for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    return found


def imports_of(path: Path, module: str, *, types: bool = True) -> set[str]:
    """What ``module`` imports (with ``types``: also what it imports for type checking)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip = set() if types else _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("activeupgrade")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("activeupgrade"):
                continue
            found.add(target)
            # ``from activeupgrade.platform import recipe`` imports a module, not a name
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                        PACKAGE.parent / sub.replace(".", "/")).is_dir():
                    found.add(sub)
    return found


def graph(*, types: bool = True) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in imports_of(p, m, types=types)
                if i in modules or i == "activeupgrade"} - {m}
            for m, p in modules.items()}


def test_every_import_points_down() -> None:
    upward = []
    for module, targets in graph().items():
        for target in targets:
            if target == "activeupgrade" or module.startswith(target + "."):
                continue  # a package's own __init__ (the version) or its parent
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} "
                              f"(layer {layer_of(target)})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    """No cycle among the imports that run (lazy ones in functions included); an import
    for type checking only may point back at a module that uses it."""
    edges = graph(types=False)
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package importing its own submodules from __init__ is not a cycle to fix
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_the_layer_table_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: an engine module importing the API is upward."""
    assert layer_of("activeupgrade.api.server") > layer_of("activeupgrade.engine.engine")
    assert layer_of("activeupgrade.platform.volumes.resync") < layer_of(
        "activeupgrade.checks.runner")
    assert layer_of("activeupgrade.cli.main") == len(LAYERS) - 1
