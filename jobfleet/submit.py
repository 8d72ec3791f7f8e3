"""The application API: submit a job (validated, traced, optionally idempotent) and look jobs up.

Idempotency: the key ``jobfleet:idem:<key>`` and the job are written in ONE Redis transaction (WATCH on
the key, then MULTI: job hash + queue push + SET key). A crash can therefore never leave a key without
its job or a job without its key, and concurrent submits with one key create exactly one job: every
loser's EXEC fails on the WATCH and it returns the winner's job instead.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.utils import import_attribute

from jobfleet.connection import redis_connection
from jobfleet.errors import SubmitError
from jobfleet.retry import default_retry
from jobfleet.settings import Settings, load_settings
from jobfleet.tracing import producer_span

IDEMPOTENCY_PREFIX = "jobfleet:idem:"
MAX_KEY_LENGTH = 200
_DEFAULT: Any = object()


def function_path(func_or_path: Callable[..., Any] | str) -> str:
    """Dotted import path of the job function; SubmitError if workers could not import it."""
    if isinstance(func_or_path, str):
        path = func_or_path.strip()
        if not path or "." not in path:
            raise SubmitError(f"function path {func_or_path!r} must be a dotted path like 'package.module.func'")
        try:
            target = import_attribute(path)
        except (ImportError, AttributeError, ValueError) as exc:
            raise SubmitError(f"cannot import job function {path!r}: {exc}") from None
        if not callable(target):
            raise SubmitError(f"{path!r} is not callable")
        return path
    if not callable(func_or_path):
        raise SubmitError(f"job function must be a callable or a dotted path, got {type(func_or_path).__name__}")
    module = getattr(func_or_path, "__module__", None)
    qualname = getattr(func_or_path, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or not inspect.isfunction(func_or_path):
        raise SubmitError(
            f"job function {qualname or func_or_path!r} must be a module-level function importable by workers "
            "(not a lambda, nested function or something defined in __main__)"
        )
    return f"{module}.{qualname}"


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise SubmitError("idempotency key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise SubmitError(f"idempotency key is {len(key)} characters long; at most {MAX_KEY_LENGTH} are allowed")
    return key


def _check_timeout(timeout: Any, default: int) -> int:
    if timeout is None:
        return default
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout != timeout:
        raise SubmitError(f"timeout must be a whole number of seconds > 0, got {timeout!r}")
    if timeout <= 0:
        raise SubmitError(f"timeout must be > 0 seconds, got {timeout}")
    if int(timeout) != timeout:
        raise SubmitError(f"timeout must be a whole number of seconds, got {timeout}")
    return int(timeout)


def submit(
    func_or_path: Callable[..., Any] | str,
    *args: Any,
    queue: str = "default",
    retry: Any = _DEFAULT,
    timeout: int | None = None,
    depends_on: Any = None,
    idempotency_key: str | None = None,
    connection: Redis | None = None,
    settings: Settings | None = None,
    **kwargs: Any,
) -> Job:
    """Enqueue ``func_or_path(*args, **kwargs)`` on ``queue`` (priority = queue: high, default, low).

    ``retry``: a ``rq.Retry``; omitted = the default policy (settings, exponential backoff with jitter);
    ``None``/``False`` = never retry. ``timeout`` in seconds (default ``JOBFLEET_JOB_TIMEOUT``).
    ``depends_on``: job(s) or id(s) that must finish first. ``idempotency_key``: same key within
    ``JOBFLEET_IDEMPOTENCY_TTL`` returns the same job, never a duplicate. Raises SubmitError on bad input.
    """
    settings = settings or load_settings()
    if queue not in settings.queues:
        raise SubmitError(f"unknown queue {queue!r}; configured queues are {', '.join(settings.queues)}")
    path = function_path(func_or_path)
    job_timeout = _check_timeout(timeout, settings.job_timeout)
    key = None if idempotency_key is None else _check_key(idempotency_key)
    if retry is _DEFAULT:
        retry = default_retry(settings)
    elif retry is not None and retry is not False and not isinstance(retry, Retry):
        raise SubmitError(f"retry must be an rq.Retry, None or False, got {type(retry).__name__}")
    conn = connection if connection is not None else redis_connection(settings)
    rq_queue = Queue(queue, connection=conn)
    try:
        rq_queue.serializer.dumps((args, kwargs))
    except Exception as exc:
        raise SubmitError(f"job arguments cannot be serialised for {path}: {type(exc).__name__}: {exc}") from None

    job_id = uuid.uuid4().hex
    with producer_span(queue, job_id, path) as carrier:
        job = rq_queue.create_job(
            path, args=args, kwargs=kwargs, timeout=job_timeout, depends_on=depends_on, job_id=job_id,
            retry=retry or None, meta={"otel": dict(carrier)},
            result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl,
        )
        if not retry:
            job.retries_left = 0  # explicit "never retry": workers must not apply the default policy
        if key is None:
            return rq_queue.enqueue_job(job)
        return _enqueue_once(conn, rq_queue, job, key, settings.idempotency_ttl)


def _enqueue_once(conn: Redis, queue: Queue, job: Job, key: str, ttl: int) -> Job:
    """Enqueue ``job`` unless ``key`` already maps to a live job, atomically (see module docstring)."""
    redis_key = IDEMPOTENCY_PREFIX + key
    while True:
        with conn.pipeline() as pipe:
            try:
                pipe.watch(redis_key)
                existing = pipe.get(redis_key)
                if existing is not None:
                    existing_id = existing.decode() if isinstance(existing, bytes) else str(existing)
                    try:
                        return Job.fetch(existing_id, connection=conn, serializer=queue.serializer)
                    except NoSuchJobError:
                        pass  # its data expired: the key is free again
                queue.enqueue_job(job, pipeline=pipe)  # switches the pipeline to MULTI
                pipe.set(redis_key, job.id, ex=ttl)
                pipe.execute()
                return job
            except WatchError:
                continue  # someone else wrote the key (or a dependency changed): look again


def get_job(job_id: str, connection: Redis | None = None, settings: Settings | None = None) -> Job:
    """The job with ``job_id``; SubmitError if there is none."""
    conn = connection if connection is not None else redis_connection(settings or load_settings())
    try:
        return Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        raise SubmitError(f"no job with id {job_id!r}") from None
