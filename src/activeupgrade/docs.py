"""Documentation tables generated from the code (exit codes, the state graph).

The README embeds them; a test keeps the README equal to what this module prints.
"""

from __future__ import annotations

from activeupgrade.errors import all_error_classes
from activeupgrade.model.graph import GRAPH
from activeupgrade.model.states import OperationalState


def exit_code_rows() -> list[tuple[int, str, str]]:
    """(exit code, error class or "", meaning) of every exit status of ``au``."""
    rows: list[tuple[int, str, str]] = [(0, "", "success")]
    for cls in all_error_classes():
        rows.append((cls.exit_code, cls.__name__,
                     (cls.__doc__ or "").strip().splitlines()[0]))
    rows.append((130, "", "interrupted by the operator (Ctrl-C); work in the daemon goes on "
                 "unless the operator chose to cancel it"))
    return rows


def exit_code_table() -> str:
    rows = ["| Exit | Error | Meaning |", "|---|---|---|"]
    for code, name, meaning in exit_code_rows():
        rows.append(f"| {code} | {'`' + name + '`' if name else '—'} | {meaning} |")
    return "\n".join(rows)


def transition_table() -> str:
    rows = [
        "| Operator action | From | When | Requests (state shown) | To | Cost |",
        "|---|---|---|---|---|---|",
    ]
    for t in GRAPH.transitions:
        when = "/".join(o.value for o in OperationalState if o in t.when)
        if t.only_when:
            when += f" (only with {t.only_when.replace('_', ' ')} open)"
        stages = " → ".join(f"{s.request} ({s.state})" for s in t.stages)
        sources = ", ".join(s.value for s in sorted(t.sources, key=list(type(t.target)).index))
        costs = sorted(set(t.cost.values()))
        rows.append(
            f"| `{t.action}` | {sources} | {when} | {stages} | {t.target} | {' / '.join(costs)} |"
        )
    rows.append("| `retry` | any | Broken | the failed request, from the failed step | — | — |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(exit_code_table())
    print()
    print(transition_table())
