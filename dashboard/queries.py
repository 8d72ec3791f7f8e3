"""Read side of the dashboard: queue counts, job pages, job details and workers, straight from RQ's keys.

Every query is bounded: counts are LLEN/ZCARD per queue (O(queues), pipelined), job pages are
LRANGE/ZRANGE slices, and nothing ever walks the keyspace (no KEYS, no SCAN over jobs).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import JOB_ID_PATTERN, Job, JobStatus
from rq.queue import Queue
from rq.registry import (
    BaseRegistry,
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.utils import utcparse

from dashboard.errors import ApiError
from jobfleet.progress import PROGRESS_KEY
from jobfleet.worker_registry import WORKER_PREFIX, worker_instances

#: Job states a page of jobs can be listed for, in display order.
STATES = ("queued", "started", "scheduled", "deferred", "finished", "failed", "canceled")

_REGISTRIES: dict[str, type[BaseRegistry]] = {
    "started": StartedJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "deferred": DeferredJobRegistry,
    "finished": FinishedJobRegistry,
    "failed": FailedJobRegistry,
    "canceled": CanceledJobRegistry,
}
# Newest first where recency matters (registries are scored by expiry = end time + TTL).
_NEWEST_FIRST = {"finished", "failed", "canceled"}
#: RQ accepts any queue name; the dashboard only bounds its length and refuses control characters.
MAX_QUEUE_NAME = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_REPR = 2000


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC text of a datetime (``None`` stays ``None``)."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def text(value: Any) -> str:
    """``value`` as str (Redis replies are bytes)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _short_repr(value: Any, limit: int = _MAX_REPR) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the page
        text = f"<unrepresentable {type(value).__name__}: {exc}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_safe(value: Any) -> Any:
    """``value`` made JSON-serialisable (unknown objects become their repr)."""
    return json.loads(json.dumps(value, default=_short_repr))


def known_queues(connection: Redis, configured: tuple[str, ...]) -> list[str]:
    """Configured queues (in priority order) followed by any other queue RQ has registered."""
    registered = sorted(
        text(key)[len(Queue.redis_queue_namespace_prefix) :]
        for key in connection.smembers(Queue.redis_queues_keys)
    )
    return list(configured) + [name for name in registered if name not in configured]


def require_queue(connection: Redis, configured: tuple[str, ...], name: str) -> str:
    """``name`` if it is a known queue, else a 404 (400 when it cannot be a queue name at all).

    Any name RQ accepts works (spaces, slashes, non-ASCII); only empty, over-long or control-character
    names are refused as malformed.
    """
    if not name or len(name) > MAX_QUEUE_NAME or _CONTROL.search(name):
        raise ApiError(400, f"invalid queue name {name[:80]!r}: 1-{MAX_QUEUE_NAME} characters, no control characters")
    if name not in known_queues(connection, configured):
        raise ApiError(404, f"unknown queue {name!r}")
    return name


def require_job_id(job_id: str) -> str:
    """``job_id`` if it is a syntactically valid RQ job id, else a 400."""
    if len(job_id) > 200 or not JOB_ID_PATTERN.fullmatch(job_id):
        raise ApiError(400, f"invalid job id {job_id[:80]!r}: letters, digits, _ and - only")
    return job_id


def fetch_job(connection: Redis, job_id: str) -> Job:
    """The job ``job_id`` or a 404 saying it does not exist (or has expired)."""
    require_job_id(job_id)
    if not connection.exists(Job.key_for(job_id)):
        raise ApiError(404, f"unknown job {job_id!r} (never existed or its data has expired)")
    return Job.fetch(job_id, connection=connection)


def _registry(state: str, queue: str, connection: Redis) -> BaseRegistry:
    return _REGISTRIES[state](queue, connection=connection)


