"""Job functions used by the worker tests (importable by worker processes via PYTHONPATH)."""

from __future__ import annotations

import time

from rq import get_current_job

from jobfleet.errors import PermanentError


def bad_value(counter_key: str) -> None:
    """Count the call, then raise ValueError (a permanent error by default)."""
    job = get_current_job()
    assert job is not None
    job.connection.incr(counter_key)
    raise ValueError("bad input value")


def permanent(counter_key: str) -> None:
    """Count the call, then raise PermanentError."""
    job = get_current_job()
    assert job is not None
    job.connection.incr(counter_key)
    raise PermanentError("cannot ever work")


def append(list_key: str, value: str, delay: float = 0.0) -> str:
    """Sleep ``delay`` then append ``value`` to a Redis list (records execution order)."""
    time.sleep(delay)
    job = get_current_job()
    assert job is not None
    job.connection.rpush(list_key, value)
    return value


def mark_and_sleep(marker_key: str, seconds: float) -> float:
    """Count a start in ``marker_key``, then sleep."""
    job = get_current_job()
    assert job is not None
    job.connection.incr(marker_key)
    time.sleep(seconds)
    return seconds


def slow_first_time(marker_key: str, seconds: float) -> int:
    """Count the call; the first call sleeps ``seconds``, later calls return at once."""
    job = get_current_job()
    assert job is not None
    calls = int(job.connection.incr(marker_key))
    if calls == 1:
        time.sleep(seconds)
    return calls
