"""The application API: submit jobs (validated, traced, optionally idempotent) and look them up.

    submit("app.tasks.resize", "img-1.png", kwargs={"width": 640}, queue="high", timeout=60)
    submit_many([{"func": "app.tasks.resize", "args": ["a.png"], "idempotency_key": "a"}, ...])

Positional arguments after the function are the job's arguments and ``kwargs=`` its keyword arguments
(as RQ's ``enqueue_call``); every other keyword is an option, so an option can never be taken for a job
argument and a job argument can never shadow an option.

Every job is an ordinary RQ job (same hash, same queue list, same registries): plain ``rq worker``,
``rq info`` and rq-dashboard see it. A job without dependencies is written by one Lua script
(``jobfleet.enqueue_script``) in ONE round trip: claim the idempotency key if there is one, write the job
hash, push the id, register the queue. The key and the job are therefore written together or not at all,
and concurrent submits with one key create exactly one job. ``submit_many`` sends the same script for
thousands of jobs in one pipeline. Jobs with ``depends_on`` go through RQ's own dependency code.
"""

from __future__ import annotations

import inspect
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import WatchError
from rq import Callback, Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Dependency, Job, JobStatus
from rq.utils import get_call_string, import_attribute, now, utcformat

from jobfleet import enqueue_script, tenants
from jobfleet.ack import acknowledge
from jobfleet.connection import redis_connection
from jobfleet.errors import SubmitError
from jobfleet.retry import backoff_intervals, default_retry
from jobfleet.settings import Settings, load_settings
from jobfleet.tracing import producer_span

IDEMPOTENCY_PREFIX = "jobfleet:idem:"
MAX_KEY_LENGTH = 200
MAX_TIMEOUT = 7 * 86400
"""Longest per-job timeout (seconds): what the worker's alarm-based timeout enforces reliably."""
_DEFAULT: Any = object()
_OPTIONS = frozenset({
    "func", "args", "kwargs", "queue", "tenant", "retry", "timeout", "depends_on", "idempotency_key", "job_id",
    "meta", "description", "result_ttl", "failure_ttl", "ttl", "on_success", "on_failure", "on_stopped",
    "at_front",
})


# --- one client per process ---------------------------------------------------------------------------------

@dataclass
class _Client:
    pid: int
    settings: Settings
    connection: Redis | None = None


_client: _Client | None = None
_client_lock = threading.Lock()
_connections: dict[tuple[int, int], tuple[Settings, Redis]] = {}


def _default() -> _Client:
    global _client
    client = _client
    if client is None or client.pid != os.getpid():
        with _client_lock:
            client = _client
            if client is None or client.pid != os.getpid():
                client = _client = _Client(os.getpid(), load_settings())
    return client


def default_client() -> tuple[Settings, Redis]:
    """This process's settings (read once) and Redis client (one connection pool); new after a fork."""
    client = _default()
    if client.connection is None:
        client.connection = redis_connection(client.settings)
    return client.settings, client.connection


def reset_default_client() -> None:
    """Forget the cached settings and connections (the next call reads the environment again)."""
    global _client
    with _client_lock:
        _client = None
        _connections.clear()


def _resolve(connection: Redis | None, settings: Settings | None) -> tuple[Settings, Redis]:
    """Explicit ``settings``/``connection`` win; otherwise the process-wide client (one pool per settings)."""
    if connection is not None:
        return settings if settings is not None else _default().settings, connection
    if settings is None:
        return default_client()
    key = (os.getpid(), id(settings))
    cached = _connections.get(key)
    if cached is None or cached[0] is not settings:
        cached = _connections[key] = (settings, redis_connection(settings))
    return settings, cached[1]


# --- validation ---------------------------------------------------------------------------------------------

_checked_paths: dict[str, str] = {}


