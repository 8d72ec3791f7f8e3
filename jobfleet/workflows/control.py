"""Operator actions on a running or ended workflow: retry (re-run failed and stuck tasks) and cancel."""

from __future__ import annotations

import json
import time
from collections.abc import Set
from typing import Any

from redis import Redis
from redis.exceptions import WatchError
from rq.job import JobStatus

from jobfleet.errors import SubmitError
from jobfleet.workflows import definition, store
from jobfleet.workflows.state import compile_graph, plan

LIVE_JOB_STATES = {JobStatus.STARTED.value, JobStatus.QUEUED.value, JobStatus.SCHEDULED.value}


def cancel_workflow(conn: Redis, wid: str) -> dict[str, Any]:
    """Cancel queued tasks and stop running ones; the workflow ends ``canceled`` (409-worthy if ended)."""
    status, stopped = store.cancel(conn, wid)
    if status == "gone":
        raise SubmitError(f"no workflow with id {wid!r}")
    return {"id": wid, "status": status, "stopped": stopped}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def retry_workflow(conn: Redis, wid: str) -> dict[str, Any]:
    """Re-run every task that did not succeed (failed, canceled, skipped, or stuck: marked running but its
    RQ job is no longer queued or started) and what they blocked; succeeded tasks are kept."""
    wkey = store.wf_key(wid)
    skey = f"{wkey}:st"
    while True:
        with conn.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(wkey, skey)
                raw_spec = pipe.hget(wkey, "spec")
                if raw_spec is None:
                    raise SubmitError(f"no workflow with id {wid!r}")
                spec = json.loads(raw_spec)
                workflow = definition.from_dict(spec)
                nodes = compile_graph(workflow)
                states = {_text(k): _text(v) for k, v in pipe.hgetall(skey).items()}
                running = [f for f, s in states.items() if s == "r"]
                job_status = _job_states(conn, wid, running)
                live = {f for f in running if job_status.get(f) in LIVE_JOB_STATES}
                done: dict[int, set[int]] = {}
                for f, s in states.items():
                    if s == "s":
                        n, i = (int(x) for x in f.split(":"))
                        done.setdefault(n, set()).add(i)
                # live running tasks are not done: their dependents keep waiting for them, and their own
                # END (state 'r' is kept) releases those dependents; they are not pushed again either.
                plans = plan(nodes, done)
                succeeded = sum(1 for s in states.values() if s == "s")
                total = sum(p.size for p in nodes)
                to_run = [(p.index, i) for p, st in zip(nodes, plans, strict=True) for i in st.ready
                          if f"{p.index}:{i}" not in live]
                queued_jobs = _job_states(conn, wid, [f"{n}:{i}" for n, i in to_run])
                in_queue = {f for f, v in queued_jobs.items() if v == JobStatus.QUEUED.value}
                old_status = _text(pipe.hget(wkey, "status") or b"")
                new_status = "running" if succeeded or live else "queued"
                if total - succeeded == 0:
                    return {"id": wid, "status": old_status, "requeued": 0}
                pipe.multi()
                pipe.hset(wkey, mapping={
                    "status": new_status, "ended_at": "", "error": "", "succeeded": succeeded,
                    "running": len(live), "queued": total - succeeded - len(live), "failed": 0, "canceled": 0,
                })
                created = float(conn.hget(wkey, "created_at") or time.time())
                if old_status != new_status:
                    pipe.zrem(store.index_key(old_status), wid)
                    pipe.zadd(store.index_key(new_status), {wid: created})
                pipe.persist(wkey)  # an ended workflow's record had a TTL (JOBFLEET_WORKFLOW_TTL)
                pipe.delete(skey)
                keep: dict[Any, Any] = {f: s for f, s in states.items() if s == "s" or f in live}
                if keep:
                    pipe.hset(skey, mapping=keep)
                for p, st in zip(nodes, plans, strict=True):
                    ok = len([1 for f, s in keep.items() if s == "s" and f.startswith(f"{p.index}:")])
                    run = len([1 for f in live if f.startswith(f"{p.index}:")])
                    pipe.persist(store.node_key(wid, p.index))
                    pipe.persist(f"{wkey}:tpl:{p.index}")
                    pipe.hset(store.node_key(wid, p.index), mapping={
                        "q": p.size - ok - run, "r": run, "s": ok, "f": 0, "c": 0, "left": p.size - ok,
                        "gate": st.gate, "done": int(ok == p.size), "skip": 0, "bad": 0,
                    })
                    pkey = f"{wkey}:p:{p.index}"
                    pipe.delete(pkey)
                    pending: dict[Any, Any] = dict(st.pending)
                    if pending:
                        pipe.hset(pkey, mapping=pending)
                    _reset_jobs(pipe, wid, p.index, p.size, keep.keys() | in_queue, p.queue)
                now_iso, _ = store.clock()
                by_queue: dict[str, list[str]] = {}
                for n, i in to_run:
                    job_id = store.task_id(wid, n, i)
                    if f"{n}:{i}" in in_queue:
                        continue  # still sitting in its queue from before
                    pipe.hset(f"rq:job:{job_id}", mapping={"status": "queued", "enqueued_at": now_iso})
                    by_queue.setdefault(nodes[n].queue, []).append(job_id)
                for queue, ids in by_queue.items():
                    for start in range(0, len(ids), 1000):
                        pipe.rpush(f"rq:queue:{queue}", *ids[start:start + 1000])
                    pipe.sadd("rq:queues", f"rq:queue:{queue}")
                pipe.execute()
                return {"id": wid, "status": new_status, "requeued": total - succeeded - len(live)}
            except WatchError:
                continue


def _job_states(conn: Redis, wid: str, fields: list[str]) -> dict[str, str | None]:
    """RQ status of the jobs of task fields ``<node>:<index>`` (one pipelined round trip)."""
    if not fields:
        return {}
    with conn.pipeline(transaction=False) as reads:
        for f in fields:
            n, i = (int(x) for x in f.split(":"))
            reads.hget(f"rq:job:{store.task_id(wid, n, i)}", "status")
        values = reads.execute()
    return {f: (None if v is None else _text(v)) for f, v in zip(fields, values, strict=True)}


def _reset_jobs(pipe: Any, wid: str, n: int, size: int, keep: Set[str], queue: str) -> None:
    """Every task of node ``n`` that will run again: out of RQ's ended registries, back to deferred, with
    its template's retries (a job hash that expired meanwhile is recreated from the template)."""
    tpl_key = f"{store.wf_key(wid)}:tpl:{n}"
    for i in range(size):
        if f"{n}:{i}" in keep:
            continue
        job_id = store.task_id(wid, n, i)
        for registry in ("failed", "finished", "canceled", "stopped"):
            pipe.zrem(f"rq:{registry}:{queue}", job_id)
        pipe.eval(_COPY_TEMPLATE, 2, tpl_key, f"rq:job:{job_id}")


_COPY_TEMPLATE = """
local tpl = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(tpl))
return 1
"""
