"""The workflow model: a named graph of nodes (one task or an array of tasks) and its validation (pure).

A *node* runs one RQ job, or ``array.size`` jobs (an array, children 0..size-1). ``depends_on`` names
nodes that must end first. For an array node, ``array.depends`` refines that per child:

- ``None`` (default): every child waits for every dependency node to end.
- ``"N_TO_N"``: child i waits for child i of each *array* dependency (same size required); non-array
  dependencies still gate every child.
- ``"SEQUENTIAL"``: child i also waits for child i-1 of its own array.

``on_failure`` says what a failed node does to the workflow: ``fail`` it (default: the workflow fails,
queued tasks are canceled), ``skip`` every node downstream (marked canceled), or ``continue`` (dependents
run as if it had succeeded). ``max_failures`` (arrays) tolerates up to k failed children before the node
counts as failed; tolerated failures release their dependents like successes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jobfleet.errors import SubmitError

NODE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NODE_ID_PATTERN = NODE_ID_RE.pattern
WORKFLOW_ID_PATTERN = r"^[0-9a-f]{32}$"
TASK_ID_PATTERN = r"^[0-9a-f]{32}-[0-9]{1,4}-[0-9]{1,5}$"
MAX_ARRAY = 10_000
MAX_NODES = 5_000
MAX_TASKS = 200_000
MAX_NAME = 200
POLICIES = ("fail", "skip", "continue")
ARRAY_DEPENDS = ("N_TO_N", "SEQUENTIAL")
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
TERMINAL = ("succeeded", "failed", "canceled")

Policy = Literal["fail", "skip", "continue"]


class WorkflowError(SubmitError):
    """An invalid workflow definition; the message names the node(s) and the problem(s)."""


@dataclass(frozen=True)
class RetrySpec:
    """Retries of one task: ``max`` extra attempts, waits ``intervals`` (seconds, last one repeats; None =
    the default exponential backoff), and for shell tasks only the exit codes that are worth a retry
    (``exit_codes``; None = any non-zero code)."""

    max: int = 0
    intervals: tuple[float, ...] | None = None
    exit_codes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ArraySpec:
    """``size`` children (1..10,000) and how they depend (None, ``N_TO_N`` or ``SEQUENTIAL``)."""

    size: int
    depends: str | None = None


@dataclass(frozen=True)
class Node:
    """One node of the graph: a Python function (``func``, dotted path) or a program (``command``)."""

    id: str
    func: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    input: Any = None
    queue: str | None = None
    timeout: int | None = None
    retry: RetrySpec | None = None
    depends_on: tuple[str, ...] = ()
    on_failure: str = "fail"
    array: ArraySpec | None = None
    max_failures: int = 0

    @property
    def size(self) -> int:
        """Number of tasks of this node."""
        return self.array.size if self.array else 1

    @property
    def kind(self) -> str:
        """``python`` or ``shell``."""
        return "shell" if self.command is not None else "python"


@dataclass
class Workflow:
    """A named graph of nodes. Build with ``Workflow(name, [task(...), array(...)])`` or ``wf.add(...)``.

    ``on_success`` / ``on_failure`` / ``on_end``: dotted paths of functions enqueued (as RQ jobs, with the
    workflow id as their one argument) when the workflow succeeds / fails / ends in any way (a chord).
    """

    name: str = "workflow"
    nodes: list[Node] = field(default_factory=list)
    queue: str = "default"
    tenant: str | None = None
    on_success: str | None = None
    on_failure: str | None = None
    on_end: str | None = None

    def add(self, node: Node) -> Node:
        """Append ``node`` and return it (so it can be named in later ``depends_on``)."""
        self.nodes.append(node)
        return node

    @property
    def total_tasks(self) -> int:
        """Number of tasks (RQ jobs) of the workflow, callbacks excluded."""
        return sum(node.size for node in self.nodes)


def _ids(deps: Iterable[str | Node] | str | Node | None) -> tuple[str, ...]:
    if deps is None:
        return ()
    if isinstance(deps, str | Node):
        deps = [deps]
    return tuple(d.id if isinstance(d, Node) else d for d in deps)


def _path(func: Callable[..., Any] | str) -> str:
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None) or ""
    qualname = getattr(func, "__qualname__", "") or repr(func)
    return f"{module}.{qualname}"


def _retry(retry: int | RetrySpec | None) -> RetrySpec | None:
    if retry is None or isinstance(retry, RetrySpec):
        return retry
    return RetrySpec(max=retry)


def task(
    id: str,
    func: Callable[..., Any] | str | None = None,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
    input: Any = None,
    queue: str | None = None,
    timeout: int | None = None,
    retry: int | RetrySpec | None = None,
    depends_on: Iterable[str | Node] | str | Node | None = None,
    on_failure: str = "fail",
) -> Node:
    """A one-task node running ``func(*args, **kwargs)`` (or the program ``command``)."""
    return Node(
        id=id, func=None if func is None else _path(func), args=tuple(args), kwargs=dict(kwargs or {}),
        command=None if command is None else tuple(command), input=input, queue=queue, timeout=timeout,
        retry=_retry(retry), depends_on=_ids(depends_on), on_failure=on_failure,
    )


def array(
    id: str,
    func: Callable[..., Any] | str | None = None,
    *,
    size: int,
    depends: str | None = None,
    max_failures: int = 0,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
    input: Any = None,
    queue: str | None = None,
    timeout: int | None = None,
    retry: int | RetrySpec | None = None,
    depends_on: Iterable[str | Node] | str | Node | None = None,
    on_failure: str = "fail",
) -> Node:
    """An array node of ``size`` tasks; child i runs ``func(i, *args, **kwargs)`` (or ``command`` with
    ``JOBFLEET_ARRAY_INDEX=i``)."""
    base = task(id, func, args=args, kwargs=kwargs, command=command, input=input, queue=queue, timeout=timeout,
                retry=retry, depends_on=depends_on, on_failure=on_failure)
    return Node(**{**base.__dict__, "array": ArraySpec(size=size, depends=depends), "max_failures": max_failures})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def structural_problems(workflow: Workflow, queues: Sequence[str]) -> list[str]:
    """Every structural problem of ``workflow`` (ids, sizes, policies, dependencies, cycles), as messages
    that name the node; an empty list means the graph is valid. Importability is checked elsewhere."""
    problems: list[str] = []
    if not isinstance(workflow.name, str) or not workflow.name.strip() or len(workflow.name) > MAX_NAME:
        problems.append(f"workflow name must be a non-empty string of at most {MAX_NAME} characters")
    if workflow.tenant is not None and (not isinstance(workflow.tenant, str) or not NODE_ID_RE.match(workflow.tenant)):
        problems.append(f"tenant {workflow.tenant!r} must match {NODE_ID_PATTERN}")
    if workflow.queue not in queues:
        problems.append(f"workflow queue {workflow.queue!r} is not one of the configured queues ({', '.join(queues)})")
    if not workflow.nodes:
        problems.append("a workflow needs at least one task")
    if len(workflow.nodes) > MAX_NODES:
        problems.append(f"a workflow has at most {MAX_NODES} tasks, this one has {len(workflow.nodes)}")
    by_id: dict[str, Node] = {}
    for node in workflow.nodes:
        where = f"task {node.id!r}"
        if not isinstance(node.id, str) or not NODE_ID_RE.match(node.id):
            problems.append(f"{where}: id must match {NODE_ID_PATTERN}")
            continue
        if node.id in by_id:
            problems.append(f"{where}: id is used twice")
        by_id[node.id] = node
        problems.extend(f"{where}: {p}" for p in _node_problems(node, queues))
    if workflow.total_tasks > MAX_TASKS:
        problems.append(f"a workflow has at most {MAX_TASKS} tasks in all, this one has {workflow.total_tasks}")
    for node in workflow.nodes:
        for dep in node.depends_on:
            if dep == node.id:
                problems.append(f"task {node.id!r}: depends on itself")
            elif dep not in by_id:
                problems.append(f"task {node.id!r}: depends on unknown task {dep!r}")
        if node.array and node.array.depends == "N_TO_N":
            parents = [by_id[d] for d in node.depends_on if d in by_id and by_id[d].array]
            if not parents:
                problems.append(f"task {node.id!r}: N_TO_N needs an array among its depends_on")
            for parent in parents:
                if parent.size != node.size:
                    problems.append(f"task {node.id!r}: N_TO_N on array {parent.id!r} of size {parent.size}, "
                                    f"but this array has size {node.size}")
    cycle = find_cycle({n.id: [d for d in n.depends_on if d in by_id and d != n.id] for n in workflow.nodes})
    if cycle:
        problems.append(f"task {cycle[0]!r}: dependency cycle {' -> '.join([*cycle, cycle[0]])}")
    return problems


def _node_problems(node: Node, queues: Sequence[str]) -> list[str]:
    problems = []
    if (node.func is None) == (node.command is None):
        problems.append("give exactly one of 'func' (a dotted function path) or 'command' (a program)")
    if node.func is not None and (not isinstance(node.func, str) or "." not in node.func):
        problems.append(f"func {node.func!r} must be a dotted path like 'package.module.function'")
    if node.command is not None and (not node.command or not all(isinstance(c, str) for c in node.command)):
        problems.append("command must be a non-empty list of strings")
    if node.queue is not None and node.queue not in queues:
        problems.append(f"queue {node.queue!r} is not one of the configured queues ({', '.join(queues)})")
    if node.timeout is not None and (not _is_int(node.timeout) or node.timeout <= 0):
        problems.append(f"timeout must be a whole number of seconds > 0, got {node.timeout!r}")
    if node.on_failure not in POLICIES:
        problems.append(f"on_failure {node.on_failure!r} must be one of {', '.join(POLICIES)}")
    if node.retry is not None:
        r = node.retry
        if not _is_int(r.max) or not 0 <= r.max <= 100:
            problems.append(f"retry max must be a whole number in 0..100, got {r.max!r}")
        if r.intervals is not None and not all(isinstance(i, int | float) and not isinstance(i, bool) and i >= 0
                                               for i in r.intervals):
            problems.append("retry intervals must be numbers of seconds >= 0")
        if r.exit_codes is not None:
            if node.command is None:
                problems.append("retry exit_codes apply to shell tasks (command) only")
            elif not all(_is_int(c) and 0 < c < 256 for c in r.exit_codes):
                problems.append("retry exit_codes must be whole numbers in 1..255")
    if node.array is not None:
        size = node.array.size
        if not _is_int(size) or not 1 <= size <= MAX_ARRAY:
            problems.append(f"array size must be a whole number in 1..{MAX_ARRAY}, got {size!r}")
        if node.array.depends is not None and node.array.depends not in ARRAY_DEPENDS:
            problems.append(f"array depends {node.array.depends!r} must be N_TO_N or SEQUENTIAL")
        if not _is_int(node.max_failures) or not 0 <= node.max_failures <= (size if _is_int(size) else 0):
            problems.append(f"max_failures must be a whole number in 0..size, got {node.max_failures!r}")
    elif node.max_failures:
        problems.append("max_failures applies to arrays only")
    try:
        json.dumps(node.input)
    except (TypeError, ValueError):
        problems.append("input must be JSON-serialisable")
    return problems


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One dependency cycle of ``graph`` (node -> its dependencies) as a list of nodes, or None."""
    state: dict[str, int] = {}
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            name, pos = stack.pop()
            if pos == 0:
                state[name] = 1
                path.append(name)
            deps = graph.get(name, ())
            if pos < len(deps):
                stack.append((name, pos + 1))
                nxt = deps[pos]
                if state.get(nxt) == 1:
                    return path[path.index(nxt):]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[name] = 2
                path.pop()
    return None


def topological_order(workflow: Workflow) -> list[Node]:
    """Nodes with every dependency before its dependents (valid, acyclic workflows only)."""
    by_id = {n.id: n for n in workflow.nodes}
    seen: set[str] = set()
    order: list[Node] = []

    def visit(node: Node) -> None:
        stack = [(node, iter(node.depends_on))]
        seen.add(node.id)
        while stack:
            current, deps = stack[-1]
            for dep in deps:
                if dep not in seen:
                    seen.add(dep)
                    stack.append((by_id[dep], iter(by_id[dep].depends_on)))
                    break
            else:
                stack.pop()
                order.append(current)

    for node in workflow.nodes:
        if node.id not in seen:
            visit(node)
    return order
