"""All-or-nothing submission of a workflow, in a few pipelined round trips whatever its size.

Everything a workflow needs — its hash and index entries, node counters, per-child pending counts, the
RQ job hash of every task (deferred, or queued and pushed when nothing blocks it), the callback jobs
and the idempotency key — is written in ONE MULTI/EXEC transaction. Array children share one job
template, expanded server-side by a Lua script, so a 10,000-child array costs one script call.
With an idempotency key the transaction WATCHes the key: concurrent identical submissions make one
workflow, the others return it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError, ResponseError, WatchError
from rq.callbacks import Callback
from rq.job import Job, JobStatus

from jobfleet import tracing
from jobfleet.connection import redis_connection
from jobfleet.errors import SubmitError
from jobfleet.retry import backoff_intervals, default_retry
from jobfleet.settings import Settings, load_settings
from jobfleet.workflows import definition, store
from jobfleet.workflows.model import MAX_NAME, Node, Workflow, WorkflowError
from jobfleet.workflows.state import NodePlan, compile_graph, plan

RUNNER = "jobfleet.workflows.runner.run_task"
ON_SUCCESS = "jobfleet.workflows.callbacks.task_succeeded"
ON_FAILURE = "jobfleet.workflows.callbacks.task_failed"
IDEMPOTENCY_PREFIX = "jobfleet:wf:idem:"


class IdempotencyConflict(SubmitError):
    """The idempotency key was used before with a different definition."""


@dataclass(frozen=True)
class Submitted:
    """The result of a submission: the workflow id, its status, and whether this call created it."""

    id: str
    status: str
    created: bool


def _retry_fields(node: Node, settings: Settings) -> tuple[int, list[float]]:
    if node.retry is None:
        default = default_retry(settings)
        return (0, []) if default is None else (default.max, list(default.intervals or []))
    intervals = list(node.retry.intervals) if node.retry.intervals else backoff_intervals(settings)[:node.retry.max]
    return node.retry.max, intervals or [settings.retry_base]


def _template(conn: Redis, wid: str, p: NodePlan, node: Node, workflow: Workflow, carrier: Mapping[str, str],
              settings: Settings) -> dict[str, Any]:
    target = node.func if node.command is None else json.dumps(list(node.command))
    args = ("shell" if node.command is not None else "python", target, list(node.args), dict(node.kwargs),
            node.input, None if node.retry is None or node.retry.exit_codes is None else list(node.retry.exit_codes),
            node.array is not None)
    meta = {"workflow": wid, "node": node.id, "tenant": workflow.tenant, "otel": dict(carrier)}
    try:
        job = Job.create(
            RUNNER, args=args, connection=conn, id=store.task_id(wid, p.index, 0),
            timeout=node.timeout or settings.job_timeout, result_ttl=settings.result_ttl,
            failure_ttl=settings.failure_ttl, meta=meta, status=JobStatus.DEFERRED,
            description=f"{node.func or ' '.join(node.command or ())} [workflow {workflow.name} / {node.id}]",
            on_success=Callback(ON_SUCCESS), on_failure=Callback(ON_FAILURE),
        )
        fields = job.to_dict()
    except Exception as exc:
        raise WorkflowError(f"invalid workflow: task {node.id!r}: arguments cannot be serialised "
                            f"({type(exc).__name__}: {exc})") from None
    retries, intervals = _retry_fields(node, settings)
    fields.update(origin=p.queue, status=JobStatus.DEFERRED.value, retries_left=retries,
                  retry_intervals=json.dumps(intervals))
    fields.pop("enqueued_at", None)
    return {k: v for k, v in fields.items() if v != "" and k not in _DEFAULT_FIELDS}


#: Fields RQ reads as their default when absent (dropped from the template: less to write per child).
_DEFAULT_FIELDS = ("success_callback_timeout", "failure_callback_timeout", "stopped_callback_timeout")


def _callback_job(conn: Redis, wid: str, kind: str, path: str, queue: str, settings: Settings) -> dict[str, Any]:
    job = Job.create(path, args=(wid,), connection=conn, id=f"{wid}-cb-{kind}", timeout=settings.job_timeout,
                     result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl,
                     meta={"workflow": wid, "callback": kind}, status=JobStatus.DEFERRED,
                     description=f"{path} [workflow callback on {kind}]")
    fields = job.to_dict()
    fields.update(origin=queue, status=JobStatus.DEFERRED.value, retries_left=0)
    return fields


def prepare(workflow: Workflow | Mapping[str, Any], settings: Settings) -> tuple[Workflow, dict[str, Any]]:
    """Parse (when a dict) and validate; the workflow and its canonical dict form. WorkflowError if invalid."""
    wf = definition.from_dict(workflow) if isinstance(workflow, Mapping) else workflow
    if isinstance(wf.name, str) and len(wf.name) > MAX_NAME:
        raise WorkflowError(f"invalid workflow: name is longer than {MAX_NAME} characters")
    definition.validate(wf, settings.queues)
    return wf, definition.to_dict(wf)


def submit_workflow(
    workflow: Workflow | Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    connection: Redis | None = None,
    settings: Settings | None = None,
) -> Submitted:
    """Validate and submit ``workflow`` (a ``Workflow`` or its dict form); nothing is written if invalid.

    ``idempotency_key``: the same key within ``JOBFLEET_IDEMPOTENCY_TTL`` returns the same workflow;
    reusing it with a different definition (``fingerprint``, default: of the canonical definition) raises
    IdempotencyConflict. Raises WorkflowError (a SubmitError) naming the node and problem when invalid.
    """
    settings = settings or load_settings()
    wf, spec = prepare(workflow, settings)
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 200):
        raise SubmitError("idempotency key must be a string of 1..200 characters")
    conn = connection if connection is not None else redis_connection(settings)
    fp = fingerprint or definition.fingerprint(spec)
    nodes = compile_graph(wf)
    wid = uuid.uuid4().hex
    with tracing.producer_span(wf.queue, wid, f"workflow {wf.name}") as carrier:
        templates = [_template(conn, wid, p, wf.nodes[p.index], wf, carrier, settings) for p in nodes]
        callbacks = {kind: _callback_job(conn, wid, kind, path, wf.queue, settings)
                     for kind, path in (("success", wf.on_success), ("failure", wf.on_failure), ("end", wf.on_end))
                     if path}
        if idempotency_key is None:
            with conn.pipeline(transaction=True) as pipe:
                _write(pipe, wid, wf, spec, nodes, templates, callbacks, fp, settings)
                _execute(conn, pipe, wid)
            return Submitted(wid, "queued", True)
        key = IDEMPOTENCY_PREFIX + idempotency_key
        while True:
            with conn.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    existing = pipe.get(key)
                    if existing is not None:
                        found = _existing(conn, existing, fp)
                        if found is not None:
                            return found
                    pipe.multi()
                    _write(pipe, wid, wf, spec, nodes, templates, callbacks, fp, settings)
                    pipe.set(key, f"{wid}:{fp}", ex=settings.idempotency_ttl)
                    _execute(conn, pipe, wid)
                    return Submitted(wid, "queued", True)
                except WatchError:
                    continue


def _existing(conn: Redis, raw: Any, fp: str) -> Submitted | None:
    value = raw.decode() if isinstance(raw, bytes) else str(raw)
    wid, _, stored_fp = value.partition(":")
    if stored_fp != fp:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request body")
    status = store.read_status(conn, wid)
    return None if status is None else Submitted(wid, status["status"], False)


def _write(pipe: Any, wid: str, wf: Workflow, spec: dict[str, Any], nodes: list[NodePlan],
           templates: list[dict[str, Any]], callbacks: dict[str, dict[str, Any]], fp: str, settings: Settings) -> None:
    created = time.time()
    total = sum(p.size for p in nodes)
    wkey = store.wf_key(wid)
    cb_queue = f"rq:queue:{wf.queue}"
    pipe.hset(wkey, mapping={
        "id": wid, "name": wf.name, "tenant": wf.tenant or "", "queue": wf.queue, "status": "queued",
        "created_at": repr(created), "started_at": "", "ended_at": "", "total": total, "queued": total,
        "running": 0, "succeeded": 0, "failed": 0, "canceled": 0, "error": "", "nodes": len(nodes),
        "spec": json.dumps(spec), "fingerprint": fp, "cb_qkey": cb_queue, "ttl": settings.workflow_ttl,
        **{f"cb_{kind}": f"{wid}-cb-{kind}" for kind in callbacks},
    })
    pipe.zadd(store.index_key(), {wid: created})
    pipe.zadd(store.index_key("queued"), {wid: created})
    states = plan(nodes, {})
    for p, state, fields in zip(nodes, states, templates, strict=True):
        nkey = store.node_key(wid, p.index)
        pipe.hset(nkey, mapping={
            "id": p.id, "size": p.size, "q": p.size, "r": 0, "s": 0, "f": 0, "c": 0, "left": p.size,
            "gate": state.gate, "pend": int(p.per_child), "seq": int(p.sequential), "pol": p.policy,
            "maxf": p.max_failures, "dall": ",".join(map(str, p.down_all)), "dn2n": ",".join(map(str, p.down_n2n)),
            "qkey": f"rq:queue:{p.queue}", "done": 0, "skip": 0, "bad": 0,
        })
        pipe.hset(f"{wkey}:tpl:{p.index}", mapping=fields)
        if state.pending:
            pipe.hset(f"{wkey}:p:{p.index}", mapping=state.pending)
        ready = "*" if len(state.ready) == p.size else ",".join(map(str, state.ready))
        store.run_script(pipe, "CREATE_NODE", [wid, *store.clock(), p.index, p.size, ready])
    for kind, fields in callbacks.items():
        pipe.hset(f"rq:job:{wid}-cb-{kind}", mapping=fields)


def _execute(conn: Redis, pipe: Any, wid: str) -> None:
    """EXEC; if Redis refused a command inside the transaction, compensate (mark failed, drop its jobs)."""
    try:
        results = pipe.execute(raise_on_error=False)
    except WatchError:
        raise
    except RedisError as exc:
        raise SubmitError(f"workflow not submitted: Redis error {type(exc).__name__}: {exc}") from None
    errors = [r for r in results if isinstance(r, ResponseError)]
    if errors:
        compensate(conn, wid, str(errors[0]))
        raise SubmitError(f"workflow {wid} not submitted (marked failed): Redis refused a write: {errors[0]}")


def compensate(conn: Redis, wid: str, reason: str) -> None:
    """After a partly applied submission: mark the workflow failed and delete its task jobs."""
    nodes = int(conn.hget(store.wf_key(wid), "nodes") or 0)
    with conn.pipeline(transaction=False) as pipe:
        pipe.hset(store.wf_key(wid), mapping={"status": "failed", "error": f"submission failed: {reason}",
                                              "ended_at": repr(time.time()), "queued": 0})
        for n in range(nodes):
            size = int(conn.hget(store.node_key(wid, n), "size") or 0)
            pipe.delete(*[f"rq:job:{store.task_id(wid, n, i)}" for i in range(size)] or ["-"])
        pipe.zrem(store.index_key("queued"), wid)
        pipe.zadd(store.index_key("failed"), {wid: time.time()})
        pipe.execute()


def get_workflow(workflow_id: str, connection: Redis | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Status, counts per state and timestamps of a workflow (O(1)); SubmitError if there is none."""
    conn = connection if connection is not None else redis_connection(settings or load_settings())
    found = store.read_status(conn, workflow_id) if isinstance(workflow_id, str) else None
    if found is None:
        raise SubmitError(f"no workflow with id {workflow_id!r}")
    return found
