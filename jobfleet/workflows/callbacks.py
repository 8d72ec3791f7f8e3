"""RQ job callbacks of workflow tasks: they run in whatever RQ worker ran the task (plain ``rq worker``
included) and record the outcome atomically (see :data:`jobfleet.workflows.scripts.END_TASK`)."""

from __future__ import annotations

import builtins
import functools
import importlib
from types import TracebackType
from typing import Any

from redis import Redis
from rq.job import Job

from jobfleet.errors import PermanentError
from jobfleet.workflows import store


def task_succeeded(job: Job, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> None:
    """on_success: the task succeeded; release what waited for it."""
    parsed = store.parse_task_id(job.id)
    if parsed is not None:
        store.end_task(connection, *parsed, "s")


def task_failed(job: Job, connection: Redis, exc_type: type[BaseException] | None, exc_value: BaseException | None,
                traceback: TracebackType | None, *args: Any, **kwargs: Any) -> None:
    """on_failure (called on every failed attempt): a retry keeps it queued, a final failure applies the
    node's failure policy."""
    parsed = store.parse_task_id(job.id)
    if parsed is None:
        return
    permanent = _permanent(exc_type)
    if permanent:
        job.retries_left = 0  # RQ's failure handling (it runs after this callback) must not retry it either
    will_retry = bool(job.retries_left and job.retries_left > 0)
    store.end_task(connection, *parsed, "retry" if will_retry else "f")


@functools.lru_cache(maxsize=1)
def _permanent_types() -> tuple[type[BaseException], ...]:
    """PermanentError plus JOBFLEET_PERMANENT_ERRORS (the same rule as the jobfleet worker's)."""
    from jobfleet.settings import load_settings

    found: list[type[BaseException]] = [PermanentError]
    try:
        names = load_settings().permanent_errors
    except Exception:
        names = ()
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            source = importlib.import_module(module) if module else builtins
            candidate = getattr(source, attr if module else name, None)
        except ImportError:
            continue
        if isinstance(candidate, type) and issubclass(candidate, BaseException):
            found.append(candidate)
    return tuple(found)


def _permanent(exc_type: type[BaseException] | None) -> bool:
    return exc_type is not None and issubclass(exc_type, _permanent_types())
