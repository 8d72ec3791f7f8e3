"""Workflow definitions from dicts (REST bodies), YAML and JSON files, and their full validation.

The dict form (the REST body and the file format)::

    name: nightly            # optional
    tenant: team-a           # optional
    queue: default           # default queue of every task
    on_success: pkg.mod.fn   # optional callbacks, called with the workflow id
    tasks:
      - id: extract
        func: pkg.mod.extract
        args: [1, 2]
        kwargs: {mode: fast}
      - id: shards
        func: pkg.mod.shard            # child i runs shard(i, *args, **kwargs)
        depends_on: [extract]
        array: {size: 100, depends: SEQUENTIAL, max_failures: 2}
        retry: {max: 3, intervals: [1, 5]}
        on_failure: skip               # fail (default) | skip | continue
      - id: report
        command: [sh, -c, 'echo "$JOBFLEET_JOB_INPUT"']
        input: {day: 2024-01-01}
        retry: {max: 2, exit_codes: [75]}
        depends_on: [shards]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from rq.utils import import_attribute

from jobfleet.workflows.model import ArraySpec, Node, RetrySpec, Workflow, WorkflowError, structural_problems

WORKFLOW_KEYS = {"name", "tenant", "queue", "tasks", "on_success", "on_failure", "on_end"}
TASK_KEYS = {"id", "func", "args", "kwargs", "command", "input", "queue", "timeout", "retry", "depends_on",
             "on_failure", "array"}
ARRAY_KEYS = {"size", "depends", "max_failures"}
RETRY_KEYS = {"max", "intervals", "exit_codes"}
FILE_SUFFIXES = (".yaml", ".yml", ".json")


def _fail(problems: Sequence[str]) -> None:
    if problems:
        raise WorkflowError("invalid workflow: " + "; ".join(problems))


def _unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> list[str]:
    extra = sorted(str(k) for k in data if k not in allowed)
    return [f"{where}: unknown field(s) {', '.join(extra)}"] if extra else []


def _retry_from(raw: Any, where: str, problems: list[str]) -> RetrySpec | None:
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return RetrySpec(max=raw)
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: retry must be a whole number or an object {{max, intervals, exit_codes}}")
        return None
    problems.extend(_unknown(raw, RETRY_KEYS, f"{where} retry"))
    intervals, codes = raw.get("intervals"), raw.get("exit_codes")
    for name, value in (("intervals", intervals), ("exit_codes", codes)):
        if value is not None and not isinstance(value, list):
            problems.append(f"{where}: retry {name} must be a list")
    return RetrySpec(
        max=raw.get("max", 0),
        intervals=tuple(intervals) if isinstance(intervals, list) else None,
        exit_codes=tuple(codes) if isinstance(codes, list) else None,
    )


def _node_from(raw: Any, index: int, problems: list[str]) -> Node | None:
    if not isinstance(raw, Mapping):
        problems.append(f"tasks[{index}]: must be an object")
        return None
    node_id = raw.get("id")
    where = f"task {node_id!r}" if isinstance(node_id, str) else f"tasks[{index}]"
    if not isinstance(node_id, str):
        problems.append(f"{where}: 'id' is required and must be a string")
        return None
    problems.extend(_unknown(raw, TASK_KEYS, where))
    args, kwargs, deps = raw.get("args", []), raw.get("kwargs", {}), raw.get("depends_on", [])
    command = raw.get("command")
    checks = (("args", args, list), ("kwargs", kwargs, dict), ("depends_on", deps, list))
    for name, value, kind in checks:
        if not isinstance(value, kind):
            problems.append(f"{where}: {name} must be a{'n object' if kind is dict else ' list'}")
            return None
    if not all(isinstance(d, str) for d in deps):
        problems.append(f"{where}: depends_on must list task ids (strings)")
        return None
    if isinstance(command, str):
        problems.append(f"{where}: command must be a list of strings (program and arguments), not one string")
        return None
    if command is not None and not isinstance(command, list):
        problems.append(f"{where}: command must be a list of strings")
        return None
    spec = raw.get("array")
    array_spec, max_failures = None, 0
    if spec is not None:
        if not isinstance(spec, Mapping) or "size" not in spec:
            problems.append(f"{where}: array must be an object with a 'size'")
            return None
        problems.extend(_unknown(spec, ARRAY_KEYS, f"{where} array"))
        array_spec = ArraySpec(size=spec["size"], depends=spec.get("depends"))
        max_failures = spec.get("max_failures", 0)
    return Node(
        id=node_id, func=raw.get("func"), args=tuple(args), kwargs=dict(kwargs),
        command=None if command is None else tuple(command), input=raw.get("input"), queue=raw.get("queue"),
        timeout=raw.get("timeout"), retry=_retry_from(raw.get("retry"), where, problems), depends_on=tuple(deps),
        on_failure=raw.get("on_failure", "fail"), array=array_spec, max_failures=max_failures,
    )


def from_dict(data: Any, default_queue: str = "default") -> Workflow:
    """A Workflow from its dict form (shape checks only; ``validate`` does the rest)."""
    if not isinstance(data, Mapping):
        raise WorkflowError("invalid workflow: the definition must be an object with a 'tasks' list")
    problems = _unknown(data, WORKFLOW_KEYS, "workflow")
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        raise WorkflowError("invalid workflow: 'tasks' must be a list of task objects")
    nodes = [n for n in (_node_from(raw, i, problems) for i, raw in enumerate(tasks)) if n is not None]
    _fail(problems)
    return Workflow(
        name=data.get("name") or "workflow", nodes=nodes, queue=data.get("queue") or default_queue,
        tenant=data.get("tenant"), on_success=data.get("on_success"), on_failure=data.get("on_failure"),
        on_end=data.get("on_end"),
    )


def load_file(path: str | Path) -> Workflow:
    """A Workflow from a ``.yaml``/``.yml``/``.json`` file; WorkflowError when unreadable or malformed."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow file {file}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise WorkflowError(f"workflow file {file} is not valid {file.suffix[1:].upper()}: {exc}") from None
    return from_dict(data)


