"""Dead-letter queue = RQ's FailedJobRegistry per queue (traceback kept): list and re-queue its jobs.

A re-queued job goes to the back of its original queue with its retry counter as it was (normally 0),
so it gets one more attempt; it lands in the registry again if that attempt fails too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from jobfleet.errors import DeadLetterError
from jobfleet.logs import log_event


@dataclass(frozen=True)
class DeadJob:
    """One job in a dead-letter registry."""

    job_id: str
    queue: str
    function: str
    error: str
    ended_at: datetime | None


def known_queues(connection: Redis) -> list[str]:
    """Names of every queue RQ knows about."""
    return sorted(q.name for q in Queue.all(connection=connection))


def _queue(connection: Redis, name: str) -> Queue:
    queues = known_queues(connection)
    if name not in queues:
        raise DeadLetterError(f"unknown queue {name!r}; known queues: {', '.join(queues) or '(none)'}")
    return Queue(name, connection=connection)


def list_failed(connection: Redis, queue: str | None = None) -> list[DeadJob]:
    """Dead-lettered jobs of ``queue`` (default: every queue), oldest first."""
    names = [_queue(connection, queue).name] if queue else known_queues(connection)
    out = []
    for name in names:
        registry = FailedJobRegistry(name, connection=connection)
        ids = registry.get_job_ids()
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=connection), strict=True):
            if job is None:
                continue
            result = job.latest_result()
            error = (result.exc_string if result else None) or ""
            last_line = error.strip().splitlines()[-1] if error.strip() else ""
            out.append(DeadJob(job_id, name, job.func_name or "?", last_line, job.ended_at))
    return out


def requeue_failed(connection: Redis, job_id: str) -> Job:
    """Put one dead-lettered job back on its queue; DeadLetterError if it is unknown or not dead-lettered."""
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        raise DeadLetterError(f"no job with id {job_id!r}") from None
    registry = FailedJobRegistry(job.origin, connection=connection)
    try:
        registry.requeue(job)
    except InvalidJobOperation:
        raise DeadLetterError(
            f"job {job_id!r} is not in the dead-letter registry of queue {job.origin!r} "
            f"(status: {job.get_status(refresh=True)})"
        ) from None
    log_event("job_requeued", job_id=job_id, queue=job.origin, function=job.func_name, outcome="requeued",
              reason="dead-letter requeue")
    return job


def requeue_all(connection: Redis, queue: str) -> list[str]:
    """Put every dead-lettered job of ``queue`` back on it; returns their ids. DeadLetterError if unknown queue."""
    registry = FailedJobRegistry(_queue(connection, queue).name, connection=connection)
    requeued = []
    for job_id in registry.get_job_ids():
        try:
            requeue_failed(connection, job_id)
        except DeadLetterError:
            continue  # expired or requeued by someone else meanwhile
        requeued.append(job_id)
    return requeued