def queue_stats(connection: Redis, configured: tuple[str, ...], now: float | None = None) -> list[dict[str, Any]]:
    """Per queue: counts in every state and the age of the job at the head of the queue (two round trips)."""
    names = known_queues(connection, configured)
    now = time.time() if now is None else now
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.llen(Queue.redis_queue_namespace_prefix + name)
        pipe.lindex(Queue.redis_queue_namespace_prefix + name, 0)
        for state in _REGISTRIES:
            pipe.zcard(_registry(state, name, connection).key)
    raw = pipe.execute()
    width = 2 + len(_REGISTRIES)
    heads: list[str | None] = []
    stats: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        row = raw[i * width : (i + 1) * width]
        entry: dict[str, Any] = {"name": name, "queued": int(row[0])}
        entry.update({state: int(count) for state, count in zip(_REGISTRIES, row[2:], strict=True)})
        stats.append(entry)
        heads.append(text(row[1]) if row[1] is not None else None)
    pipe = connection.pipeline(transaction=False)
    for head in heads:
        if head is not None:
            pipe.hget(Job.key_for(head), "enqueued_at")
    enqueued = iter(pipe.execute())
    for entry, head in zip(stats, heads, strict=True):
        age: float | None = None
        if head is not None:
            stamp = next(enqueued)
            if stamp:
                try:
                    age = max(0.0, now - utcparse(text(stamp)).timestamp())
                except ValueError:
                    age = None
        entry["oldest_queued_age"] = round(age, 3) if age is not None else None
    return stats


@dataclass(frozen=True)
class Page:
    """One page of job ids in a queue state."""

    total: int
    ids: list[str]


def scheduled_times(connection: Redis, queue: str, ids: list[str]) -> dict[str, str | None]:
    """When each of ``ids`` is due to run (the ScheduledJobRegistry score), as ISO text; ``None`` if not scheduled."""
    key = ScheduledJobRegistry(queue, connection=connection).key
    pipe = connection.pipeline(transaction=False)
    for job_id in ids:
        pipe.zscore(key, job_id)
    return {
        job_id: iso(datetime.fromtimestamp(float(score), tz=UTC)) if score is not None else None
        for job_id, score in zip(ids, pipe.execute(), strict=True)
    }


def job_ids_page(connection: Redis, queue: str, state: str, offset: int, limit: int) -> Page:
    """``limit`` job ids from ``offset`` of ``queue`` in ``state`` (a list or registry range), with the total."""
    if state not in STATES:
        raise ApiError(400, f"unknown state {state!r}: expected one of {', '.join(STATES)}")
    if state == "queued":
        key = Queue.redis_queue_namespace_prefix + queue
        pipe = connection.pipeline(transaction=False)
        pipe.llen(key)
        pipe.lrange(key, offset, offset + limit - 1)
        total, ids = pipe.execute()
        return Page(int(total), [text(i) for i in ids])
    registry = _registry(state, queue, connection)
    pipe = connection.pipeline(transaction=False)
    pipe.zcard(registry.key)
    pipe.zrange(registry.key, offset, offset + limit - 1, desc=state in _NEWEST_FIRST)
    total, entries = pipe.execute()
    ids = list(dict.fromkeys(registry.parse_job_id(text(e)) for e in entries))  # started: job_id:execution_id
    return Page(int(total), ids)


def status_text(job: Job, *, refresh: bool = False) -> str:
    """The job's status as plain text (``queued``, ``failed``...)."""
    status = job.get_status(refresh=refresh)
    if isinstance(status, JobStatus):
        return status.value
    return text(status) if status else "unknown"


def _func_name(job: Job) -> str:
    try:
        return job.func_name or "?"
    except Exception as exc:  # undecodable payload (e.g. a class the dashboard cannot import)
        return f"<undecodable job data: {type(exc).__name__}>"


def _latest_result(job: Job) -> Result | None:
    try:
        return job.latest_result()
    except Exception:
        return None


