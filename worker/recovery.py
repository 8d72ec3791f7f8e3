"""Crash recovery: jobs left in a StartedJobRegistry by a worker that died are put back on their queue.

Liveness is judged per worker, never with one fleet-wide timeout:

- a **jobfleet worker** publishes its heartbeat period in its hash (field ``jf_heartbeat_s``); it is dead
  once its own heartbeat, or its execution's, is older than ``period * MISSED_BEATS + DEADLINE_MARGIN_S``
  (7.5 s with the default 2 s period);
- a **plain RQ worker** publishes nothing; it is dead only when RQ itself says so: its hash expired (RQ sets
  its TTL to the heartbeat interval + 60 s at every beat), it registered its death, or the execution record
  expired (TTL ``job_monitoring_interval`` + 60 s). Its heartbeat age is never used: a plain worker beats
  only every ``--job-monitoring-interval`` while busy (30 s by default; RQ 3 ``Worker.maintain_heartbeats``).

Heartbeats cannot arrive while Redis is unreachable, so ages are measured from the latest of: the heartbeat,
the moment Redis last (re)started (``INFO server`` uptime), the last end of an outage that any worker or
sweeper saw (``CONTACT_KEY``), and this sweeper's own reconnection (a :class:`Sweeper` that saw a failure or a
gap between its calls). Expiry-based rules (plain workers, vanished hashes) wait ``RQ_MARGIN_S`` after such
a moment too. A live worker is therefore never declared dead because Redis was away.

Each abandoned job is re-queued at the front of its queue, using up one retry; with no retry left it goes
to the dead-letter (failed) registry. Every move happens in a WATCHed transaction, so a job that finishes
meanwhile, or that another sweeper handles first, is left alone. No worker needs to listen on the queue.

Jobs stranded in a queue's intermediate list (``rq:queue:<name>:intermediate``: moved there by a dequeue whose
worker died before registering them as started) are put back at the front of their queue, without using up a
retry (they never ran). A job counts as stranded once a sweep has seen it there, unregistered, for longer than
``stranded_after`` seconds; the move back is one Lua script that re-checks the StartedJobRegistry and removes
the id from the intermediate list, so a live worker that registers the job meanwhile keeps it (and a worker
that registers it later finds it gone and skips it: see ``JobfleetWorker.prepare_execution``).

Who sweeps: every jobfleet worker calls :meth:`Sweeper.tick` at each heartbeat; a Redis lock
(``SWEEP_LOCK_KEY``) lets one sweep run per ``JOBFLEET_RECOVERY_INTERVAL`` fleet-wide. The autoscaler and
``python -m worker sweep`` sweep too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
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
HEARTBEAT_FIELD = "jf_heartbeat_s"
"""Worker-hash field where a jobfleet worker publishes its heartbeat period (seconds)."""
CONTACT_KEY = "jobfleet:redis:contact_restored"
"""Unix time at which some worker or sweeper last saw Redis answer again after an outage."""
SWEEP_LOCK_KEY = "jobfleet:recovery:lock"
MISSED_BEATS = 3
DEADLINE_MARGIN_S = 1.5
RQ_MARGIN_S = 60.0
"""RQ's own margin: worker hashes and execution records expire 60 s after the beat that was due."""
MAX_READ_S = 1.0
"""A sweep whose reads take longer than this judges nothing (Redis stalled: heartbeats may be late too)."""
SLOW_BEAT_S = 2.0
"""A worker whose heartbeat took longer than this reports an outage (``CONTACT_KEY``): its beat arrived late."""
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)


def heartbeat_deadline(period: float) -> float:
    """Seconds without a heartbeat after which a worker that beats every ``period`` s is dead."""
    return period * MISSED_BEATS + DEADLINE_MARGIN_S


@dataclass(frozen=True)
class Suspect:
    """One started-registry entry and why its job counts as abandoned."""

    queue: str
    member: str
    job_id: str
    worker: str
    reason: str


