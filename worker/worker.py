"""``JobfleetWorker``: RQ's forking ``Worker`` plus the policies jobfleet needs.

Added on top of RQ: instance id and ``state_since`` in the worker hash, a default retry policy with
exponential backoff and jitter, permanent (never retried) exceptions, a default timeout whose error names
the job, a warm-shutdown deadline after which the running job is put back on its queue, fast execution
heartbeats for crash recovery, structured logs, tracing spans and Prometheus metrics. A Redis outage never
ends the work loop: the worker logs each failed attempt, backs off (capped) and resumes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker, worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DequeueTimeout, StopRequested
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import clean_registries
from rq.scheduler import RQScheduler
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty
from rq.utils import as_text
from rq.utils import now as utcnow
from rq.worker import DequeueStrategy, WorkerStatus

from jobfleet import tracing
from jobfleet.logs import configure_logging, log_event
from jobfleet.retry import default_retry
from jobfleet.settings import Settings, load_settings
from observability import metrics
from worker import fair_queue
from worker.instance_id import resolve_instance_id
from worker.recovery import HEARTBEAT_FIELD, SLOW_BEAT_S, Sweeper, sweep_stranded
from worker.reliable_queue import ReliableQueue
from worker.retry_policy import is_permanent, resolve_exception_types

ATTEMPT_FIELD = "jf_attempt"
PR_SET_PDEATHSIG = 1
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)  # ReadOnlyError: a failover demoted it


class JobLost(Exception):
    """The dequeued job left its intermediate list before this worker registered it (recovery re-queued it)."""


def die_with_parent(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (no-op where unsupported)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


class JobTimeoutPenalty(UnixSignalDeathPenalty):
    """SIGALRM job timeout whose error message names the job and the limit."""

    def __init__(self, timeout: Any, exception: Any = JobTimeoutException, **kwargs: Any) -> None:
        super().__init__(timeout, exception, **kwargs)
        self._job_id = kwargs.get("job_id")

    def handle_death_penalty(self, signum: int, frame: FrameType | None) -> None:
        """Raise the timeout exception (called on SIGALRM)."""
        if self._job_id:
            raise self._exception(f"job {self._job_id} exceeded its timeout of {self._timeout} s")
        raise self._exception(f"exceeded the timeout of {self._timeout} s")


class JobfleetScheduler(RQScheduler):
    """RQ's scheduler process, which also stops when its worker dies (even by SIGKILL)."""

    def work(self) -> None:
        """Run the scheduler loop."""
        die_with_parent(signal.SIGTERM)
        super().work()


