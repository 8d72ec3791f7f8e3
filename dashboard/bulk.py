"""Bulk actions in the background: requeue every failed job of a queue, empty a queue, with progress.

A task's state lives in a Redis hash (``jobfleet:dashboard:task:<id>``, kept a day), so any request
(or another dashboard process) can poll it. One task per queue at a time: starting one while another
runs on the same queue returns the running one. Each task covers a snapshot taken when it starts
(the failed ids, or the queue's length), worked through in chunks with progress written per chunk.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry

from dashboard.errors import ApiError
from dashboard.queries import iso, text
from jobfleet.errors import DeadLetterError
from jobfleet.logs import log_event
from worker import dlq

TASK_PREFIX = "jobfleet:dashboard:task:"
LOCK_PREFIX = "jobfleet:dashboard:bulk-lock:"
TASK_TTL = 86_400
CHUNK = 200
_REPORT_SKIPPED = 1000
_INTS = ("total", "done", "requeued", "deleted")


def _now() -> str | None:
    return iso(datetime.now(UTC))


def task_state(connection: Redis, task_id: str) -> dict[str, Any]:
    """The task's progress, or a 404."""
    raw = connection.hgetall(TASK_PREFIX + task_id) if len(task_id) <= 64 else {}
    if not raw:
        raise ApiError(404, f"unknown task {task_id[:80]!r} (never started or older than a day)")
    fields = {text(k): text(v) for k, v in raw.items()}
    state: dict[str, Any] = dict(fields)
    for name in _INTS:
        state[name] = int(fields.get(name, 0))
    state["skipped"] = json.loads(fields.get("skipped", "[]"))
    state["error"] = fields.get("error") or None
    state["ended_at"] = fields.get("ended_at") or None
    return state


def _write(connection: Redis, task_id: str, **fields: Any) -> None:
    values: dict[Any, Any] = {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in fields.items()}
    pipe = connection.pipeline(transaction=False)
    pipe.hset(TASK_PREFIX + task_id, mapping=values)
    pipe.expire(TASK_PREFIX + task_id, TASK_TTL)
    pipe.execute()


def _requeue_failed(connection: Redis, queue: str, task_id: str) -> None:
    registry = FailedJobRegistry(queue, connection=connection)
    ids = [registry.parse_job_id(text(e)) for e in connection.zrange(registry.key, 0, -1)]
    _write(connection, task_id, total=len(ids))
    requeued, skipped = 0, list[str]()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        pipe = connection.pipeline(transaction=False)
        for job_id in chunk:
            pipe.exists(Job.key_for(job_id))
        for job_id, exists in zip(chunk, pipe.execute(), strict=True):
            if not exists:
                if len(skipped) < _REPORT_SKIPPED:
                    skipped.append(job_id)
                continue
            try:
                dlq.requeue_failed(connection, job_id)
            except DeadLetterError:
                continue  # requeued by someone else meanwhile, or expired between the check and the move
            requeued += 1
        _write(connection, task_id, done=min(start + CHUNK, len(ids)), requeued=requeued, skipped=skipped)


def _empty(connection: Redis, queue: str, task_id: str) -> None:
    key = Queue.redis_queue_namespace_prefix + queue
    total = int(connection.llen(key))
    _write(connection, task_id, total=total)
    deleted = 0
    while deleted < total:  # LPOP takes each id atomically: a job is either run by a worker or deleted here
        ids = connection.lpop(key, min(CHUNK, total - deleted)) or []
        if not ids:
            break
        pipe = connection.pipeline(transaction=False)
        for raw in ids:
            job_id = text(raw)
            pipe.delete(Job.key_for(job_id), Job.dependents_key_for(job_id), Job.key_for(job_id) + ":dependencies")
        pipe.execute()
        deleted += len(ids)
        _write(connection, task_id, done=deleted, deleted=deleted)
    _write(connection, task_id, done=deleted, total=max(total, deleted))


_KINDS: dict[str, Callable[[Redis, str, str], None]] = {"requeue-failed": _requeue_failed, "empty": _empty}


def start(connection: Redis, kind: str, queue: str) -> dict[str, Any]:
    """Start ``kind`` on ``queue`` in a thread (or return the task already running there); its state."""
    work = _KINDS[kind]
    task_id = uuid.uuid4().hex
    lock = LOCK_PREFIX + queue
    if not connection.set(lock, task_id, nx=True, ex=3600):
        running = connection.get(lock)
        if running is not None and connection.exists(TASK_PREFIX + text(running)):
            return task_state(connection, text(running))
        connection.set(lock, task_id, ex=3600)
    _write(connection, task_id, id=task_id, kind=kind, queue=queue, state="running", total=0, done=0,
           requeued=0, deleted=0, skipped=[], error="", started_at=_now(), ended_at="")
    log_event("dashboard_bulk_started", task=task_id, kind=kind, queue=queue)

    def run() -> None:
        try:
            work(connection, queue, task_id)
            _write(connection, task_id, state="done", ended_at=_now())
        except Exception as exc:  # reported through the task, never lost in a thread
            _write(connection, task_id, state="failed", error=f"{type(exc).__name__}: {exc}"[:500], ended_at=_now())
        finally:
            if text(connection.get(lock) or b"") == task_id:
                connection.delete(lock)
            state = task_state(connection, task_id)
            log_event("dashboard_bulk_ended", task=task_id, kind=kind, queue=queue, state=state["state"],
                      done=state["done"], total=state["total"])

    threading.Thread(target=run, name=f"bulk-{kind}-{task_id[:8]}", daemon=True).start()
    return task_state(connection, task_id)
