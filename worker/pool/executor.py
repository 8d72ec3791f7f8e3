"""The executor: a long-lived child of a pool worker that runs many jobs, one ``Run`` message at a time.

Forked from the worker, it shares its imported code and its ``JobfleetWorker`` object (which it uses as RQ's
work horse does). A plain job (no callbacks, repeats, rate limit or webhooks, result TTL > 0: the claim script
decides) runs on the fast path: the function is called under the job's timeout (SIGALRM, so the error names
the job and the limit), inside a consumer span, with structured logs and metrics as in fork mode; its return
value goes back to the parent, which records successes in batches. Anything else — an exception, a returned
``Retry``, a job with callbacks — goes through RQ's own code here (``_finalize_failure``, ``perform_job``),
which writes the outcome itself (retry with backoff, permanent errors, DLQ), as the fork-mode horse does.

``async def`` jobs run concurrently on one event loop (at most ``async_concurrency`` at once); a synchronous
job arriving meanwhile runs in between, blocking the loop while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import resource
import signal
import sys
import time
import zlib
from base64 import b64encode
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from rq import Queue
from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
from rq.executions import Execution
from rq.job import Job, JobStatus, Retry, _current_job
from rq.timeouts import JobTimeoutException
from rq.utils import parse_timeout

from jobfleet import tracing
from jobfleet.logs import LOGGER_NAME, log_event
from observability import metrics
from worker.pool.protocol import EXIT, Done, Handled, Reader, Recycle, Run, SlotTable, send
from worker.reliable_queue import decode_fields

if TYPE_CHECKING:
    from worker.worker import JobfleetWorker

MEMORY_CHECK_EVERY = 32
_PAGE_MB = resource.getpagesize() / (1024 * 1024)


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _parse_time(raw: bytes) -> datetime:
    """RQ's ``utcformat`` timestamp (``...T..:..:..[.ffffff]Z``) as an aware UTC datetime."""
    return datetime.fromisoformat(raw.decode()).replace(tzinfo=UTC)