def function_path(func_or_path: Callable[..., Any] | str) -> str:
    """Dotted import path of the job function; SubmitError if workers could not import it."""
    if isinstance(func_or_path, str):
        cached = _checked_paths.get(func_or_path)
        if cached is not None:
            return cached
        path = func_or_path.strip()
        if not path or "." not in path:
            raise SubmitError(f"function path {func_or_path!r} must be a dotted path like 'package.module.func'")
        try:
            target = import_attribute(path)
        except (ImportError, AttributeError, ValueError) as exc:
            raise SubmitError(f"cannot import job function {path!r}: {exc}") from None
        if not callable(target):
            raise SubmitError(f"{path!r} is not callable")
        _checked_paths[func_or_path] = path
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
    if timeout > MAX_TIMEOUT:
        raise SubmitError(f"timeout must be at most {MAX_TIMEOUT} seconds (7 days), got {int(timeout)}")
    return int(timeout)


def _check_ttl(name: str, value: Any, default: int | None, *, allow_forever: bool = True) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubmitError(f"{name} must be a whole number of seconds, got {value!r}")
    if value < -1 or (value == -1 and not allow_forever) or (value == 0 and name == "ttl"):
        raise SubmitError(f"{name} must be > 0 seconds{' or -1 (forever)' if allow_forever else ''}, got {value}")
    return value


def _check_retry(retry: Any, settings: Settings, default: Any = _DEFAULT) -> Retry | None:
    """The job's Retry; for the default policy ``default`` (a template shared by a batch) when given."""
    if retry is _DEFAULT:
        # Each job still draws its own jittered intervals when it is written.
        return default_retry(settings) if default is _DEFAULT else default
    if retry is None or retry is False:
        return None
    if not isinstance(retry, Retry):
        raise SubmitError(f"retry must be an rq.Retry, None or False, got {type(retry).__name__}")
    return retry


def _check_callback(name: str, value: Any) -> Callback | None:
    if value is None:
        return None
    if isinstance(value, Callback):
        return value
    if isinstance(value, str) or callable(value):
        return Callback(function_path(value))
    raise SubmitError(f"{name} must be a job-style function, its dotted path or an rq.Callback, got {value!r}")


