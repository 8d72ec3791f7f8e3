"""``PoolWorker``: jobfleet's worker in pool mode (``JOBFLEET_EXECUTION=pool``).

The worker process claims jobs in batches (``claim_batch``: one round trip moves up to K jobs from the queues
into the StartedJobRegistry), hands them to ONE long-lived executor child (``worker.pool.executor``) over a
pipe, and records the successes in batches (``finish_batch.lua``), all in RQ's data model. It keeps fork
mode's guarantees:

* crash isolation: a job that kills its executor (``os._exit``, segfault, OOM kill) fails (retried by policy)
  with an error saying how the executor died; a new executor takes the remaining jobs;
* timeouts: the job gets a timeout error at its timeout; one that does not stop is killed with its executor
  ``JOBFLEET_POOL_KILL_GRACE`` seconds later and fails the same way;
* warm shutdown (finish what runs, give the not-started claimed jobs back, take nothing new), the shutdown
  deadline and a second signal (stop the executor, put its jobs back at the front of their queues);
* stop-job commands, heartbeats, crash recovery (claimed jobs of a dead worker sit in the started registry
  with its execution records: ``worker.recovery`` re-queues them), Redis outages (back off, keep the
  results in memory, write them once Redis is back), progress, tracing and metrics.

K adapts (``worker.pool.prefetch``): one job when nothing is known, then about 50 ms of work, at most
``JOBFLEET_POOL_PREFETCH``; jobs claimed but not yet handed to the executor are given back when the running
job takes longer than a second, so a long job does not hold short ones other workers could run.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any, cast

from rq import Queue
from rq.command import parse_payload
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.utils import now as utcnow
from rq.worker import DequeueStrategy, WorkerStatus

from jobfleet.logs import log_event
from jobfleet.retry import default_retry
from jobfleet.rq_time import parse_rq_time
from observability import metrics
from worker.pool import bookkeeping, prefetch
from worker.pool.fair_order import FairClaimOrder
from worker.pool.protocol import Done, Handled, Recycle, Run
from worker.pool.supervisor import ExecutorHandle
from worker.priority import aged_first, queue_order
from worker.reliable_queue import ClaimDefaults, ClaimedJob, _drop_waker, _waker, claim_batch
from worker.worker import REDIS_ERRORS, SLOW_BEAT_S, JobfleetWorker

FLUSH_AFTER_S = 0.02  # longest a recorded success waits for its batch
CHECK_EVERY_S = 0.25  # timeouts, long-running jobs, heartbeats
RELEASE_AFTER_S = 1.0  # a job running this long makes the worker give back the claimed jobs it still holds
LARGE_JOB_BYTES = 16384  # a job hash this big waits until the executor has nothing else queued


@dataclass(frozen=True)
class _JobRef:
    """The one attribute of a job that fair-share accounting reads."""

    id: str


@dataclass
class InFlight:
    """A claimed job this worker holds (not yet sent, or sent to the executor and not reported)."""

    seq: int
    claimed: ClaimedJob
    timeout: int
    full: bool


class PoolWorker(JobfleetWorker):
    """Pool execution mode: batched claims and bookkeeping, one long-lived executor child per worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        retry = default_retry(self.settings)
        self.claim_defaults = ClaimDefaults(
            timeout=self.settings.job_timeout,
            retries_left=retry.max if retry is not None else None,
            retry_intervals=json.dumps(retry.intervals) if retry is not None else "[]",
        )
        self.executor: ExecutorHandle | None = None
        self.held: deque[InFlight] = deque()
        self.sent: dict[int, InFlight] = {}
        self.successes: list[bookkeeping.Success] = []
        self.flush_due = 0.0
        self.seq = 0
        self.claimed_total = 0
        self.completed = 0
        self.service_s: float | None = None
        self.async_jobs = False
        self.last_claim_empty = False
        self.next_check = 0.0
        self.next_heartbeat = 0.0
        self.next_maintenance = 0.0
        self._force_stop = False
        self._stop_recorded = False
        self._queue_objects: dict[str, Queue] = {}
        # fair share between tenants (JOBFLEET_FAIRNESS): claim order by tenant score, run seconds accounted
        self.fair_order = FairClaimOrder(self.connection) if self.fair_queue is not None else None
        self.fair_pending: list[tuple[str, str, float]] = []

    # ----- the loop ---------------------------------------------------------------------------------------------

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = None,
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
        max_idle_time: int | None = None,
        with_scheduler: bool = False,
        dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT,
    ) -> bool:
        """Claim, run and record jobs until stopped (or, with ``burst``, until the queues are empty)."""
        self.bootstrap(logging_level, date_format, log_format)
        self._dequeue_strategy = dequeue_strategy
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        metrics.init_queue_series(self.queue_names())
        self.set_state(WorkerStatus.IDLE)
        idle_since = time.monotonic()
        try:
            while True:
                try:
                    if self._backoff:
                        self._sleep_backoff()
                    if self._force_stop:
                        self.stop_now()
                        break
                    busy = self.step(burst, max_jobs)
                    if busy is None:
                        break
                    if busy:
                        idle_since = time.monotonic()
                    elif max_idle_time is not None and time.monotonic() - idle_since > max_idle_time:
                        break
                except REDIS_ERRORS as exc:
                    self._redis_unavailable(exc)
                except SystemExit:
                    raise
                except Exception:
                    self.log.error("Worker %s: found an unhandled exception, quitting...", self.name, exc_info=True)
                    break
        finally:
            self.close_executor()
            self.teardown()
        return bool(self.completed)

    def _sleep_backoff(self) -> None:
        """Wait out the Redis backoff while still reading the executor's replies (it keeps running)."""
        deadline = time.monotonic() + self._backoff
        self._backoff = 0.0
        while not self._force_stop:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.wait_executor(min(left, CHECK_EVERY_S))

    @property
    def in_flight(self) -> int:
        """Jobs this worker holds claimed."""
        return len(self.held) + len(self.sent)

    def step(self, burst: bool, max_jobs: int | None) -> bool | None:
        """One turn: housekeeping, claim, feed, wait for replies, record. None ends the loop."""
        now = time.monotonic()
        if self._stop_requested:
            if not self._stop_recorded:
                self._stop_recorded = True
                self.set_shutdown_requested_date()
            if self.held:  # (again after an outage interrupted it, or after an executor died meanwhile)
                self.give_back(list(self.held), "warm shutdown")
                self.held.clear()
        if now >= self.next_heartbeat:
            self.heartbeat_all()
        if now >= self.next_maintenance:
            self.next_maintenance = now + 1.0
            if not self.in_flight:  # it blocks while the fleet is suspended: only between jobs
                self.check_for_suspension(burst)
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
        batch = prefetch.batch_size(self.service_s, self.async_jobs, self.settings.async_concurrency,
                                    self.settings.pool_prefetch)
        if not self._stop_requested and prefetch.should_claim(self.in_flight, batch, self.async_jobs):
            room = batch - self.in_flight
            if max_jobs is not None:
                room = min(room, max_jobs - self.claimed_total)
            if room > 0:
                self.claim(room)
        self.feed(batch)
        if not self.in_flight:
            self.flush()
            if self.get_state() != WorkerStatus.IDLE:
                self.set_state(WorkerStatus.IDLE)
            if self._stop_requested:
                return None
            if max_jobs is not None and self.claimed_total >= max_jobs:
                return None
            if self.last_claim_empty:
                if burst:
                    return None
                self.wait_for_jobs()
            return False
        self.wait_executor(self.wait_timeout())
        if self.successes and (time.monotonic() >= self.flush_due or not self.sent
                               or len(self.successes) >= max(8, batch // 2)):
            self.flush()
        if time.monotonic() >= self.next_check:
            self.next_check = time.monotonic() + CHECK_EVERY_S
            self.check_running()
        return True

    def wait_timeout(self) -> float:
        """How long to wait for the executor before the next flush or check is due."""
        now = time.monotonic()
        due = self.next_check
        if self.successes:
            due = min(due, self.flush_due)
        return max(0.0, due - now)

    # ----- claiming and feeding -------------------------------------------------------------------------------------

    def claim(self, limit: int) -> None:
        """Claim up to ``limit`` jobs (one round trip) and hold them."""
        ttl = self.job_monitoring_interval + 60
        names = [q.name for q in self._ordered_queues]
        caps = None
        if self.fair_queue is not None:  # strict, or a weighted order drawn for every claim (as fork mode draws)
            fq = self.fair_queue
            names = queue_order(fq.priority_mode, names, fq.priority_weights, fq.rng)
        if self.fair_order is not None:
            base = names
            names = self.fair_order.names(base)
            if self.fair_queue is not None and self.fair_queue.aging > 0:
                ages = self.head_ages({q: self.fair_order.per_queue(q) for q in base})
                names = self.fair_order.names(aged_first(base, ages, self.fair_queue.aging))  # from the cache
            caps = self.fair_order.caps(names)
        claimed = claim_batch(self.connection, names, self.name, limit, ttl, self.claim_defaults,
                              self.default_result_ttl, caps=caps)
        self._redis_available()
        self.last_claim_empty = not claimed
        if not claimed:
            return
        if self.get_state() != WorkerStatus.BUSY:
            self.set_state(WorkerStatus.BUSY)
        for job in claimed:
            self.seq += 1
            self.held.append(InFlight(self.seq, job, job.timeout, job.full_path))
        self.claimed_total += len(claimed)

    def feed(self, batch: int) -> None:
        """Send held jobs to the executor, up to the window (spawning or replacing the executor as needed)."""
        if not self.held or self._stop_requested:
            return
        window = prefetch.window(self.service_s, self.async_jobs, self.settings.async_concurrency, batch)
        while self.held and len(self.sent) < window:
            executor = self.executor
            if executor is None:
                executor = self.executor = ExecutorHandle(self, self.settings.async_concurrency)
                log_event("executor_started", level=10, worker=self.name, pid=executor.pid)
            if executor.retiring:
                return  # the replacement starts once this one has finished its work
            if len(self.held[0].claimed.blob) > LARGE_JOB_BYTES and self.sent:
                return  # sent only to an idle executor, so writing it never blocks this loop on a full pipe
            item = self.held.popleft()
            claimed = item.claimed
            executor.send(Run(item.seq, claimed.job_id, claimed.execution_id, claimed.queue, claimed.attempt,
                              claimed.blob, item.full))
            self.sent[item.seq] = item
            executor.jobs_sent += 1
            if executor.jobs_sent >= self.settings.pool_max_jobs:
                executor.retire()

    def head_ages(self, candidates: dict[str, list[str]]) -> dict[str, float]:
        """Seconds the next job of each queue has waited: the head of the first of its (tenant) queues that
        holds one (two pipelined round trips; aging only)."""
        flat = [name for names in candidates.values() for name in names]
        with self.connection.pipeline(transaction=False) as pipe:
            for name in flat:
                pipe.lindex(f"{Queue.redis_queue_namespace_prefix}{name}", 0)
            heads = dict(zip(flat, pipe.execute(), strict=True))
        first = {q: next((heads[n] for n in names if heads[n]), None) for q, names in candidates.items()}
        picked = [(q, h) for q, h in first.items() if h]
        if not picked:
            return {}
        with self.connection.pipeline(transaction=False) as pipe:
            for _, head in picked:
                pipe.hget(f"rq:job:{head.decode() if isinstance(head, bytes) else head}", "enqueued_at")
            stamps = pipe.execute()
        now = time.time()
        return {q: now - at for (q, _), stamp in zip(picked, stamps, strict=True)
                if (at := parse_rq_time(stamp)) is not None}

    def wait_for_jobs(self) -> None:
        """Idle: block until a listened queue changes (client tracking) or ``dequeue_poll`` passes."""
        keys = [q.key for q in self._ordered_queues]
        waker = _waker(self.connection, keys)
        if waker is None:
            time.sleep(self.settings.dequeue_poll)
            return
        try:
            waker.wait(self.settings.dequeue_poll)
        except OSError:
            _drop_waker(self.connection, keys)
        except REDIS_ERRORS:
            _drop_waker(self.connection, keys)

    # ----- replies ---------------------------------------------------------------------------------------------------

    def wait_executor(self, timeout: float) -> None:
        """Wait up to ``timeout`` for replies; handle them and a dead executor."""
        executor = self.executor
        if executor is None:
            time.sleep(timeout)
            return
        try:
            readable, _, _ = select.select([executor.from_child], [], [], timeout)
        except InterruptedError:
            return
        if not readable:
            return
        for message in executor.read():
            self.on_message(executor, message)
        if executor.dead:
            self.on_executor_end(executor)

    def on_message(self, executor: ExecutorHandle, message: Any) -> None:
        """One reply from the executor."""
        if isinstance(message, Done):
            item = self.sent.pop(message.seq, None)
            if item is None:
                return
            self.async_jobs = message.in_async
            run = message.ended - message.started
            self.service_s = prefetch.ewma(self.service_s, run / self.settings.async_concurrency
                                           if message.in_async else run)
            if not self.successes:
                self.flush_due = time.monotonic() + FLUSH_AFTER_S
            self.successes.append(bookkeeping.Success(
                item.claimed, message.return_value, message.started, message.ended,
                item.claimed.result_ttl, item.claimed.has_dependencies,
            ))
            if self.fair_order is not None and self.fair_order.tenants_present:
                self.fair_pending.append((item.claimed.queue, item.claimed.job_id, run))
            self.completed += 1
        elif isinstance(message, Handled):
            if self.sent.pop(message.seq, None) is not None:
                self.completed += 1
        elif isinstance(message, Recycle):
            log_event("executor_recycled", worker=self.name, pid=executor.pid, reason="memory",
                      rss_mb=round(message.rss_mb, 1), limit_mb=self.settings.pool_max_memory_mb)
            executor.retire()

    def on_executor_end(self, executor: ExecutorHandle) -> None:
        """The executor is gone: fail the jobs that died with it, send the others to the next one."""
        running = executor.slots.running()
        how = executor.reap()
        self.executor = None
        died = [item for item in self.sent.values() if item.seq in running]
        unstarted = [item for item in self.sent.values() if item.seq not in running]
        self.sent.clear()
        self.held.extendleft(reversed(unstarted))
        if executor.retiring and not died and not unstarted and executor.kill_reason is None:
            log_event("executor_replaced", level=10, worker=self.name, pid=executor.pid,
                      jobs=executor.jobs_sent)
            return
        log_event("executor_died", level=30, worker=self.name, pid=executor.pid, how=how,
                  job_ids=[item.claimed.job_id for item in died] or None, resent=len(unstarted))
        self.flush()  # earlier successes first
        for item in died:
            self.record_death(item, how, running[item.seq])

    def record_death(self, item: InFlight, how: str, started: float) -> None:
        """Record a job that died with its executor as a failure (retried or dead-lettered by policy)."""
        claimed = item.claimed
        try:
            job = Job.fetch(claimed.job_id, connection=self.connection, serializer=self.serializer)
        except NoSuchJobError:
            return
        if job.get_status(refresh=False) != JobStatus.STARTED:
            return
        queue = self.queue_object(claimed.queue)
        execution = Execution(claimed.execution_id, job.id, self.connection, worker_name=self.name)
        execution.created_at = datetime.fromtimestamp(started, tz=UTC)
        job.started_at = execution.created_at
        job.ended_at = utcnow()
        self._attempt = claimed.attempt
        if how.startswith("JobTimeoutException"):
            exc_string = how
        else:
            exc_string = (f"WorkHorseTerminated: the executor running job {job.id} died: {how}")
        self.handle_job_failure(job, queue, exc_string=exc_string, execution=execution)

    def queue_object(self, name: str) -> Queue:
        """A cached ``Queue`` for ``name``."""
        queue = self._queue_objects.get(name)
        if queue is None:
            queue = self._queue_objects[name] = Queue(name, connection=self.connection, serializer=self.serializer)
        return queue

    # ----- bookkeeping ----------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Record the pending successes (one round trip); enqueue dependents of those that have some."""
        if not self.successes:
            return
        lost, with_dependents = bookkeeping.record_successes(
            self.connection, self.name, self.key, self.executions_key, self.successes, time.time())
        self.successes = []
        self._redis_available()
        self.account_fair_share()
        for job_id in lost:
            log_event("job_result_dropped", level=30, job_id=job_id, worker=self.name,
                      reason="no longer registered as started by this worker (recovered meanwhile)")
        for job_id in with_dependents:
            try:
                job = Job.fetch(job_id, connection=self.connection, serializer=self.serializer)
                self.queue_object(job.origin).enqueue_dependents(job)
            except Exception:
                self.log.exception("Worker %s: failed to enqueue dependents of job %s", self.name, job_id)

    def account_fair_share(self) -> None:
        """Charge each finished tenant job's run seconds to its tenant (``FairQueue.job_ended``, never raises)."""
        pending, self.fair_pending = self.fair_pending, []
        if self.fair_queue is None:
            return
        for queue_name, job_id, run_s in pending:
            self.fair_queue.job_ended(self.connection, cast(Job, _JobRef(job_id)), self.queue_object(queue_name),
                                      run_s)

    def give_back(self, items: list[InFlight], reason: str) -> None:
        """Put claimed jobs that never started back at the front of their queues."""
        if not items:
            return
        back = bookkeeping.release(self.connection, self.executions_key, [item.claimed for item in items])
        log_event("jobs_released", level=10, worker=self.name, count=back, reason=reason)

    def heartbeat_all(self) -> None:
        """Worker heartbeat plus every claimed job's execution heartbeat, in one pipeline."""
        self.next_heartbeat = time.monotonic() + max(1, self.job_monitoring_interval)
        claimed = [item.claimed for item in self.held] + [item.claimed for item in self.sent.values()]
        began = time.monotonic()
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(pipeline=pipe)
            bookkeeping.heartbeat_executions(pipe, claimed, self.job_monitoring_interval + 60, time.time())
            pipe.execute()
        self._redis_available()
        # Workers sweep for dead workers' jobs themselves, in turns (worker.recovery.Sweeper), as in fork mode.
        if time.monotonic() - began > SLOW_BEAT_S:
            self.sweeper.contact_failed()  # held up: our beat may look late to others; say so
        self.sweeper.tick()

    def check_running(self) -> None:
        """Kill an executor whose job outlived its timeout; give back held jobs behind a long one."""
        executor = self.executor
        if executor is None or executor.dead:
            return
        now = time.time()
        running = executor.slots.running()
        grace = self.settings.pool_kill_grace
        for seq, started in running.items():
            item = self.sent.get(seq)
            if item is not None and item.timeout > 0 and now - started > item.timeout + grace:
                executor.kill(f"JobTimeoutException: job {item.claimed.job_id} exceeded its timeout of "
                              f"{item.timeout} s and did not stop; its executor was killed")
                return
        if self.held and not self.async_jobs and any(now - s > RELEASE_AFTER_S for s in running.values()):
            items = list(self.held)
            self.held.clear()
            self.give_back(items, "a long job is running")

    # ----- commands, signals, shutdown -------------------------------------------------------------------------------

    def running_job_ids(self) -> list[str]:
        """Ids of the jobs the executor is running now."""
        executor = self.executor
        if executor is None:
            return []
        ids = []
        for seq in executor.slots.running():
            for _ in range(3):
                try:
                    item = self.sent.get(seq)
                    break
                except RuntimeError:
                    continue
            else:
                item = None
            if item is not None:
                ids.append(item.claimed.job_id)
        return ids

    def get_current_job_id(self) -> str | None:
        """The job the executor runs now (the first one, with async jobs), None when idle."""
        ids = self.running_job_ids()
        return ids[0] if ids else None

    def handle_payload(self, message: Any) -> None:
        """RQ's worker commands (pubsub thread): stop-job / stop-execution / kill-horse stop the executor."""
        payload = parse_payload(message)
        command = payload.get("command")
        if command == "stop-job":
            self.stop_job(str(payload.get("job_id") or ""))
        elif command == "stop-execution":
            execution_id = str(payload.get("execution_id") or "")
            for item in list(self.sent.values()):
                if item.claimed.execution_id == execution_id:
                    self.stop_job(item.claimed.job_id)
                    return
            self.log.warning("Not running execution %s, command ignored.", execution_id)
        elif command == "kill-horse":
            if self.executor is not None:
                self.executor.kill("killed by a kill-horse command")
        else:
            super().handle_payload(message)

    def stop_job(self, job_id: str) -> None:
        """Stop a running job (its executor is killed; the job ends as STOPPED, never retried)."""
        executor = self.executor
        if job_id and executor is not None and job_id in self.running_job_ids():
            self._stopped_job_id = job_id
            executor.kill(f"stopped by a stop-job command for job {job_id}")
        else:
            self.log.warning("Not working on job %s, command ignored.", job_id)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ's hook for stopping the running job: kill the executor."""
        if self.executor is not None:
            self.executor.kill("killed on request")

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """First SIGTERM/SIGINT: warm shutdown (finish the running jobs, give back the others) with a deadline.

        Only flags are set here; the loop does the Redis work (a signal may arrive in the middle of a write).
        """
        self._shutdown_requested_date = utcnow()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        busy = bool(self.sent)
        log_event("shutdown_requested", worker=self.name, busy=busy, deadline_s=self.settings.shutdown_deadline)
        self._stop_requested = True
        if busy and self._deadline_timer is None:
            self._deadline_timer = threading.Timer(self.settings.shutdown_deadline, self._deadline_reached)
            self._deadline_timer.daemon = True
            self._deadline_timer.start()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Second signal or the deadline: the loop stops the executor and re-queues its jobs, then exits 0."""
        if (not self._deadline_hit and self._shutdown_requested_date is not None
                and (utcnow() - self._shutdown_requested_date).total_seconds() < 1):
            return  # RQ's rule: a duplicate signal within a second is the same request
        self._force_stop = True

    def stop_now(self) -> None:
        """Forced stop: kill the executor, record what it finished, put every other held job back in front."""
        executor = self.executor
        running: set[int] = set()
        if executor is not None:
            running = set(executor.slots.running())
            executor.kill("stopped by a forced shutdown")
            while not executor.dead:
                for message in executor.read():
                    self.on_message(executor, message)
            executor.reap()
            self.executor = None
        self.flush()
        interrupted = [item for item in self.sent.values() if item.seq in running]
        items = [*self.sent.values(), *self.held]
        self.sent.clear()
        self.held.clear()
        self.give_back(items, "forced shutdown")
        for item in interrupted:
            metrics.record_job_finished(item.claimed.queue, "requeued", 0.0, None)
            log_event("job_requeued", level=30, job_id=item.claimed.job_id, queue=item.claimed.queue,
                      worker=self.name, outcome="requeued",
                      reason="deadline" if self._deadline_hit else "second signal")

    def close_executor(self) -> None:
        """At exit: let an idle executor exit, kill a busy one; record what finished if Redis allows."""
        executor = self.executor
        if executor is None:
            return
        with contextlib.suppress(*REDIS_ERRORS):
            if self.sent or self.held:
                self.stop_now()
                return
        executor.retire()
        deadline = time.monotonic() + 5
        while not executor.dead and time.monotonic() < deadline:
            if select.select([executor.from_child], [], [], 0.1)[0]:
                for message in executor.read():
                    self.on_message(executor, message)
        if not executor.dead:
            executor.kill("worker exit")
        executor.reap()
        self.executor = None
        with contextlib.suppress(*REDIS_ERRORS):
            self.flush()
