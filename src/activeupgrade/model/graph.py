"""The state graph, declared once as data (SPEC §2.5) and validated when loaded.

It drives the engine (which requests an operator action runs and where it leads), the API's
``allowed_actions``, the consoles' buttons and the documentation. Beside the transitions,
the maintenance operations (adopt, release, resync, verify, service start/stop/release,
restart of the Upgrade Side, exec) are declared here too: in which states each may run.
They take the same Busy slot and leave the upgrade state as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from activeupgrade.errors import StateError
from activeupgrade.model.states import (
    Operation,
    OperationalState,
    OperatorAction,
    Request,
    UpgradeState,
)

U = UpgradeState
R = Request
O = OperationalState  # noqa: E741
A = OperatorAction
P = Operation


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
    breaks: bool = True
    """A failure makes the request Broken (Retry or Abort). False for the readiness check:
    it only reports, and a failure leaves the instance Ready with the error shown."""
    only_when: str = ""
    """A condition the engine must report true (``StateGraph.allowed``'s ``conditions``)
    for the action to be offered at all: ``confirm_window`` for Confirm."""


@dataclass(frozen=True)
class Maintenance:
    """A maintenance operation and where it is allowed."""

    operation: Operation
    states: frozenset[UpgradeState]
    when: frozenset[OperationalState] = frozenset({O.READY})
    """Operational states it may start in; after it the operational state is restored (a
    Broken request stays Broken, so an operator can fix the cause, then Retry)."""
    why: str = ""
    """Why it is allowed only there, and what to do instead (the refusal's hint)."""


CONFIRM_WINDOW = "confirm_window"
"""Condition: the confirmation window after merge is open (not confirmed, not expired)."""
NO_DISRUPTION = "no disruption"
APPS_RESTART = "applications restart"

TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        A.CHECK, frozenset({U.IDLE}), (Stage(R.CHECK_READINESS, U.IDLE),), U.IDLE,
        cost={U.IDLE: NO_DISRUPTION}, breaks=False,
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
        # Only while the confirmation window after merge is open; Commit confirms too.
        A.CONFIRM, frozenset({U.MERGE}), (Stage(R.CONFIRM, U.MERGE),), U.MERGE,
        cost={U.MERGE: "no disruption; ends the confirmation window"},
        only_when=CONFIRM_WINDOW,
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

OUTSIDE_SESSION = ("Volumes change hands only outside a session: finish it first "
                   "(`au finish`, or `au abort` then `au finish`).")
ANY_STATE = frozenset(UpgradeState)
SIDE_UP = frozenset({U.SPLIT, U.PREPARE_MERGE})
FIXING = frozenset({O.READY, O.BROKEN})

MAINTENANCE: tuple[Maintenance, ...] = (
    Maintenance(P.ADOPT, frozenset({U.IDLE}), why=OUTSIDE_SESSION),
    Maintenance(P.RELEASE, frozenset({U.IDLE}), why=OUTSIDE_SESSION),
    Maintenance(P.RESYNC, frozenset({U.IDLE}), why="During a session the session's own "
                "steps resynchronise the replicas (Commit, Abort, Finish)."),
    Maintenance(P.VERIFY, frozenset({U.IDLE, U.COMMIT, U.ABORT}),
                why="During split and merge the replicas differ on purpose; verify after "
                "Commit or Abort."),
    # A live path that lost its mount is fixed where it is found, also to repair what it
    # broke.
    Maintenance(P.ATTACH, ANY_STATE, FIXING),
    # An operator may need to stop or start an application at any moment, also to fix
    # what broke a request.
    Maintenance(P.SERVICE_START, ANY_STATE, FIXING),
    Maintenance(P.SERVICE_STOP, ANY_STATE, FIXING),
    Maintenance(P.SERVICE_RELEASE, frozenset({U.IDLE}),
                why="Its listening sockets carry clients through the merge: finish the "
                "session first (`au finish` or `au abort`), or use `au service stop` without "
                "--release."),
    # The Upgrade Side exists in Split and PrepareMerge; fixing it is how a Broken
    # PrepareMerge is repaired.
    Maintenance(P.RESTART_UPGRADE_SIDE, SIDE_UP, FIXING),
    Maintenance(P.EXEC, SIDE_UP, FIXING),
)

INITIAL = U.IDLE


class StateGraph:
    """The validated transition table with the queries the engine and the UIs need."""

    def __init__(self, transitions: Iterable[Transition], initial: UpgradeState,
                 maintenance: Iterable[Maintenance] = ()) -> None:
        self.transitions = tuple(transitions)
        self.initial = initial
        self.maintenance = tuple(maintenance)
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
        ops = [m.operation for m in self.maintenance]
        if len(set(ops)) != len(ops):
            problems.append("a maintenance operation is declared twice")
        for m in self.maintenance:
            if not m.states or not m.when:
                problems.append(f"{m.operation} is allowed nowhere")
            if O.BUSY in m.when:
                problems.append(f"{m.operation} would share the Busy slot")
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

    def allowed(self, state: UpgradeState, op: OperationalState,
                conditions: frozenset[str] = frozenset()) -> list[OperatorAction]:
        """The operator actions allowed in (state, operational state), in display order;
        an action with ``only_when`` only when that condition is in ``conditions``."""
        allowed = [t.action for t in self.transitions if state in t.sources and op in t.when
                   and (not t.only_when or t.only_when in conditions)]
        if op is O.BROKEN:
            allowed.append(A.RETRY)
        return allowed

    def allowed_operations(self, state: UpgradeState, op: OperationalState) -> list[Operation]:
        """The maintenance operations allowed in (state, operational state)."""
        return [m.operation for m in self.maintenance if state in m.states and op in m.when]

    def require_operation(self, operation: Operation, state: UpgradeState,
                          op: OperationalState) -> Maintenance:
        """The rule of ``operation`` or a StateError saying where it is allowed."""
        rule = next(m for m in self.maintenance if m.operation is operation)
        if state in rule.states and op in rule.when:
            return rule
        where = ", ".join(s.value for s in UpgradeState if s in rule.states)
        when = "/".join(o.value for o in OperationalState if o in rule.when)
        busy = op is O.BUSY
        raise StateError(
            f"`{operation}` is not allowed in {state} / {op}",
            hint=("Wait until the running request ends (`au status`)." if busy else
                  f"It runs in {where} ({when}). {rule.why}".strip()),
            details={"allowed_operations": [o.value for o in self.allowed_operations(
                state, op)]},
        )

    def require(
        self, action: OperatorAction, state: UpgradeState, op: OperationalState,
        conditions: frozenset[str] = frozenset(),
    ) -> Transition | None:
        """The transition for ``action`` or a StateError naming the allowed actions.

        Returns None for retry, which has no transition of its own.
        """
        allowed = self.allowed(state, op, conditions)
        if action not in allowed:
            names = ", ".join(a.value for a in allowed) or "none (wait for the running request)"
            if action is A.CONFIRM and state is U.MERGE and op is O.READY:
                raise StateError(
                    "no confirmation window is open: there is nothing to confirm",
                    hint="A window opens at merge when the configuration sets [merge] "
                    "confirm_within; it ends when confirmed, at Commit, or when it expires. "
                    f"Allowed now: {names}.",
                    details={"allowed_actions": [a.value for a in allowed]})
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

    def requests(self, *actions: OperatorAction) -> tuple[Request, ...]:
        """The requests the given operator actions run, in order (every action of the
        graph, in declaration order, when none is given): the one request order that the
        plan, the steps listing and the docs use."""
        chosen = actions or tuple(t.action for t in self.transitions)
        out: list[Request] = []
        for action in chosen:
            for st in self.transition(action).stages:
                if st.request not in out:
                    out.append(st.request)
        return tuple(out)

    def stages_from(self, action: OperatorAction, request: Request) -> tuple[Stage, ...]:
        """The stages of ``action`` from ``request`` on (used to resume after retry)."""
        stages = self.transition(action).stages
        for i, st in enumerate(stages):
            if st.request is request:
                return stages[i:]
        raise KeyError(request)


GRAPH = StateGraph(TRANSITIONS, INITIAL, MAINTENANCE)