class JobfleetWorker(Worker):
    """RQ ``Worker`` (a forked work horse per job) with jobfleet's retry, shutdown and recovery policies."""

    death_penalty_class = JobTimeoutPenalty

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        self.settings = settings or load_settings()
        kwargs.setdefault("worker_ttl", self.settings.worker_ttl)
        kwargs.setdefault("default_result_ttl", self.settings.result_ttl)
        kwargs.setdefault("maintenance_interval", 60)
        kwargs.setdefault("job_monitoring_interval", self.settings.heartbeat_interval)
        # Reliable dequeue: every job moves atomically into its queue's intermediate list (see ReliableQueue).
        # Fair share between tenants and weighted priorities: the same move, chosen by one script (FairQueue).
        fair = fair_queue.uses_fair_queue(self.settings)
        kwargs.setdefault("queue_class", fair_queue.fair_queue_class(self.settings) if fair else ReliableQueue)
        ReliableQueue.poll_interval = self.settings.dequeue_poll
        super().__init__(*args, **kwargs)
        # Heartbeats (idle and busy) every heartbeat period, published in the hash: see worker.recovery.
        self.job_monitoring_interval = max(1, int(self.job_monitoring_interval))
        self.fair_queue = fair_queue.attach(self.queue_class, self.name)  # None unless a FairQueue
        # a fair worker's sweeps cover every queue: its tenant queues (q~t) appear at run time
        self.sweeper = Sweeper(self.connection, self.settings, None if self.fair_queue else self.queue_names())
        self.permanent_errors = resolve_exception_types(self.settings.permanent_errors)
        self.instance_id: str | None = None
        self.state_since = time.time()
        self._attempt = 1
        self._failure_exc: BaseException | None = None
        self._outcome: str | None = None
        self._running: tuple[Job, Queue] | None = None
        self._deadline_timer: threading.Timer | None = None
        self._deadline_hit = False
        self._redis_failures = 0
        self._redis_down_since: float | None = None
        self._backoff = 0.0
        self._unsettled: tuple[Job, Queue] | None = None

    # ----- work loop: survives Redis outages ----------------------------------------------------------

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
        """RQ's work loop, except that losing Redis does not end it: it backs off (capped) and resumes."""
        self.bootstrap(logging_level, date_format, log_format)
        self._dequeue_strategy = dequeue_strategy
        completed_jobs = 0
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        try:
            while True:
                try:
                    if self._backoff:
                        time.sleep(self._backoff)
                        self._backoff = 0.0
                    if self._unsettled is not None:
                        self.settle_interrupted(*self._unsettled)
                        self._unsettled = None
                    self.check_for_suspension(burst)
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()
                    if self._stop_requested:
                        self.log.info("Worker %s: stopping on request", self.name)
                        break
                    timeout = None if burst else self.dequeue_timeout
                    result = self.dequeue_job_and_maintain_ttl(timeout, max_idle_time)
                    if result is None:
                        break
                    job, queue = result
                    self._unsettled = (job, queue)  # until its outcome is recorded
                    self.execute_job(job, queue)
                    self._unsettled = None
                    self.heartbeat()
                    completed_jobs += 1
                    if max_jobs is not None and completed_jobs >= max_jobs:
                        break
                except REDIS_ERRORS as exc:
                    self._redis_unavailable(exc)
                except StopRequested:
                    break
                except SystemExit:
                    raise
                except Exception:
                    self.log.error("Worker %s: found an unhandled exception, quitting...", self.name, exc_info=True)
                    break
        finally:
            self.teardown()
        return bool(completed_jobs)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's dequeue with heartbeats (via ``queue_class.dequeue_any``); Redis errors go up to ``work()``."""
        self.set_state(WorkerStatus.IDLE)
        self.procline("Listening on " + ",".join(self.queue_names()))
        idle_since = time.monotonic()
        while True:
            self.heartbeat()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
            wait = timeout
            if timeout is not None and max_idle_time is not None:
                idle_left = math.ceil(max_idle_time - (time.monotonic() - idle_since))
                if idle_left <= 0:
                    return None
                wait = min(timeout, idle_left)
            try:
                result = self.queue_class.dequeue_any(
                    self._ordered_queues, wait, connection=self.connection, job_class=self.job_class,
                    serializer=self.serializer, death_penalty_class=self.death_penalty_class,
                )
            except DequeueTimeout:
                continue
            if result is not None:
                job, queue = result
                self.reorder_queues(reference_queue=queue)
                job.redis_server_version = self.get_redis_server_version()
                self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
            self.heartbeat()
            return result

    def settle_interrupted(self, job: Job, queue: Queue) -> None:
        """After Redis went away mid-job, put the job back at the front of its queue unless it has an outcome."""
        registry_key = queue.started_job_registry.key
        with self.connection.pipeline() as pipe:
            try:
                pipe.watch(job.key, registry_key, queue.key)
                raw = pipe.hget(job.key, "status")
                status = as_text(raw) if raw is not None else None
                if status not in (JobStatus.STARTED, JobStatus.QUEUED):
                    return  # finished, failed or scheduled for a retry: the horse recorded it; or deleted
                if status == JobStatus.QUEUED and pipe.lpos(queue.key, job.id) is not None:
                    return  # already back on its queue
                raw_members: list[Any] = list(pipe.zrange(registry_key, 0, -1))
                members = [m for m in (as_text(r) for r in raw_members) if m.startswith(f"{job.id}:")
                           and as_text(pipe.hget(f"rq:execution:{m}", "worker_name") or b"") == self.name]
                if status == JobStatus.STARTED and not members:
                    return  # recovery re-queued it and another worker runs it now
                fresh = Job.fetch(job.id, connection=self.connection, serializer=self.serializer)
                pipe.multi()
                for member in members:
                    pipe.zrem(registry_key, member)
                    pipe.delete(f"rq:execution:{member}")
                    pipe.srem(self.executions_key, member)
                pipe.lrem(queue.intermediate_queue_key, 0, job.id)
                fresh.started_at = None
                queue._enqueue_job(fresh, pipeline=pipe, at_front=True)
                pipe.execute()
            except WatchError:
                return  # changed meanwhile (a sweep or the horse got there first)
        metrics.record_job_finished(queue.name, "requeued", 0.0, None)
        log_event("job_requeued", level=30, **self._job_fields(fresh, queue), outcome="requeued",
                  reason="redis outage")

    @property
    def dequeue_timeout(self) -> int:
        """An idle worker beats as often as a busy one (RQ's default: ``worker_ttl - 15`` s)."""
        return self.job_monitoring_interval

    @property
    def heartbeat_period(self) -> int:
        """Longest gap between two heartbeats of this worker, published as ``jf_heartbeat_s``."""
        return max(self.job_monitoring_interval, self.dequeue_timeout)

    def _redis_unavailable(self, exc: BaseException) -> None:
        """Log one failed attempt and schedule the next after an exponential, capped backoff."""
        self.sweeper.contact_failed()
        if self._redis_down_since is None:
            self._redis_down_since = time.monotonic()
        self._redis_failures += 1
        self._backoff = min(self.settings.redis_backoff_cap, 0.5 * 2 ** min(self._redis_failures - 1, 16))
        log_event("redis_unavailable", level=40, worker=self.name, attempt=self._redis_failures,
                  retry_in_s=round(self._backoff, 2), error=f"{type(exc).__name__}: {exc}")

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat; when sent directly and it succeeds, Redis is reachable again."""
        began = time.monotonic()
        super().heartbeat(timeout, pipeline)
        if pipeline is None and not self.is_horse:
            self._redis_available()
            if time.monotonic() - began > SLOW_BEAT_S:
                self.sweeper.contact_failed()  # held up: our beat may look late to others; say so
            self.sweeper.tick()

    def _redis_available(self) -> None:
        """Called after a Redis round trip succeeded: log the end of an outage, if there was one."""
        if self._redis_down_since is not None:
            log_event("redis_reconnected", worker=self.name, attempts=self._redis_failures,
                      outage_s=round(time.monotonic() - self._redis_down_since, 2))
        self._redis_failures = 0
        self._redis_down_since = None

    # ----- registration and state -------------------------------------------------------------------------

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """Configure logs and tracing, then register (with ``instance_id`` and ``state_since``)."""
        configure_logging(self.settings)
        tracing.configure_tracing("jobfleet-worker")
        super().bootstrap(*args, **kwargs)
        log_event("worker_started", worker=self.name, instance_id=self.instance_id, queues=self.queue_names())

    def register_birth(self) -> None:
        """Register the worker and record which instance it runs on."""
        self.instance_id = resolve_instance_id(self.settings)
        super().register_birth()
        self.state_since = time.time()
        self.connection.hset(self.key, mapping={"instance_id": self.instance_id, "state_since": self.state_since,
                                                HEARTBEAT_FIELD: self.heartbeat_period})

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """Set the state; when it changes, also ``state_since`` (and the busy gauge)."""
        changed = state != self._state
        super().set_state(state, pipeline)
        if changed:
            self.state_since = time.time()
            target = pipeline if pipeline is not None else self.connection
            target.hset(self.key, "state_since", self.state_since)
            if state in (WorkerStatus.BUSY, WorkerStatus.IDLE):
                metrics.set_busy(state == WorkerStatus.BUSY)

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO", *args: Any) -> None:
        """Start RQ's scheduler (it runs retries with a backoff) in a process that dies with this one."""
        self.scheduler = JobfleetScheduler(
            self.queues, connection=self.connection, logging_level=logging_level or "WARNING",
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()

    # ----- running a job (parent side) ---------------------------------------------------------------------

    def apply_defaults(self, job: Job) -> None:
        """Give a job without its own timeout or retry policy the configured defaults (saved to Redis)."""
        changes: dict[Any, Any] = {}
        if job.timeout is None:
            job.timeout = self.settings.job_timeout
            changes["timeout"] = job.timeout
        if job.retries_left is None:
            retry = default_retry(self.settings)
            if retry is not None:
                job.retries_left = retry.max
                job.retry_intervals = retry.intervals
                changes["retries_left"] = retry.max
                changes["retry_intervals"] = json.dumps(retry.intervals)
        if changes:
            self.connection.hset(job.key, mapping=changes)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Claim the job (register it as started), apply defaults, count the attempt, then fork a work horse
        and watch it: RQ's ``Worker.execute_job`` with the claim first, so a lost claim runs nothing."""
        began = time.monotonic()
        try:
            execution = self.prepare_execution(job)
        except JobLost:
            log_event("job_skipped", level=30, job_id=job.id, queue=queue.name, worker=self.name,
                      reason="recovery put it back on its queue before this worker registered it")
            if self.fair_queue is not None:
                self.fair_queue.job_ended(self.connection, job, queue, 0.0)
            return
        self.apply_defaults(job)
        self._attempt = int(self.connection.hincrby(job.key, ATTEMPT_FIELD, 1))
        self._running = (job, queue)
        try:
            self.fork_work_horse(job, queue)
            self.monitor_work_horse(job, queue, execution)
            self.set_state(WorkerStatus.IDLE)
        finally:
            self._running = None
            if self.fair_queue is not None:  # run seconds served to the job's tenant
                self.fair_queue.job_ended(self.connection, job, queue, time.monotonic() - began)

    def prepare_execution(self, job: Job) -> Execution:
        """Register the execution (StartedJobRegistry) and take the job out of its intermediate list in ONE
        transaction, so a crash leaves it in exactly one of them; raise ``JobLost`` (after undoing the
        registration) when the job was no longer in the list because recovery had already put it back."""
        intermediate = IntermediateQueue(Queue(job.origin, connection=self.connection).key, self.connection)
        with self.connection.pipeline() as pipe:
            pipe.lrem(intermediate.key, 1, job.id)
            pipe.delete(intermediate.get_first_seen_key(job.id))
            execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipe, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            claimed = pipe.execute()[0]
        if not claimed:
            with self.connection.pipeline() as pipe:
                execution.delete(job=job, pipeline=pipe)
                pipe.execute()
            self.executions.pop(execution.id, None)
            self.set_state(WorkerStatus.IDLE)
            raise JobLost(job.id)
        return execution

    def clean_registries(self) -> None:
        """RQ's registry maintenance, but with jobfleet's stranded-job recovery instead of RQ's intermediate
        list cleanup (which fails such jobs after a minute instead of putting them back on their queue)."""
        tenants = fair_queue.tenant_queues(self.connection, self.queues, self.queue_class) if self.fair_queue else []
        for queue in self.queues + tenants:
            if queue.acquire_maintenance_lock():
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                sweep_stranded(self.connection, queue, self.settings.stranded_after)
                queue.release_maintenance_lock()
        self.last_cleaned_at = utcnow()  # type: ignore[assignment]  # RQ annotates it as None

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        """RQ's heartbeats while a horse runs; while Redis is away, log and keep watching the horse."""
        began = time.monotonic()
        try:
            super().maintain_heartbeats(job, execution)
        except REDIS_ERRORS as exc:
            self.sweeper.contact_failed()
            log_event("heartbeat_failed", level=30, worker=self.name, job_id=job.id,
                      error=f"{type(exc).__name__}: {exc}")
            return
        if time.monotonic() - began > SLOW_BEAT_S:
            self.sweeper.contact_failed()
        self.sweeper.tick()

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """Entry point of the forked horse: it is killed if the worker dies (recovery then re-queues the job)."""
        die_with_parent(signal.SIGKILL)
        super().main_work_horse(job, queue)

    # ----- running a job (horse side) ----------------------------------------------------------------------

    def perform_job(self, job: Job, queue: Queue, execution: Any) -> bool:
        """Run the job inside a consumer span; log and count its outcome."""
        self._outcome = None
        self._failure_exc = None
        started = time.monotonic()
        with tracing.consumer_span(job, queue.name, attempt=self._attempt) as span:
            log_event("job_started", **self._job_fields(job, queue))
            ok = super().perform_job(job, queue, execution)
            outcome = "finished" if ok else (self._outcome or "failed")
            tracing.set_outcome(span, outcome, self._failure_exc)
            trace_id = _trace_id(job)
        duration = time.monotonic() - started
        wait = (job.started_at - job.enqueued_at).total_seconds() if job.started_at and job.enqueued_at else None
        metrics.record_job_finished(queue.name, outcome, duration, wait)
        error = f"{type(self._failure_exc).__name__}: {self._failure_exc}" if self._failure_exc else None
        log_event(
            "job_finished", level=20 if ok else 30, **self._job_fields(job, queue), duration_s=round(duration, 4),
            outcome=outcome, trace_id=trace_id, error=error,
        )
        return ok

    def _finalize_failure(
        self,
        job: Job,
        queue: Queue,
        execution: Any,
        exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None],
    ) -> None:
        """Remember the exception so a permanent one is not retried."""
        self._failure_exc = exc_info[1]
        super()._finalize_failure(job, queue, execution, exc_info)

    def handle_job_failure(
        self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "",
        execution: Any = None,
    ) -> None:
        """Retry with backoff unless the error is permanent, retries are used up, or the job was stopped."""
        exc = self._failure_exc if self.is_horse else None
        if exc is not None and is_permanent(type(exc), self.permanent_errors):
            job.retries_left = 0
        stopped = self._stopped_job_id == job.id
        will_retry = job.should_retry and not stopped
        self._outcome = "retried" if will_retry else ("stopped" if stopped else "failed")
        if isinstance(exc, JobTimeoutException) and not stopped:
            self._outcome = "timeout"  # retried or not (retries are counted by jobfleet_job_retries_total)
        if will_retry:
            metrics.record_retry(queue.name)
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if not self.is_horse:  # the horse died without reporting: count and log it here
            metrics.record_job_finished(queue.name, self._outcome, 0.0, None)
            log_event("job_finished", level=30, **self._job_fields(job, queue), outcome=self._outcome,
                      error=exc_string.strip())

    def _job_fields(self, job: Job, queue: Queue) -> dict[str, Any]:
        try:
            function = job.func_name
        except Exception:  # an undeserialisable job still gets a log line
            function = "<unreadable>"
        return {"job_id": job.id, "queue": queue.name, "function": function, "attempt": self._attempt,
                "worker": self.name}

    # ----- shutdown ----------------------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """First SIGTERM/SIGINT: warm shutdown (finish the job, take no new one) with a deadline."""
        log_event("shutdown_requested", worker=self.name, busy=self.get_state() == WorkerStatus.BUSY,
                  deadline_s=self.settings.shutdown_deadline)
        if self.get_state() == WorkerStatus.BUSY and self._deadline_timer is None:
            self._deadline_timer = threading.Timer(self.settings.shutdown_deadline, self._deadline_reached)
            self._deadline_timer.daemon = True
            self._deadline_timer.start()
        super().request_stop(signum, frame)

    def set_shutdown_requested_date(self) -> None:
        """Record the warm-shutdown request; during a Redis outage only log (the signal handler must not fail)."""
        try:
            super().set_shutdown_requested_date()
        except REDIS_ERRORS as exc:
            log_event("shutdown_record_failed", level=30, worker=self.name, error=f"{type(exc).__name__}: {exc}")

    def _deadline_reached(self) -> None:
        self._deadline_hit = True
        os.kill(os.getpid(), signal.SIGTERM)

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Second signal or deadline: stop the running job and put it back on its queue, then exit 0."""
        if not self._deadline_hit and self._shutdown_requested_date is not None:
            from rq.utils import now

            if (now() - self._shutdown_requested_date).total_seconds() < 1:
                return  # RQ's rule: a duplicate signal within a second is the same request
        running = self._running
        if self.horse_pid:
            self.kill_horse()
            self.wait_for_horse()
            self._horse_pid = 0
            if running is not None:
                self.requeue_interrupted(*running)
        raise SystemExit(0)

    def requeue_interrupted(self, job: Job, queue: Queue) -> None:
        """Put a job whose horse was stopped at shutdown back at the front of its queue (not a failure)."""
        fresh = Job.fetch(job.id, connection=self.connection, serializer=self.serializer)
        if fresh.get_status(refresh=False) != JobStatus.STARTED:
            return  # the horse recorded its outcome before it was stopped
        with self.connection.pipeline() as pipe:
            for execution in list(self.executions.values()):
                if execution.job_id == job.id:
                    execution.delete(job=fresh, pipeline=pipe)
                    self.executions.pop(execution.id, None)
            pipe.lrem(queue.intermediate_queue_key, 0, job.id)
            fresh.started_at = None
            queue._enqueue_job(fresh, pipeline=pipe, at_front=True)
            pipe.execute()
        metrics.record_job_finished(queue.name, "requeued", 0.0, None)
        log_event("job_requeued", level=30, **self._job_fields(fresh, queue), outcome="requeued",
                  reason="deadline" if self._deadline_hit else "second signal")

    def teardown(self) -> None:
        """Cancel the deadline timer, then RQ's teardown (stop the scheduler, register death)."""
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        try:
            super().teardown()
        except REDIS_ERRORS as exc:  # the hash expires on its own after worker_ttl
            log_event("teardown_failed", level=30, worker=self.name, error=f"{type(exc).__name__}: {exc}")


def _trace_id(job: Job) -> str | None:
    """Trace id of the current span, else the one in the job's W3C carrier."""
    with contextlib.suppress(Exception):
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return f"{context.trace_id:032x}"
    carrier = job.meta.get("otel") if isinstance(job.meta, dict) else None
    parent = carrier.get("traceparent") if isinstance(carrier, dict) else None
    if isinstance(parent, str) and parent.count("-") == 3:
        return parent.split("-")[1]
    return None