@dataclass(frozen=True)
class WorkerView:
    """What the sweep read about one worker: its hash (None when gone) and the executions it lists."""

    heartbeat: float | None
    death: bool
    period: float | None
    executions: frozenset[str]


def abandon_reason(
    member: str, execution: dict[bytes, bytes], worker: WorkerView | None, now: float, vouched_since: float
) -> str | None:
    """Why the started entry ``member`` is abandoned, or None while its worker may still run it (pure).

    ``vouched_since`` is the latest moment from which Redis is known to have been reachable without a break;
    no age counts from before it.
    """
    expiry_trusted = now - vouched_since > RQ_MARGIN_S
    if not execution:
        return "execution record expired" if expiry_trusted else None
    if worker is None:
        return "worker gone" if expiry_trusted else None
    if worker.death:
        return "worker registered its death"
    if worker.heartbeat is None:
        return "worker gone" if expiry_trusted else None
    if worker.period is None:  # a plain RQ worker: only RQ's own expiry says it is dead
        if member not in worker.executions and expiry_trusted:
            return "worker no longer runs it"
        return None
    deadline = heartbeat_deadline(worker.period)
    if now - max(worker.heartbeat, vouched_since) > deadline:
        return "worker heartbeat expired"
    if now - max(float(execution.get(b"last_heartbeat", b"0")), vouched_since) > deadline:
        return "execution heartbeat expired"
    if member not in worker.executions:
        return "worker no longer runs it"
    return None


def _worker_view(fields: list[bytes | None], executions: set[bytes]) -> WorkerView | None:
    heartbeat, death, period = fields
    if heartbeat is None and death is None:
        return None
    try:
        published = float(period) if period is not None else None
    except ValueError:
        published = None
    return WorkerView(
        heartbeat=utcparse(heartbeat.decode()).timestamp() if heartbeat is not None else None,
        death=death is not None,
        period=published if published and published > 0 else None,
        executions=frozenset(m.decode() for m in executions),
    )


def vouched_since(connection: Redis, own_contact_since: float | None = None) -> float:
    """Latest known start of uninterrupted Redis reachability: restart, outage end seen by anyone, or ours."""
    pipe = connection.pipeline(transaction=False)
    pipe.info("server")
    pipe.get(CONTACT_KEY)
    info, marker = pipe.execute()
    now = time.time()
    moments = [now - float(info.get("uptime_in_seconds", 0)), own_contact_since or 0.0]
    if marker is not None:
        with contextlib.suppress(ValueError):
            moments.append(float(marker))
    return max(moments)