def _exception_summary(exc_string: str | None) -> str | None:
    if not exc_string:
        return None
    lines = [line for line in exc_string.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def job_summary(job: Job, *, with_exception: bool = False) -> dict[str, Any]:
    """A short description of a job for lists."""
    summary: dict[str, Any] = {
        "id": job.id,
        "status": status_text(job),
        "queue": job.origin,
        "func": _func_name(job),
        "enqueued_at": iso(job.enqueued_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
        "progress": json_safe(job.meta.get(PROGRESS_KEY)) if isinstance(job.meta, dict) else None,
    }
    if with_exception:
        result = _latest_result(job)
        summary["exception"] = _exception_summary(result.exc_string if result else None)
    return summary


def jobs_page(connection: Redis, queue: str, state: str, offset: int, limit: int) -> dict[str, Any]:
    """A page of job summaries; ids whose job data has expired are reported as ``missing``."""
    page = job_ids_page(connection, queue, state, offset, limit)
    jobs = Job.fetch_many(page.ids, connection=connection)
    items: list[dict[str, Any]] = []
    for job_id, job in zip(page.ids, jobs, strict=True):
        if job is None:
            items.append({"id": job_id, "status": "missing", "queue": queue})
        else:
            items.append(job_summary(job, with_exception=state == "failed"))
    if state == "scheduled":
        due = scheduled_times(connection, queue, page.ids)
        for item in items:
            item["scheduled_for"] = due.get(item["id"])
    return {"queue": queue, "state": state, "offset": offset, "limit": limit, "total": page.total, "jobs": items}


def job_detail(connection: Redis, job_id: str) -> dict[str, Any]:
    """Everything the dashboard shows about one job."""
    job = fetch_job(connection, job_id)
    detail = job_summary(job)
    try:
        args_repr, kwargs_repr = _short_repr(tuple(job.args)), _short_repr(job.kwargs)
    except Exception as exc:
        args_repr = kwargs_repr = f"<undecodable job data: {type(exc).__name__}>"
    result = _latest_result(job)
    detail.update(
        {
            "description": job.description,
            "args": args_repr,
            "kwargs": kwargs_repr,
            "meta": json_safe(job.meta or {}),
            "created_at": iso(job.created_at),
            "timeout": job.timeout,
            "retries_left": job.retries_left,
            "number_of_retries": job.number_of_retries,
            "retry_intervals": job.retry_intervals,
            "worker_name": job.worker_name or None,
            "dependency_ids": job._dependency_ids or [],
            "result": None,
            "exception": None,
            "result_type": result.type.name.lower() if result else None,
            "executions": [
                {"type": r.type.name.lower(), "created_at": iso(r.created_at)} for r in _results(job)
            ],
        }
    )
    if detail["status"] == "scheduled" and job.origin:
        detail["scheduled_for"] = scheduled_times(connection, job.origin, [job.id])[job.id]
    if result is not None:
        if result.type == Result.Type.SUCCESSFUL:
            detail["result"] = _short_repr(result.return_value)
        elif result.exc_string:
            detail["exception"] = result.exc_string
    return detail


def _results(job: Job) -> list[Result]:
    try:
        return job.results()[:20]
    except Exception:
        return []


def _iso_text(raw: Any) -> str | None:
    try:
        return iso(utcparse(text(raw))) if raw else None
    except ValueError:
        return text(raw)


def workers(connection: Redis) -> list[dict[str, Any]]:
    """Live workers: name, state (and since when), current job, queues, instance, heartbeat, job counters."""
    found = worker_instances(connection)
    pipe = connection.pipeline(transaction=False)
    for worker in found:
        pipe.hmget(WORKER_PREFIX + worker.name, "hostname", "birth", "successful_job_count", "failed_job_count")
    extra = pipe.execute()
    rows = []
    for worker, (hostname, birth, succeeded, failed) in zip(found, extra, strict=True):
        rows.append(
            {
                "name": worker.name,
                "state": worker.state,
                "state_since": worker.state_since,
                "current_job": worker.current_job_id,
                "queues": list(worker.queues),
                "instance_id": worker.instance_id,
                "hostname": text(hostname) if hostname else None,
                "pid": worker.pid,
                "last_heartbeat": iso(worker.last_heartbeat),
                "birth": _iso_text(birth),
                "successful_jobs": int(succeeded or 0),
                "failed_jobs": int(failed or 0),
            }
        )
    return rows
