"""Scheduling state of a workflow as pure data: the compiled graph and its counters (no Redis here).

Each node keeps a *gate* (how many whole-node dependencies have not ended) and, when its children depend
per child (N_TO_N parents or SEQUENTIAL), a *pending* count per child. A child is released (enqueued)
exactly once: when the gate is 0 and its pending count is 0. ``plan`` computes these counters from the
set of tasks already succeeded — the empty set at submission, the succeeded tasks on a retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

from jobfleet.workflows.model import Workflow, topological_order


@dataclass(frozen=True)
class NodePlan:
    """A node as the engine sees it: its position, size and edges by node index."""

    index: int
    id: str
    size: int
    queue: str
    policy: str
    max_failures: int
    sequential: bool
    all_parents: tuple[int, ...]
    n2n_parents: tuple[int, ...]
    down_all: tuple[int, ...] = ()
    down_n2n: tuple[int, ...] = ()

    @property
    def per_child(self) -> bool:
        """True when children carry their own pending count."""
        return self.sequential or bool(self.n2n_parents)


@dataclass
class NodeState:
    """Counters of one node for a given set of succeeded children."""

    gate: int
    pending: dict[int, int] = field(default_factory=dict)
    ready: list[int] = field(default_factory=list)
    succeeded: int = 0
    waiting: int = 0


def compile_graph(workflow: Workflow) -> list[NodePlan]:
    """Node plans in the workflow's own node order (that order numbers the nodes: task ids use it)."""
    index = {node.id: i for i, node in enumerate(workflow.nodes)}
    by_id = {node.id: node for node in workflow.nodes}
    plans: list[NodePlan] = []
    down_all: dict[int, list[int]] = {i: [] for i in range(len(workflow.nodes))}
    down_n2n: dict[int, list[int]] = {i: [] for i in range(len(workflow.nodes))}
    for i, node in enumerate(workflow.nodes):
        n2n = node.array is not None and node.array.depends == "N_TO_N"
        parents = list(dict.fromkeys(node.depends_on))
        n2n_parents = tuple(index[p] for p in parents if n2n and by_id[p].array is not None)
        all_parents = tuple(index[p] for p in parents if index[p] not in n2n_parents)
        for p in all_parents:
            down_all[p].append(i)
        for p in n2n_parents:
            down_n2n[p].append(i)
        plans.append(NodePlan(
            index=i, id=node.id, size=node.size, queue=node.queue or workflow.queue, policy=node.on_failure,
            max_failures=node.max_failures, sequential=node.array is not None and node.array.depends == "SEQUENTIAL",
            all_parents=all_parents, n2n_parents=n2n_parents,
        ))
    return [NodePlan(**{**p.__dict__, "down_all": tuple(down_all[p.index]), "down_n2n": tuple(down_n2n[p.index])})
            for p in plans]


def plan(nodes: list[NodePlan], done: Mapping[int, Set[int]]) -> list[NodeState]:
    """Gate, per-child pending counts and ready children of every node, given the succeeded children."""
    complete = {p.index for p in nodes if len(done.get(p.index, ())) >= p.size}
    states = []
    for p in nodes:
        finished = done.get(p.index, set())
        gate = sum(1 for parent in p.all_parents if parent not in complete)
        state = NodeState(gate=gate, succeeded=len(finished), waiting=p.size - len(finished))
        for i in range(p.size):
            if i in finished:
                continue
            pending = sum(1 for parent in p.n2n_parents if i not in done.get(parent, ()))
            if p.sequential and i > 0 and (i - 1) not in finished:
                pending += 1
            if p.per_child:
                state.pending[i] = pending
            if gate == 0 and pending == 0:
                state.ready.append(i)
        states.append(state)
    return states


def node_order(workflow: Workflow) -> list[str]:
    """Node ids in dependency order (for drawing the graph in layers)."""
    return [n.id for n in topological_order(workflow)]


def layers(nodes: list[NodePlan]) -> list[int]:
    """Depth of each node (0 = no dependencies): the column the dashboard draws it in."""
    depth: dict[int, int] = {}
    remaining = list(nodes)
    while remaining:
        rest = []
        for p in remaining:
            parents = (*p.all_parents, *p.n2n_parents)
            if all(q in depth for q in parents):
                depth[p.index] = 1 + max((depth[q] for q in parents), default=-1)
            else:
                rest.append(p)
        if len(rest) == len(remaining):  # cannot happen for a validated (acyclic) graph
            break
        remaining = rest
    return [depth.get(p.index, 0) for p in nodes]