_MAX_SET = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end
return 0
"""


def record_contact_restored(connection: Redis, at: float | None = None) -> None:
    """Tell every sweeper that Redis was unreachable until ``at`` (default now): ages restart from there."""
    connection.eval(_MAX_SET, 1, CONTACT_KEY, repr(at if at is not None else time.time()), 3600)


def find_abandoned(connection: Redis, queue: Queue, own_contact_since: float | None = None) -> list[Suspect]:
    """Entries of ``queue``'s StartedJobRegistry whose worker is dead or no longer runs them.

    Ages are taken at the moment the reads began, and nothing is judged when the reads took longer than
    ``MAX_READ_S`` (Redis stalled meanwhile: heartbeats may have been held up as well).
    """
    began = time.time()
    raw = connection.zrange(queue.started_job_registry.key, 0, -1)
    members = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
    if not members:
        return []
    vouched = vouched_since(connection, own_contact_since)
    pipe = connection.pipeline(transaction=False)
    for member in members:
        pipe.hgetall(EXECUTION_KEY.format(member))
    executions = pipe.execute()
    workers = sorted({(e.get(b"worker_name") or b"").decode() for e in executions if e} - {""})
    pipe = connection.pipeline(transaction=False)
    for name in workers:
        pipe.hmget(WORKER_KEY.format(name), "last_heartbeat", "death", HEARTBEAT_FIELD)
        pipe.smembers(f"{WORKER_KEY.format(name)}:executions")
    replies = pipe.execute()
    views = {name: _worker_view(replies[2 * i], replies[2 * i + 1]) for i, name in enumerate(workers)}
    if time.time() - began > MAX_READ_S:
        log_event("sweep_skipped", level=30, queue=queue.name, reason="redis answered slowly: heartbeats may be late")
        return []
    now = began
    suspects = []
    for member, execution in zip(members, executions, strict=True):
        job_id, _ = parse_composite_key(member)
        worker = (execution.get(b"worker_name") or b"").decode() if execution else ""
        reason = abandon_reason(member, execution, views.get(worker), now, vouched)
        if reason:
            suspects.append(Suspect(queue.name, member, job_id, worker, reason))
    return suspects


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
    connection: Redis, queue_names: Sequence[str] | None = None, settings: Settings | None = None,
    own_contact_since: float | None = None,
) -> list[str]:
    """Re-queue jobs whose worker died (mid-job, or between dequeue and start); returns their ids.

    Jobs abandoned mid-job use up a retry (with none left they go to the DLQ instead); jobs stranded in an
    intermediate list do not, since they never started. ``own_contact_since``: when the caller last saw Redis
    come back after a failure (see :class:`Sweeper`).
    """
    settings = settings or load_settings()
    names = list(queue_names) if queue_names else [q.name for q in Queue.all(connection=connection)]
    recovered: list[str] = []
    for name in names:
        queue = Queue(name, connection=connection)
        count = 0
        for suspect in find_abandoned(connection, queue, own_contact_since):
            if requeue_abandoned(connection, queue, suspect, settings.retry_max) == "requeued":
                recovered.append(suspect.job_id)
                count += 1
        stranded = sweep_stranded(connection, queue, settings.stranded_after)
        recovered += stranded
        count += len(stranded)
        if count:
            metrics.record_recovered(name, count)
    return recovered


class Sweeper:
    """Sweeps now and then from a long-running process, remembering when its own Redis contact broke.

    Call :meth:`tick` after every successful Redis round trip (a worker: at each heartbeat) and
    :meth:`contact_failed` after a failed one. A gap of more than ``gap_limit`` seconds between ticks also
    counts as a break (calls were blocked, or this process was stalled). After a break the sweeper publishes
    the end of the outage (``CONTACT_KEY``) so that every sweeper measures ages from there. At most one
    sweep per ``interval`` runs fleet-wide (``SWEEP_LOCK_KEY``).
    """

    def __init__(
        self, connection: Redis, settings: Settings, queue_names: Sequence[str] | None = None,
        interval: float | None = None, gap_limit: float | None = None,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.queue_names = list(queue_names) if queue_names else None
        self.interval = float(interval if interval is not None else settings.recovery_interval)
        self.gap_limit = gap_limit if gap_limit is not None else 2 * max(self.interval, settings.heartbeat_interval) + 1
        self.contact_since: float | None = None
        self._last_ok: float | None = None
        self._broken = False
        self._next_try = 0.0

    def contact_failed(self) -> None:
        """A Redis call failed: the next successful tick starts a new period of contact."""
        self._broken = True

    def tick(self, force: bool = False) -> list[str] | None:
        """Note a successful contact; sweep when due and this process wins the lock. Ids recovered, or None."""
        now = time.time()
        if self._broken or (self._last_ok is not None and now - self._last_ok > self.gap_limit):
            self.contact_since = now
            self._broken = False
            try:
                record_contact_restored(self.connection, now)
            except REDIS_ERRORS:
                self._broken = True
                return None
        self._last_ok = now
        if not force and now < self._next_try:
            return None
        self._next_try = now + self.interval
        try:
            lock_ms = max(1, int(self.interval * 1000 * 0.9))
            if not force and not self.connection.set(SWEEP_LOCK_KEY, "1", nx=True, px=lock_ms):
                return None
            return sweep_abandoned(self.connection, self.queue_names, self.settings, self.contact_since)
        except REDIS_ERRORS:
            self._broken = True
            return None
        except Exception as exc:  # a sweep must never take its host process down
            log_event("sweep_failed", level=40, error=f"{type(exc).__name__}: {exc}")
            return None
