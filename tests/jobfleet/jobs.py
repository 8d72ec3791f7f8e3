"""Job functions for the jobfleet client tests (importable by worker processes)."""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq import get_current_job


def record(name: str, value: Any = None, *, extra: Any = None) -> dict[str, Any]:
    """Return what the job was called with (the result lands in RQ's result store)."""
    return {"name": name, "value": value, "extra": extra}


def on_success_mark(job: Any, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> None:
    """RQ success callback: record that it ran, with the job id."""
    connection.rpush("test:callbacks", f"success:{job.id}")


def on_failure_mark(job: Any, connection: Redis, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """RQ failure callback."""
    connection.rpush("test:callbacks", f"failure:{job.id}")


def meta_value(key: str) -> Any:
    """The running job's meta[key]."""
    job = get_current_job()
    assert job is not None
    return job.meta.get(key)