def _check_meta(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
        raise SubmitError(f"meta must be a mapping with string keys, got {type(meta).__name__}")
    if "otel" in meta:
        raise SubmitError("meta key 'otel' is reserved for the trace context")
    return dict(meta)


def _check_args(args: Any, kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args is None:
        args = ()
    if not isinstance(args, list | tuple):
        raise SubmitError(f"args must be a list or tuple of job arguments, got {type(args).__name__}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise SubmitError(f"kwargs must be a mapping of argument names to values, got {type(kwargs).__name__}")
    return tuple(args), dict(kwargs)


def _dependency_ids(depends_on: Any) -> list[str]:
    """Ids of ``depends_on`` (a job, an id, an ``rq.Dependency`` or a list of them); SubmitError otherwise."""
    if depends_on is None:
        return []
    if isinstance(depends_on, Dependency):
        return [j if isinstance(j, str) else j.id for j in depends_on.dependencies]
    items = depends_on if isinstance(depends_on, list | tuple) else [depends_on]
    ids = []
    for item in items:
        if isinstance(item, Job):
            ids.append(item.id)
        elif isinstance(item, str) and item:
            ids.append(item)
        else:
            raise SubmitError(
                f"depends_on must be a job, a job id, an rq.Dependency or a list of them, got {type(item).__name__}"
            )
    return ids


def _check_dependencies_exist(conn: Redis, ids: Sequence[str], known: Iterable[str] = ()) -> None:
    known_ids = set(known)
    unknown = [i for i in ids if i not in known_ids]
    if not unknown:
        return
    with conn.pipeline(transaction=False) as pipe:
        for job_id in unknown:
            pipe.exists(Job.key_for(job_id))
        found = pipe.execute()
    missing = [job_id for job_id, exists in zip(unknown, found, strict=True) if not exists]
    if missing:
        raise SubmitError(f"depends_on names job(s) that do not exist: {', '.join(missing)}")


# --- building jobs ------------------------------------------------------------------------------------------

@dataclass
class _Spec:
    """One validated job, ready to be written."""

    job_id: str
    path: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str  # the configured queue (priority)
    rq_queue: str  # the RQ queue that holds it (per tenant)
    tenant: str
    timeout: int
    retry: Retry | None
    default_retry: bool
    depends_on: list[str]
    allow_failure: bool
    key: str | None
    meta: dict[str, Any]
    description: str | None
    result_ttl: int | None
    failure_ttl: int | None
    ttl: int | None
    on_success: Callback | None
    on_failure: Callback | None
    on_stopped: Callback | None
    at_front: bool


def _spec(settings: Settings, func: Any, args: Any, kwargs: Any, default_retry_template: Any = _DEFAULT,
          **options: Any) -> _Spec:
    queue = options.get("queue") or "default"
    if queue not in settings.queues:
        raise SubmitError(f"unknown queue {queue!r}; configured queues are {', '.join(settings.queues)}")
    try:
        tenant = tenants.check_tenant(options.get("tenant"))
    except ValueError as exc:
        raise SubmitError(str(exc)) from None
    path = function_path(func)
    job_args, job_kwargs = _check_args(args, kwargs)
    key = options.get("idempotency_key")
    retry_opt = options.get("retry", _DEFAULT)
    job_id = options.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not job_id or ":" in job_id or len(job_id) > 128):
        raise SubmitError(f"job_id must be a non-empty string of at most 128 characters without ':', got {job_id!r}")
    depends_on = options.get("depends_on")
    description = options.get("description")
    if description is not None and not isinstance(description, str):
        raise SubmitError(f"description must be a string, got {type(description).__name__}")
    at_front = options.get("at_front", False)
    if not isinstance(at_front, bool):
        raise SubmitError(f"at_front must be True or False, got {at_front!r}")
    return _Spec(
        job_id=job_id or os.urandom(16).hex(),
        path=path,
        args=job_args,
        kwargs=job_kwargs,
        queue=queue,
        rq_queue=tenants.tenant_queue_name(queue, tenant),
        tenant=tenant,
        timeout=_check_timeout(options.get("timeout"), settings.job_timeout),
        retry=_check_retry(retry_opt, settings, default_retry_template),
        default_retry=retry_opt is _DEFAULT,
        depends_on=_dependency_ids(depends_on),
        allow_failure=bool(isinstance(depends_on, Dependency) and depends_on.allow_failure),
        key=None if key is None else _check_key(key),
        meta=_check_meta(options.get("meta")),
        description=description,
        result_ttl=_check_ttl("result_ttl", options.get("result_ttl"), settings.result_ttl),
        failure_ttl=_check_ttl("failure_ttl", options.get("failure_ttl"), settings.failure_ttl),
        ttl=_check_ttl("ttl", options.get("ttl"), None),
        on_success=_check_callback("on_success", options.get("on_success")),
        on_failure=_check_callback("on_failure", options.get("on_failure")),
        on_stopped=_check_callback("on_stopped", options.get("on_stopped")),
        at_front=at_front,
    )


def _job_meta(spec: _Spec, carrier: Mapping[str, str]) -> dict[str, Any]:
    meta = dict(spec.meta)
    meta["otel"] = dict(carrier)
    if spec.tenant != tenants.DEFAULT_TENANT:
        meta["tenant"] = spec.tenant
    return meta


def _rq_job(spec: _Spec, queue: Queue, carrier: Mapping[str, str]) -> Job:
    """The job as RQ's own ``create_job`` builds it (used for dependent jobs and as a field template)."""
    dependency: Any = None
    if spec.depends_on:
        dependency = Dependency(spec.depends_on, allow_failure=spec.allow_failure)
    job = queue.create_job(
        spec.path, args=spec.args, kwargs=spec.kwargs, timeout=spec.timeout, depends_on=dependency,
        job_id=spec.job_id, retry=spec.retry, meta=_job_meta(spec, carrier), description=spec.description,
        result_ttl=spec.result_ttl, failure_ttl=spec.failure_ttl, ttl=spec.ttl,
        on_success=spec.on_success, on_failure=spec.on_failure, on_stopped=spec.on_stopped,
    )
    if spec.retry is None:
        job.retries_left = 0  # explicit "never retry": workers must not apply the default policy
    try:
        job.data  # noqa: B018 - serialises the arguments now (cached), so a bad argument fails here
    except Exception as exc:
        raise SubmitError(
            f"job arguments cannot be serialised for {spec.path}: {type(exc).__name__}: {exc}"
        ) from None
    return job


def _job_fields(spec: _Spec, job: Job, stamp: str) -> dict[str, str | bytes]:
    """The job hash exactly as RQ's ``Job.save`` writes it for a queued job."""
    job.origin = spec.rq_queue
    job._status = JobStatus.QUEUED
    fields = job.to_dict()
    fields["created_at"] = stamp
    fields["enqueued_at"] = stamp
    fields["status"] = JobStatus.QUEUED.value
    if spec.at_front:
        fields["enqueue_at_front"] = 1
    return {k: (v if isinstance(v, bytes) else str(v)) for k, v in fields.items()}


def _shape(spec: _Spec) -> tuple[Any, ...]:
    return (
        spec.rq_queue, spec.timeout, None if spec.default_retry else (spec.retry and (spec.retry.max,
        tuple(spec.retry.intervals))), spec.retry is None, spec.result_ttl, spec.failure_ttl, spec.ttl,
        spec.on_success and spec.on_success.name, spec.on_failure and spec.on_failure.name,
        spec.on_stopped and spec.on_stopped.name, spec.at_front, bool(spec.meta), spec.description is not None,
    )


def _description(spec: _Spec) -> str:
    if spec.description is not None:
        return spec.description
    if not spec.args and not spec.kwargs:
        return spec.path + "()"
    return get_call_string(spec.path, spec.args, spec.kwargs, max_length=75) or spec.path


def _data(spec: _Spec, queue: Queue) -> bytes:
    try:
        return zlib.compress(queue.serializer.dumps((spec.path, None, spec.args, spec.kwargs)))
    except Exception as exc:
        raise SubmitError(
            f"job arguments cannot be serialised for {spec.path}: {type(exc).__name__}: {exc}"
        ) from None


# --- writing ------------------------------------------------------------------------------------------------

_queues: dict[tuple[int, str], Queue] = {}


def _queue(conn: Redis, name: str) -> Queue:
    key = (id(conn), name)
    queue = _queues.get(key)
    if queue is None or queue.connection is not conn:
        queue = Queue(name, connection=conn)
        _queues[key] = queue
    return queue


def submit(
    func: Callable[..., Any] | str,
    *args: Any,
    kwargs: Mapping[str, Any] | None = None,
    queue: str = "default",
    tenant: str | None = None,
    retry: Any = _DEFAULT,
    timeout: int | None = None,
    depends_on: Any = None,
    idempotency_key: str | None = None,
    job_id: str | None = None,
    meta: Mapping[str, Any] | None = None,
    description: str | None = None,
    result_ttl: int | None = None,
    failure_ttl: int | None = None,
    ttl: int | None = None,
    on_success: Any = None,
    on_failure: Any = None,
    on_stopped: Any = None,
    at_front: bool = False,
    ack_replicas: int | None = None,
    connection: Redis | None = None,
    settings: Settings | None = None,
) -> Job:
    """Enqueue ``func(*args, **kwargs)`` on ``queue`` (priority = queue: high, default, low) and return the job.

    Options: ``tenant`` (fair share; default tenant when omitted); ``retry`` an ``rq.Retry`` (omitted = the
    default policy from the settings, exponential backoff with jitter; ``None``/``False`` = never retry);
    ``timeout`` in seconds (default ``JOBFLEET_JOB_TIMEOUT``, at most 7 days); ``depends_on`` job(s), id(s) or
    an ``rq.Dependency`` that must exist and finish first; ``idempotency_key``: the same key within
    ``JOBFLEET_IDEMPOTENCY_TTL`` returns the same job, never a duplicate; ``job_id``; ``meta`` (a dict kept
    with the job); ``description``; ``result_ttl``/``failure_ttl``/``ttl`` in seconds; ``on_success``/
    ``on_failure``/``on_stopped`` RQ callbacks (a function, its dotted path or an ``rq.Callback``);
    ``at_front``; ``ack_replicas``: wait (``WAIT``) until that many replicas hold the job, default
    ``JOBFLEET_SUBMIT_ACK_REPLICAS`` (0: do not wait; ``jobfleet.ack.NotReplicatedError`` when they do not
    confirm in time). ``connection``/``settings`` override the process-wide client. Raises SubmitError on bad
    input.
    """
    settings, conn = _resolve(connection, settings)
    spec = _spec(
        settings, func, args, kwargs, queue=queue, tenant=tenant, retry=retry, timeout=timeout,
        depends_on=depends_on, idempotency_key=idempotency_key, job_id=job_id, meta=meta, description=description,
        result_ttl=result_ttl, failure_ttl=failure_ttl, ttl=ttl, on_success=on_success, on_failure=on_failure,
        on_stopped=on_stopped, at_front=at_front,
    )
    job = _write_one(conn, settings, spec)
    acknowledge(conn, settings, job.id, ack_replicas)
    return job


def _write_one(conn: Redis, settings: Settings, spec: _Spec) -> Job:
    rq_queue = _queue(conn, spec.rq_queue)
    with producer_span(spec.queue, spec.job_id, spec.path) as carrier:
        job = _rq_job(spec, rq_queue, carrier)
        if spec.depends_on:
            _check_dependencies_exist(conn, spec.depends_on)
            if spec.key is None:
                return _enqueue_dependent(conn, rq_queue, job, spec)
            return _enqueue_once(conn, rq_queue, job, spec, settings.idempotency_ttl)
        const = _job_fields(spec, job, utcformat(now()))
        data, description = const.pop("data"), str(const.pop("description", "") or spec.path)
        meta_field = const.pop("meta", None)
        intervals = const.pop("retry_intervals", None)
        if spec.default_retry and spec.retry is not None:
            intervals = _json_list(backoff_intervals(settings))
        entry = (spec.job_id, IDEMPOTENCY_PREFIX + spec.key if spec.key else None, _bytes(data), description,
                 None if intervals is None else str(intervals), None if meta_field is None else _bytes(meta_field))
        ids = enqueue_script.run(
            conn, rq_queue.key, spec.at_front, settings.idempotency_ttl, spec.ttl,
            tenants.tenant_index_key(spec.queue) if spec.tenant != tenants.DEFAULT_TENANT else None, spec.tenant,
            const, [entry],
        )
    if ids[0] != spec.job_id:
        return _fetch(conn, ids[0], rq_queue)
    job.origin = spec.rq_queue
    job._status = JobStatus.QUEUED
    return job


def _fetch(conn: Redis, job_id: str, queue: Queue) -> Job:
    return Job.fetch(job_id, connection=conn, serializer=queue.serializer)


def _enqueue_dependent(conn: Redis, queue: Queue, job: Job, spec: _Spec) -> Job:
    """RQ's own path for a job with dependencies (deferred until they finish), in one transaction."""
    while True:
        with conn.pipeline() as pipe:
            try:
                queue.enqueue_job(job, pipeline=pipe, at_front=spec.at_front)
                tenants.register_tenant(pipe, spec.queue, spec.tenant)
                pipe.execute()
                return job
            except WatchError:
                continue


def _enqueue_once(conn: Redis, queue: Queue, job: Job, spec: _Spec, ttl: int) -> Job:
    """Enqueue a dependent ``job`` unless its key already maps to a live job, atomically (WATCH + MULTI)."""
    assert spec.key is not None
    redis_key = IDEMPOTENCY_PREFIX + spec.key
    while True:
        with conn.pipeline() as pipe:
            try:
                pipe.watch(redis_key)
                existing = pipe.get(redis_key)
                if existing is not None:
                    existing_id = existing.decode() if isinstance(existing, bytes) else str(existing)
                    try:
                        return _fetch(conn, existing_id, queue)
                    except NoSuchJobError:
                        pass  # its data expired: the key is free again
                queue.enqueue_job(job, pipeline=pipe, at_front=spec.at_front)  # switches the pipeline to MULTI
                tenants.register_tenant(pipe, spec.queue, spec.tenant)
                pipe.set(redis_key, job.id, ex=ttl)
                pipe.execute()
                return job
            except WatchError:
                continue  # someone else wrote the key (or a dependency changed): look again


_SIMPLE = frozenset({"func", "args", "kwargs", "queue", "tenant", "idempotency_key"})


def _simple_spec(settings: Settings, item: Mapping[str, Any], template: Any,
                 bases: dict[tuple[Any, Any, Any], _Spec]) -> _Spec:
    """The spec of an item with only the common options: validated like any other, from a shared base."""
    func, queue, tenant = item["func"], item.get("queue"), item.get("tenant")
    base = bases.get((func, queue, tenant)) if isinstance(func, str) else None
    if base is None:
        base = _spec(settings, func, None, None, template, queue=queue, tenant=tenant)
        if isinstance(func, str):
            bases[(func, queue, tenant)] = base
    spec = _Spec.__new__(_Spec)
    spec.__dict__.update(base.__dict__)
    spec.job_id = os.urandom(16).hex()
    spec.args, spec.kwargs = _check_args(item.get("args"), item.get("kwargs"))
    key = item.get("idempotency_key")
    spec.key = None if key is None else _check_key(key)
    return spec


def submit_many(
    jobs: Iterable[Mapping[str, Any]],
    *,
    connection: Redis | None = None,
    settings: Settings | None = None,
    chunk_size: int = 500,
    ack_replicas: int | None = None,
) -> list[str]:
    """Enqueue many jobs in one pipeline; returns their ids in order (existing ids for repeated keys).

    Each item is a mapping ``{"func": "pkg.module.function" or a callable, "args": [...], "kwargs": {...},
    "queue": ..., "idempotency_key": ..., <any other submit option>}``. Everything is validated before
    anything is written: one bad item raises SubmitError naming its index and nothing is enqueued.
    Idempotency keys are checked and claimed by the same script that writes the jobs; a key repeated
    within the call, or already held by a live job, resolves to that job's id.
    """
    settings, conn = _resolve(connection, settings)
    specs: list[_Spec] = []
    template = default_retry(settings)
    bases: dict[tuple[Any, Any, Any], _Spec] = {}
    for index, item in enumerate(jobs):
        if not isinstance(item, Mapping):
            raise SubmitError(f"job {index}: expected a mapping with at least 'func', got {type(item).__name__}")
        unknown = sorted(set(item) - _OPTIONS)
        if unknown:
            raise SubmitError(f"job {index}: unknown option(s) {', '.join(map(repr, unknown))}")
        if "func" not in item:
            raise SubmitError(f"job {index}: 'func' is required")
        try:
            if item.keys() <= _SIMPLE:
                specs.append(_simple_spec(settings, item, template, bases))
            else:
                specs.append(_spec(settings, item["func"], item.get("args"), item.get("kwargs"), template,
                                   **{k: v for k, v in item.items() if k not in ("func", "args", "kwargs")}))
        except SubmitError as exc:
            raise SubmitError(f"job {index}: {exc}") from None
    if not specs:
        return []
    ids_in_call = [s.job_id for s in specs]
    if len(set(ids_in_call)) != len(ids_in_call):
        raise SubmitError("submit_many: the same job_id appears more than once")
    # A key repeated within the call resolves to its first job.
    first_by_key: dict[str, int] = {}
    duplicate_of: dict[int, int] = {}
    for index, spec in enumerate(specs):
        if spec.key is not None:
            if spec.key in first_by_key:
                duplicate_of[index] = first_by_key[spec.key]
            else:
                first_by_key[spec.key] = index
    dependency_ids = [dep for s in specs for dep in s.depends_on]
    if dependency_ids:
        _check_dependencies_exist(conn, dependency_ids, known=ids_in_call)
    result: list[str] = [s.job_id for s in specs]
    with producer_span(specs[0].queue, f"batch-of-{len(specs)}", specs[0].path) as carrier:
        stamp = utcformat(now())
        independent = [i for i, s in enumerate(specs) if not s.depends_on and i not in duplicate_of]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index in independent:
            groups.setdefault(_shape(specs[index]), []).append(index)
        calls: list[list[int]] = []
        call_entries: list[list[enqueue_script.Entry]] = []
        with conn.pipeline(transaction=False) as pipe:
            for members in groups.values():
                head = specs[members[0]]
                queue = _queue(conn, head.rq_queue)
                const = _job_fields(head, _rq_job(head, queue, carrier), stamp)
                per_job_meta = bool(head.meta) or head.tenant != tenants.DEFAULT_TENANT
                shared_meta = None if per_job_meta else const.get("meta")
                for name in ("data", "description", "retry_intervals"):
                    const.pop(name, None)
                if per_job_meta:
                    const.pop("meta", None)
                for start in range(0, len(members), chunk_size):
                    chunk = members[start:start + chunk_size]
                    entries: list[enqueue_script.Entry] = []
                    for index in chunk:
                        spec = specs[index]
                        if spec.default_retry and spec.retry is not None:
                            intervals: str | None = _json_list(backoff_intervals(settings))
                        elif spec.retry is not None:
                            intervals = _json_list(spec.retry.intervals)
                        else:
                            intervals = None
                        meta_bytes = None if shared_meta is not None else queue.serializer.dumps(
                            _job_meta(spec, carrier))
                        entries.append((spec.job_id, IDEMPOTENCY_PREFIX + spec.key if spec.key else None,
                                        _data(spec, queue), _description(spec), intervals, meta_bytes))
                    enqueue_script.queue_call(
                        pipe, conn, queue.key, head.at_front, settings.idempotency_ttl, head.ttl,
                        tenants.tenant_index_key(head.queue) if head.tenant != tenants.DEFAULT_TENANT else None,
                        head.tenant, const, entries,
                    )
                    calls.append(chunk)
                    call_entries.append(entries)
            replies = enqueue_script.execute(pipe, call_entries) if calls else []
        for chunk, reply in zip(calls, replies, strict=True):
            for index, job_id in zip(chunk, reply, strict=True):
                result[index] = job_id
        for index, spec in enumerate(specs):
            if spec.depends_on and index not in duplicate_of:
                queue = _queue(conn, spec.rq_queue)
                job = _rq_job(spec, queue, carrier)
                if spec.key is None:
                    _enqueue_dependent(conn, queue, job, spec)
                else:
                    result[index] = _enqueue_once(conn, queue, job, spec, settings.idempotency_ttl).id
    for index, first in duplicate_of.items():
        result[index] = result[first]
    acknowledge(conn, settings, None, ack_replicas)  # one WAIT covers every write of the batch
    return result


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _json_list(values: Iterable[float]) -> str:
    """The JSON list RQ writes for retry intervals (json.dumps formats floats with repr, as here)."""
    return "[" + ", ".join(map(repr, values)) + "]"


def get_job(job_id: str, connection: Redis | None = None, settings: Settings | None = None) -> Job:
    """The job with ``job_id``; SubmitError if there is none."""
    _settings, conn = _resolve(connection, settings)
    try:
        return Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        raise SubmitError(f"no job with id {job_id!r}") from None