class Executor:
    """The child's loop. ``run()`` never returns: the process ends with ``os._exit``."""

    def __init__(self, worker: JobfleetWorker, inbox: int, outbox: int, slots: SlotTable) -> None:
        self.worker = worker
        self.reader = Reader(inbox)
        self.outbox = outbox
        self.slots = slots
        self.settings = worker.settings
        self.pending: deque[Any] = deque()
        self.queues: dict[str, Queue] = {}
        self.functions: dict[str, tuple[Callable[..., Any], bool]] = {}
        self.jobs_run = 0
        self.recycle_sent = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.log = logging.getLogger(LOGGER_NAME)
        self.template = dict(Job(connection=worker.connection, serializer=worker.serializer).__dict__)
        self.metric_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    # ----- process --------------------------------------------------------------------------------------------

    def run(self) -> NoReturn:
        """Set the process up as a work horse, then serve ``Run`` messages until ``EXIT`` or the parent leaves."""
        from worker.worker import die_with_parent

        die_with_parent(signal.SIGKILL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when an executor stops
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = 0
        try:
            self.worker._is_horse = True
            self.serve()
        except BaseException:
            self.log.exception("executor crashed")
            code = 1
        finally:
            with contextlib.suppress(Exception):
                tracing.flush()
        os._exit(code)

    def serve(self) -> None:
        """Run messages in order until ``EXIT`` (or end of input)."""
        while True:
            if not self.pending:
                self.pending.extend(self.reader.read())
                if self.reader.eof and not self.pending:
                    return
                continue
            message = self.pending.popleft()
            if message == EXIT:
                return
            self.dispatch(message)

    def dispatch(self, message: Run) -> None:
        """Run one job: fast path, RQ's complete path, or (``async def``) the event loop."""
        prepared = self.prepare(message)
        if prepared is None:
            return
        job, queue, execution, func = prepared
        if func is not None and self.is_async(job, func):
            self.run_async_phase(message, job, queue, execution, func)
        else:
            self.run_sync(message, job, queue, execution, func)
        self.after_job()

    def after_job(self) -> None:
        """Count the job; ask to be replaced once over the memory limit."""
        self.jobs_run += 1
        limit = self.settings.pool_max_memory_mb
        if limit and not self.recycle_sent and self.jobs_run % MEMORY_CHECK_EVERY == 0:
            used = rss_mb()
            if used > limit:
                self.recycle_sent = True
                send(self.outbox, Recycle(used))

    # ----- preparing a job ---------------------------------------------------------------------------------------

    def queue(self, name: str) -> Queue:
        """The (cached) ``Queue`` object for ``name``."""
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = Queue(name, connection=self.worker.connection,
                                              serializer=self.worker.serializer)
        return queue

    def prepare(self, message: Run) -> tuple[Job, Queue, Execution, Callable[..., Any] | None] | None:
        """Build the Job (from the claimed hash), its queue and execution; None if it was recorded as failed.

        Fast-path jobs get a lean Job (data, origin, timeout, enqueued_at, meta); ``restore_fully`` completes
        it from the same hash before RQ's code handles a failure.
        """
        worker = self.worker
        queue = self.queue(message.queue)
        execution = Execution(message.execution_id, message.job_id, worker.connection, worker_name=worker.name)
        worker.executions = {execution.id: execution}
        fields = decode_fields(message.blob)
        job: Job = Job.__new__(Job)
        try:
            if message.full:
                job.__init__(message.job_id, connection=worker.connection,  # type: ignore[misc]
                             serializer=worker.serializer)
                job.restore(fields)
                func = None
            else:
                self.lean_restore(job, message, fields)
                func = self.resolve(job)
        except Exception:  # an unreadable job or an unknown function: a failure, recorded by RQ's code
            self.slots.set(0, message.seq, time.time())
            try:
                job = Job(message.job_id, connection=worker.connection, serializer=worker.serializer)
                with contextlib.suppress(Exception):
                    job.restore(fields)
                worker._attempt = message.attempt
                worker._finalize_failure(job, queue, execution, sys.exc_info())
            except Exception:
                self.log.exception("could not record the failure of job %s", message.job_id)
            self.finish(message.seq, Handled(message.seq, "failed"), 0)
            return None
        job._jf_fields = fields  # type: ignore[attr-defined]
        return job, queue, execution, func

    def lean_restore(self, job: Job, message: Run, fields: dict[bytes, bytes]) -> None:
        """What the fast path needs of ``Job.restore`` (the rest is filled in by ``restore_fully``)."""
        job.__dict__.update(self.template)
        job._id = message.job_id
        raw = fields[b"data"]
        try:
            job._data = zlib.decompress(raw)
        except zlib.error:
            job._data = raw
        job.origin = message.queue
        timeout = fields.get(b"timeout")
        job.timeout = (int(timeout) if timeout.lstrip(b"-").isdigit() else parse_timeout(timeout.decode())
                       ) if timeout else None
        enqueued = fields.get(b"enqueued_at")
        job.enqueued_at = _parse_time(enqueued) if enqueued else None
        meta = fields.get(b"meta")
        job.meta = self.worker.serializer.loads(meta) if meta else {}
        job._dependency_ids = []
        job.worker_name = self.worker.name
        job._status = JobStatus.STARTED

    def restore_fully(self, job: Job) -> None:
        """Complete a lean Job from its claimed hash (before RQ's failure or retry code sees it)."""
        fields = getattr(job, "_jf_fields", None)
        if fields is None:
            return
        started = job.started_at
        meta = job.meta
        job.restore(fields)
        job.meta = meta  # what the job itself changed (progress) wins over the claimed copy
        job.started_at = started

    def resolve(self, job: Job) -> Callable[..., Any]:
        """The job's callable (cached per dotted name for plain functions)."""
        name = job.func_name
        if job.instance is not None or name is None:
            return job.func
        cached = self.functions.get(name)
        if cached is None:
            func = job.func
            cached = self.functions[name] = (func, inspect.iscoroutinefunction(func))
        return cached[0]

    def is_async(self, job: Job, func: Callable[..., Any]) -> bool:
        """True for an ``async def`` job function."""
        cached = self.functions.get(job.func_name or "") if job.instance is None else None
        return cached[1] if cached is not None else inspect.iscoroutinefunction(func)

    def finish(self, seq: int, message: Done | Handled, slot: int) -> None:
        """Report the end of a job to the parent, then free its slot (in this order: see ``SlotTable``)."""
        send(self.outbox, message)
        self.slots.clear(slot)

    # ----- synchronous jobs ----------------------------------------------------------------------------------------

    def run_sync(self, message: Run, job: Job, queue: Queue, execution: Execution,
                 func: Callable[..., Any] | None) -> None:
        """Run one job to its end in this thread."""
        worker = self.worker
        worker._attempt = message.attempt
        started = time.time()
        self.slots.set(0, message.seq, started)
        if func is None:  # RQ's complete path, as the fork-mode work horse runs it
            ok = worker.perform_job(job, queue, execution)
            self.finish(message.seq, Handled(message.seq, "finished" if ok else "failed"), 0)
            return
        worker._outcome = None
        worker._failure_exc = None
        monotonic = time.monotonic()
        job.started_at = datetime.fromtimestamp(started, tz=UTC)
        reply: Done | Handled
        with tracing.consumer_span(job, queue.name, attempt=worker._attempt) as span:
            self.log_start(job, queue)
            timeout = job.timeout or 0
            penalty = (worker.death_penalty_class(timeout, JobTimeoutException, job_id=job.id) if timeout > 0
                       else contextlib.nullcontext())
            try:
                with penalty:
                    token = _current_job.set(job)
                    try:
                        value = func(*job.args, **job.kwargs)
                        if asyncio.iscoroutine(value):
                            value = asyncio.run(value)
                    finally:
                        _current_job.reset(token)
                if isinstance(value, Retry):
                    self.restore_fully(job)
                    worker._finalize_success(job, queue, execution, value)
                    outcome = "retried"
                    reply = Handled(message.seq, outcome)
                else:
                    outcome = "finished"
                    reply = Done(message.seq, self.serialize(value), started, time.time())
            except BaseException:
                exc_info = sys.exc_info()
                self.restore_fully(job)
                worker._finalize_failure(job, queue, execution, exc_info)
                outcome = worker._outcome or "failed"
                reply = Handled(message.seq, outcome)
            tracing.set_outcome(span, outcome, worker._failure_exc)
            self.report(job, queue, outcome, time.monotonic() - monotonic, started)
        self.finish(message.seq, reply, 0)

    def serialize(self, value: Any) -> str:
        """A return value as RQ's results stream stores it (base64 of the serializer's bytes; '' for None)."""
        if value is None:
            return ""
        try:
            raw = self.worker.serializer.dumps(value)
        except Exception:
            raw = self.worker.serializer.dumps(UNSERIALIZABLE_RETURN_VALUE_PAYLOAD)
        return b64encode(raw).decode()

    def log_start(self, job: Job, queue: Queue) -> None:
        """``job_started`` (only built when info logs are on)."""
        if self.log.isEnabledFor(logging.INFO):
            log_event("job_started", **self.worker._job_fields(job, queue))

    def report(self, job: Job, queue: Queue, outcome: str, duration: float, started: float) -> None:
        """Metrics and the ``job_finished`` log line for one attempt."""
        enqueued = _ts(job.enqueued_at)
        wait = started - enqueued if enqueued else None
        children = self.metric_children.get((queue.name, outcome))
        if children is None:
            metrics.record_job_finished(queue.name, outcome, duration, wait)
            self.metric_children[(queue.name, outcome)] = (
                metrics.JOBS_FINISHED.labels(queue=queue.name, outcome=outcome),
                metrics.JOB_RUN_SECONDS.labels(queue=queue.name), metrics.JOB_WAIT_SECONDS.labels(queue=queue.name))
        else:  # what record_job_finished does, without the label lookups
            children[0].inc()
            children[1].observe(max(0.0, duration))
            if wait is not None:
                children[2].observe(max(0.0, wait))
        level = 20 if outcome == "finished" else 30
        if self.log.isEnabledFor(level):
            from worker.worker import _trace_id

            exc = self.worker._failure_exc
            log_event("job_finished", level=level, **self.worker._job_fields(job, queue),
                      duration_s=round(duration, 4), outcome=outcome, trace_id=_trace_id(job),
                      error=f"{type(exc).__name__}: {exc}" if exc else None)

    # ----- async jobs ------------------------------------------------------------------------------------------------

    def run_async_phase(self, first: Run, job: Job, queue: Queue, execution: Execution,
                        func: Callable[..., Any]) -> None:
        """Run ``first`` and every job that arrives while async jobs are in flight, until none is left."""
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.pump(first, job, queue, execution, func))

    async def pump(self, first: Run, job: Job, queue: Queue, execution: Execution,
                   func: Callable[..., Any]) -> None:
        """Keep up to ``async_concurrency`` async jobs running; read new messages as they come."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        free = list(range(self.slots.size - 1, 0, -1))
        inflight: set[asyncio.Task[None]] = set()

        def readable() -> None:
            self.pending.extend(self.reader.read())
            if self.reader.eof:
                loop.remove_reader(self.reader.fd)
            wake.set()

        def start(message: Run, job: Job, queue: Queue, execution: Execution, func: Callable[..., Any]) -> None:
            slot = free.pop()
            task = loop.create_task(self.run_one_async(message, job, queue, execution, func, slot))
            inflight.add(task)

            def ended(_: asyncio.Task[None]) -> None:
                inflight.discard(task)
                free.append(slot)
                wake.set()

            task.add_done_callback(ended)

        loop.add_reader(self.reader.fd, readable)
        try:
            start(first, job, queue, execution, func)
            while inflight:
                while self.pending and free and self.pending[0] != EXIT:
                    message = self.pending.popleft()
                    prepared = self.prepare(message)
                    if prepared is None:
                        continue
                    job, queue, execution, func_or_none = prepared
                    if func_or_none is not None and self.is_async(job, func_or_none):
                        start(message, job, queue, execution, func_or_none)
                    else:
                        self.run_sync(message, job, queue, execution, func_or_none)
                        self.after_job()
                wake.clear()
                if inflight:
                    await wake.wait()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.reader.fd)

    async def run_one_async(self, message: Run, job: Job, queue: Queue, execution: Execution,
                            func: Callable[..., Any], slot: int) -> None:
        """One ``async def`` job under ``asyncio.wait_for`` (its timeout), reported like a synchronous one."""
        worker = self.worker
        attempt = message.attempt
        started = time.time()
        self.slots.set(slot, message.seq, started)
        monotonic = time.monotonic()
        job.started_at = datetime.fromtimestamp(started, tz=UTC)
        reply: Done | Handled
        failure: BaseException | None = None
        with tracing.consumer_span(job, queue.name, attempt=attempt) as span:
            worker._attempt = attempt
            self.log_start(job, queue)
            timeout = job.timeout or 0
            token = _current_job.set(job)
            try:
                value = await asyncio.wait_for(func(*job.args, **job.kwargs), timeout if timeout > 0 else None)
            except BaseException as exc:
                if isinstance(exc, asyncio.TimeoutError):
                    try:
                        raise JobTimeoutException(f"job {job.id} exceeded its timeout of {timeout} s") from None
                    except JobTimeoutException:
                        exc_info = sys.exc_info()
                else:
                    exc_info = sys.exc_info()
                # synchronous from here on: nothing else runs while RQ's code records the failure
                worker._attempt = attempt
                worker._outcome = None
                worker._failure_exc = None
                worker.executions = {execution.id: execution}
                self.restore_fully(job)
                worker._finalize_failure(job, queue, execution, exc_info)
                failure = worker._failure_exc
                outcome = worker._outcome or "failed"
                reply = Handled(message.seq, outcome)
            else:
                if isinstance(value, Retry):
                    worker.executions = {execution.id: execution}
                    self.restore_fully(job)
                    worker._finalize_success(job, queue, execution, value)
                    outcome = "retried"
                    reply = Handled(message.seq, outcome)
                else:
                    outcome = "finished"
                    reply = Done(message.seq, self.serialize(value), started, time.time(), True)
            finally:
                _current_job.reset(token)
            tracing.set_outcome(span, outcome, failure)
            worker._attempt = attempt
            worker._failure_exc = failure
            self.report(job, queue, outcome, time.monotonic() - monotonic, started)
        self.finish(message.seq, reply, slot)
        self.after_job()
