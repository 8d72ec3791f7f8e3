"""Job functions of the workflow tests: they append what ran, in order, to a Redis list ``log``."""

from __future__ import annotations

import time

from redis import Redis
from rq import get_current_job

from jobfleet.workflows import current_array_index


def _redis() -> Redis:
    job = get_current_job()
    assert job is not None
    return job.connection


def record(log: str, name: str, sleep: float = 0.0) -> str:
    """Append ``name`` to ``log`` (after an optional sleep)."""
    if sleep:
        time.sleep(sleep)
    _redis().rpush(log, name)
    return name


def child(index: int, log: str, name: str = "c", sleep: float = 0.0) -> int:
    """An array child: append ``name:index``; fails if the helper disagrees with the argument."""
    if current_array_index() != index:
        raise AssertionError(f"current_array_index() = {current_array_index()} but the argument is {index}")
    if sleep:
        time.sleep(sleep)
    _redis().rpush(log, f"{name}:{index}")
    return index


def fail(log: str, name: str = "boom") -> None:
    """Append, then fail."""
    _redis().rpush(log, name)
    raise RuntimeError(f"{name} failed on purpose")


def fail_some(index: int, log: str, bad: list[int]) -> int:
    """An array child that fails when its index is in ``bad``."""
    _redis().rpush(log, f"c:{index}")
    if index in bad:
        raise RuntimeError(f"child {index} fails on purpose")
    return index


def flaky(log: str, name: str, failures: int) -> str:
    """Fail the first ``failures`` attempts (counted in Redis), then succeed."""
    conn = _redis()
    attempt = int(conn.incr(f"{log}:attempts:{name}"))
    conn.rpush(log, f"{name}#{attempt}")
    if attempt <= failures:
        raise RuntimeError(f"{name} attempt {attempt} fails")
    return name


def fail_unless_flag(log: str, name: str) -> str:
    """Fail until the Redis key ``<log>:fixed`` exists (a 'bug fixed, retry it' scenario)."""
    conn = _redis()
    conn.rpush(log, name)
    if not conn.exists(f"{log}:fixed"):
        raise RuntimeError(f"{name}: not fixed yet")
    return name


def noop(*args: object, **kwargs: object) -> None:
    """Do nothing."""


def stamp(*args: object) -> float:
    """Return when it ended (the scheduling-delay benchmark reads it)."""
    return time.time()


def on_end(workflow_id: str) -> None:
    """A workflow callback: append to the log named after the workflow."""
    _redis().rpush(f"callbacks:{workflow_id}", "end")


def on_success(workflow_id: str) -> None:
    """A workflow callback."""
    _redis().rpush(f"callbacks:{workflow_id}", "success")


def on_failure(workflow_id: str) -> None:
    """A workflow callback."""
    _redis().rpush(f"callbacks:{workflow_id}", "failure")
