"""Crash recovery: jobs left in a StartedJobRegistry by a worker that died are put back on their queue.

A started job is abandoned when its worker is gone (hash expired or marked dead), its worker's heartbeat
or the execution's heartbeat is older than ``worker_ttl``, or its worker no longer lists the execution.
Each abandoned job is re-queued at the front of its queue, using up one retry; with no retry left it goes
to the dead-letter (failed) registry. Every move happens in a WATCHed transaction, so a job that finishes
meanwhile, or that another sweeper handles first, is left alone. No worker needs to listen on the queue.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.utils import parse_composite_key, utcparse

from observability import metrics
from worker.logs import log_event
from worker.settings import Settings, load_settings

EXECUTION_KEY = "rq:execution:{0}"
WORKER_KEY = "rq:worker:{0}"


@dataclass(frozen=True)
class Suspect:
    """One started-registry entry and why its job counts as abandoned."""

    queue: str
    member: str
    job_id: str
    worker: str
    reason: str


def find_abandoned(connection: Redis, queue: Queue, stale_after: float) -> list[Suspect]:
    """Entries of ``queue``'s StartedJobRegistry whose worker is dead or no longer runs them."""
    raw = connection.zrange(queue.started_job_registry.key, 0, -1)
    members = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
    if not members:
        return []
    pipe = connection.pipeline(transaction=False)
    for member in members:
        pipe.hgetall(EXECUTION_KEY.format(member))
    executions = pipe.execute()
    workers = sorted({(e.get(b"worker_name") or b"").decode() for e in executions if e} - {""})
    pipe = connection.pipeline(transaction=False)
    for name in workers:
        pipe.hmget(WORKER_KEY.format(name), "last_heartbeat", "death")
        pipe.smembers(f"{WORKER_KEY.format(name)}:executions")
    replies = pipe.execute()
    worker_state = {name: (replies[2 * i], replies[2 * i + 1]) for i, name in enumerate(workers)}
    now = time.time()
    suspects = []
    for member, execution in zip(members, executions, strict=True):
        job_id, _ = parse_composite_key(member)
        worker = (execution.get(b"worker_name") or b"").decode() if execution else ""
        reason = _abandon_reason(member, execution, worker_state.get(worker), now, stale_after)
        if reason:
            suspects.append(Suspect(queue.name, member, job_id, worker, reason))
    return suspects


def _abandon_reason(
    member: str, execution: dict[bytes, bytes], worker: tuple[list[bytes | None], set[bytes]] | None,
    now: float, stale_after: float,
) -> str | None:
    if not execution:
        return "execution record expired"
    if worker is None:
        return "worker unknown"
    (heartbeat, death), listed = worker
    if heartbeat is None:
        return "worker gone"
    if death is not None:
        return "worker registered its death"
    if now - utcparse(heartbeat.decode()).timestamp() > stale_after:
        return "worker heartbeat expired"
    if now - float(execution.get(b"last_heartbeat", b"0")) > stale_after:
        return "execution heartbeat expired"
    if member.encode() not in listed:
        return "worker no longer runs it"
    return None


def requeue_abandoned(connection: Redis, queue: Queue, suspect: Suspect, default_retries: int) -> str | None:
    """Move one abandoned job back to its queue (or to the DLQ when out of retries); return what happened."""
    registry_key = queue.started_job_registry.key
    with connection.pipeline() as pipe:
        try:
            job_key = Job.key_for(suspect.job_id)
            pipe.watch(registry_key, job_key)
            if pipe.zscore(registry_key, suspect.member) is None:
                return None
            try:
                job = Job.fetch(suspect.job_id, connection=connection, serializer=queue.serializer)
            except NoSuchJobError:
                pipe.multi()
                pipe.zrem(registry_key, suspect.member)
                pipe.execute()
                return None
            if job.get_status(refresh=False) != JobStatus.STARTED:
                pipe.multi()
                pipe.zrem(registry_key, suspect.member)
                pipe.execute()
                return None
            retries_left = default_retries if job.retries_left is None else job.retries_left
            pipe.multi()
            pipe.zrem(registry_key, suspect.member)
            pipe.delete(EXECUTION_KEY.format(suspect.member))
            pipe.srem(f"{WORKER_KEY.format(suspect.worker)}:executions", suspect.member)
            pipe.lrem(queue.intermediate_queue_key, 0, suspect.job_id)
            message = f"job {suspect.job_id} abandoned on worker {suspect.worker or '?'} ({suspect.reason})"
            if retries_left > 0:
                job.retries_left = retries_left - 1
                job.started_at = None
                queue._enqueue_job(job, pipeline=pipe, at_front=True)
                outcome = "requeued"
            else:
                record_job_failure(job, f"AbandonedJobError: {message}; no retries left", pipe)
                outcome = "dead-lettered"
            pipe.execute()
        except WatchError:
            return None  # it finished, or another sweeper took it
    log_event("job_recovered", level=30, job_id=suspect.job_id, queue=queue.name, outcome=outcome,
              reason=suspect.reason, worker=suspect.worker, retries_left=job.retries_left)
    return outcome


def sweep_abandoned(
    connection: Redis, queue_names: Sequence[str] | None = None, settings: Settings | None = None
) -> list[str]:
    """Re-queue jobs whose worker died; returns their ids (jobs out of retries go to the DLQ instead)."""
    settings = settings or load_settings()
    names = list(queue_names) if queue_names else [q.name for q in Queue.all(connection=connection)]
    recovered: list[str] = []
    for name in names:
        queue = Queue(name, connection=connection)
        count = 0
        for suspect in find_abandoned(connection, queue, float(settings.worker_ttl)):
            if requeue_abandoned(connection, queue, suspect, settings.retry_max) == "requeued":
                recovered.append(suspect.job_id)
                count += 1
        if count:
            metrics.record_recovered(name, count)
    return recovered
