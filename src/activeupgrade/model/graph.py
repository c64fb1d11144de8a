"""The state graph, declared once as data (SPEC §2.5) and validated when loaded.

It drives the engine (which requests an operator action runs and where it leads), the API's
``allowed_actions``, the consoles' buttons and the documentation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from activeupgrade.errors import StateError
from activeupgrade.model.states import OperationalState, OperatorAction, Request, UpgradeState

U = UpgradeState
R = Request
O = OperationalState  # noqa: E741
A = OperatorAction


@dataclass(frozen=True)
class Stage:
    """One request of an operator action and the upgrade state shown while it runs."""

    request: Request
    state: UpgradeState


@dataclass(frozen=True)
class Transition:
    """An operator action: from which states, through which requests, to which state."""

    action: OperatorAction
    sources: frozenset[UpgradeState]
    stages: tuple[Stage, ...]
    target: UpgradeState
    when: frozenset[OperationalState] = frozenset({O.READY})
    cost: dict[UpgradeState, str] = field(default_factory=dict, hash=False, compare=False)
    """What the action costs the applications, by source state (shown on buttons)."""
    starts_session: bool = False
    ends_session: bool = False


NO_DISRUPTION = "no disruption"
APPS_RESTART = "applications restart"

TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        A.CHECK, frozenset({U.IDLE}), (Stage(R.CHECK_READINESS, U.IDLE),), U.IDLE,
        cost={U.IDLE: NO_DISRUPTION},
    ),
    Transition(
        A.SPLIT, frozenset({U.IDLE}),
        # As the original shows it: Split/Busy while the split is under way, Split/Ready once
        # the host is in split mode.
        (Stage(R.PREPARE_SPLIT, U.PREPARE_SPLIT), Stage(R.EXECUTE_SPLIT, U.SPLIT)),
        U.SPLIT, cost={U.IDLE: NO_DISRUPTION}, starts_session=True,
    ),
    Transition(
        A.MERGE, frozenset({U.SPLIT}),
        # Merge/Busy while the merge runs, Merge/Ready once the applications run upgraded.
        (Stage(R.PREPARE_MERGE, U.PREPARE_MERGE), Stage(R.EXECUTE_MERGE, U.MERGE)),
        U.MERGE, cost={U.SPLIT: APPS_RESTART},
    ),
    Transition(
        A.COMMIT, frozenset({U.MERGE}), (Stage(R.COMMIT, U.COMMIT),), U.COMMIT,
        cost={U.MERGE: NO_DISRUPTION},
    ),
    Transition(
        A.ABORT,
        frozenset({U.PREPARE_SPLIT, U.SPLIT, U.PREPARE_MERGE, U.MERGE}),
        (Stage(R.ABORT, U.ABORT),),
        U.ABORT,
        when=frozenset({O.READY, O.BUSY, O.BROKEN}),
        cost={
            U.PREPARE_SPLIT: NO_DISRUPTION,
            U.SPLIT: NO_DISRUPTION,
            # PrepareMerge only inspects: the applications have not moved yet.
            U.PREPARE_MERGE: NO_DISRUPTION,
            U.MERGE: APPS_RESTART,
        },
    ),
    Transition(
        A.FINISH, frozenset({U.COMMIT, U.ABORT}), (Stage(R.FINISH, U.FINISH),), U.IDLE,
        cost={U.COMMIT: NO_DISRUPTION, U.ABORT: NO_DISRUPTION}, ends_session=True,
    ),
)

INITIAL = U.IDLE


class StateGraph:
    """The validated transition table with the queries the engine and the UIs need."""

    def __init__(self, transitions: Iterable[Transition], initial: UpgradeState) -> None:
        self.transitions = tuple(transitions)
        self.initial = initial
        self._validate()

    def _validate(self) -> None:
        problems: list[str] = []
        actions = [t.action for t in self.transitions]
        if len(set(actions)) != len(actions):
            problems.append("an operator action is declared twice")
        if A.RETRY in actions:
            problems.append("retry is implicit (Broken only) and must not be declared")
        states_used: set[UpgradeState] = {self.initial}
        edges: dict[UpgradeState, set[UpgradeState]] = {s: set() for s in UpgradeState}
        for t in self.transitions:
            if not t.stages:
                problems.append(f"{t.action} runs no request")
            for s in t.sources:
                prev = s
                for stage in t.stages:
                    edges[prev].add(stage.state)
                    prev = stage.state
                edges[prev].add(t.target)
                if s not in t.cost:
                    problems.append(f"{t.action} from {s} has no declared cost")
            states_used |= set(t.sources) | {t.target} | {st.state for st in t.stages}
        missing = set(UpgradeState) - states_used
        if missing:
            problems.append(f"states never used: {sorted(missing)}")
        reachable = self._closure(self.initial, edges)
        if unreachable := set(UpgradeState) - reachable:
            problems.append(f"states unreachable from {self.initial}: {sorted(unreachable)}")
        for s in UpgradeState:
            if self.initial not in self._closure(s, edges):
                problems.append(f"trap state: {s} cannot lead back to {self.initial}")
        if problems:
            raise ValueError("invalid state graph: " + "; ".join(problems))

    @staticmethod
    def _closure(start: UpgradeState, edges: dict[UpgradeState, set[UpgradeState]]) -> set[
        UpgradeState
    ]:
        seen = {start}
        todo = [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def transition(self, action: OperatorAction) -> Transition:
        for t in self.transitions:
            if t.action is action:
                return t
        raise KeyError(action)

    def allowed(self, state: UpgradeState, op: OperationalState) -> list[OperatorAction]:
        """The operator actions allowed in (state, operational state), in display order."""
        allowed = [t.action for t in self.transitions if state in t.sources and op in t.when]
        if op is O.BROKEN:
            allowed.append(A.RETRY)
        return allowed

    def require(
        self, action: OperatorAction, state: UpgradeState, op: OperationalState
    ) -> Transition | None:
        """The transition for ``action`` or a StateError naming the allowed actions.

        Returns None for retry, which has no transition of its own.
        """
        allowed = self.allowed(state, op)
        if action not in allowed:
            names = ", ".join(a.value for a in allowed) or "none (wait for the running request)"
            raise StateError(
                f"`{action}` is not allowed in {state} / {op}",
                hint=f"Allowed now: {names}.",
                details={"allowed_actions": [a.value for a in allowed]},
            )
        if action is A.RETRY:
            return None
        return self.transition(action)

    def cost(self, action: OperatorAction, state: UpgradeState) -> str:
        """What the action costs the applications from ``state`` (for buttons and plans)."""
        if action is A.RETRY:
            return "re-runs the failed step"
        try:
            return self.transition(action).cost.get(state, NO_DISRUPTION)
        except KeyError:
            return NO_DISRUPTION

    def stages_from(self, action: OperatorAction, request: Request) -> tuple[Stage, ...]:
        """The stages of ``action`` from ``request`` on (used to resume after retry)."""
        stages = self.transition(action).stages
        for i, st in enumerate(stages):
            if st.request is request:
                return stages[i:]
        raise KeyError(request)


GRAPH = StateGraph(TRANSITIONS, INITIAL)