def to_dict(workflow: Workflow) -> dict[str, Any]:
    """The dict form of ``workflow`` (round-trips through ``from_dict``)."""
    tasks = []
    for n in workflow.nodes:
        item: dict[str, Any] = {"id": n.id, "depends_on": list(n.depends_on), "on_failure": n.on_failure}
        if n.func is not None:
            item.update(func=n.func, args=list(n.args), kwargs=dict(n.kwargs))
        if n.command is not None:
            item.update(command=list(n.command), input=n.input)
        for key in ("queue", "timeout"):
            if getattr(n, key) is not None:
                item[key] = getattr(n, key)
        if n.retry is not None:
            r = n.retry
            item["retry"] = {"max": r.max, "intervals": None if r.intervals is None else list(r.intervals),
                             "exit_codes": None if r.exit_codes is None else list(r.exit_codes)}
        if n.array is not None:
            item["array"] = {"size": n.array.size, "depends": n.array.depends, "max_failures": n.max_failures}
        tasks.append(item)
    out: dict[str, Any] = {"name": workflow.name, "queue": workflow.queue, "tenant": workflow.tenant, "tasks": tasks}
    for key in ("on_success", "on_failure", "on_end"):
        out[key] = getattr(workflow, key)
    return out


def fingerprint(data: Any) -> str:
    """SHA-256 of the canonical JSON of ``data`` (an idempotency key's body check)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr).encode()
    return hashlib.sha256(blob).hexdigest()


def _import_problem(path: str) -> str | None:
    try:
        target = import_attribute(path)
    except (ImportError, AttributeError, ValueError) as exc:
        return f"cannot import function {path!r} ({type(exc).__name__}: {exc})"
    if not callable(target):
        return f"{path!r} is not callable"
    return None


def validate(workflow: Workflow, queues: Sequence[str]) -> Workflow:
    """Raise WorkflowError naming every problem (structure, cycles, importability); return ``workflow``."""
    problems = structural_problems(workflow, queues)
    for node in workflow.nodes:
        if isinstance(node.func, str) and "." in node.func:
            problem = _import_problem(node.func)
            if problem:
                problems.append(f"task {node.id!r}: {problem}")
    for key in ("on_success", "on_failure", "on_end"):
        path = getattr(workflow, key)
        if path is None:
            continue
        problem = _import_problem(path) if isinstance(path, str) and "." in path else f"{path!r} is not a dotted path"
        if problem:
            problems.append(f"workflow {key}: {problem}")
    _fail(problems)
    return workflow
