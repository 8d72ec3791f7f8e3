"""Crash recovery: jobs left in a StartedJobRegistry by a worker that died are put back on their queue.

A started job is abandoned when its worker is gone (hash expired or marked dead), its worker's heartbeat
or the execution's heartbeat is older than ``worker_ttl``, or its worker no longer lists the execution.
Each abandoned job is re-queued at the front of its queue, using up one retry; with no retry left it goes
to the dead-letter (failed) registry. Every move happens in a WATCHed transaction, so a job that finishes
meanwhile, or that another sweeper handles first, is left alone. No worker needs to listen on the queue.

Jobs stranded in a queue's intermediate list (``rq:queue:<name>:intermediate``: moved there by a dequeue whose
worker died before registering them as started) are put back at the front of their queue, without using up a
retry (they never ran). A job counts as stranded once a sweep has seen it there, unregistered, for longer than
``stranded_after`` seconds; the move back is one Lua script that re-checks the StartedJobRegistry and removes
the id from the intermediate list, so a live worker that registers the job meanwhile keeps it (and a worker
that registers it later finds it gone and skips it: see ``JobfleetWorker.prepare_execution``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.utils import parse_composite_key, utcparse

from jobfleet.logs import log_event
from jobfleet.settings import Settings, load_settings
from observability import metrics

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


# KEYS: intermediate list, queue, started registry, job hash, first-seen marker; ARGV: job id, its MATCH pattern.
# Returns 1 re-queued, 0 no longer in the intermediate list, -1 registered as started, -2 job hash gone.
_RETURN_STRANDED = """
local cursor = '0'
repeat
  local reply = redis.call('ZSCAN', KEYS[3], cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
  cursor = reply[1]
  if #reply[2] > 0 then return -1 end
until cursor == '0'
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[5])
if redis.call('EXISTS', KEYS[4]) == 0 then return -2 end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def find_stranded(connection: Redis, queue: Queue, stranded_after: float) -> list[str]:
    """Ids in ``queue``'s intermediate list, not started, first seen there over ``stranded_after`` s ago.

    A job seen for the first time only gets its first-seen mark (RQ's ``IntermediateQueue.set_first_seen``).
    """
    intermediate = IntermediateQueue(queue.key, connection)
    job_ids = intermediate.get_job_ids()
    if not job_ids:
        return []
    members = connection.zrange(queue.started_job_registry.key, 0, -1)
    started = {parse_composite_key(_text(m))[0] for m in members}
    stranded = []
    for job_id in job_ids:
        if job_id in started or intermediate.set_first_seen(job_id):
            continue
        first_seen = intermediate.get_first_seen(job_id)
        if first_seen is not None and time.time() - first_seen.timestamp() > stranded_after:
            stranded.append(job_id)
    return stranded


def return_stranded(connection: Redis, queue: Queue, job_id: str) -> bool:
    """Atomically move a stranded job from the intermediate list back to the FRONT of its queue."""
    intermediate = IntermediateQueue(queue.key, connection)
    keys = [intermediate.key, queue.key, queue.started_job_registry.key, Job.key_for(job_id),
            intermediate.get_first_seen_key(job_id)]
    outcome = int(connection.eval(_RETURN_STRANDED, len(keys), *keys, job_id, f"{_glob_escape(job_id)}:*"))
    if outcome == 1:
        log_event("job_recovered", level=30, job_id=job_id, queue=queue.name, outcome="requeued",
                  reason="stranded in the intermediate list (worker died after dequeue)")
    elif outcome == -2:
        log_event("stranded_job_dropped", level=30, job_id=job_id, queue=queue.name, reason="job hash is gone")
    return outcome == 1


def sweep_stranded(connection: Redis, queue: Queue, stranded_after: float) -> list[str]:
    """Return every stranded job of ``queue``'s intermediate list to the front of the queue; their ids."""
    return [job_id for job_id in find_stranded(connection, queue, stranded_after)
            if return_stranded(connection, queue, job_id)]


def sweep_abandoned(
    connection: Redis, queue_names: Sequence[str] | None = None, settings: Settings | None = None
) -> list[str]:
    """Re-queue jobs whose worker died (mid-job, or between dequeue and start); returns their ids.

    Jobs abandoned mid-job use up a retry (with none left they go to the DLQ instead); jobs stranded in an
    intermediate list do not, since they never started.
    """
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
        stranded = sweep_stranded(connection, queue, settings.stranded_after)
        recovered += stranded
        count += len(stranded)
        if count:
            metrics.record_recovered(name, count)
    return recovered
