"""Job functions of the workflow tests: they record what ran, in order, in Redis."""

from __future__ import annotations

import os
import time

from redis import Redis
from rq import get_current_job

from jobfleet.workflows import current_array_index

LOG = "test:wf:log"


def _redis() -> Redis:
    job = get_current_job()
    assert job is not None
    return job.connection


def record(name: str, sleep: float = 0.0) -> str:
    """Append ``name`` to the run log (after an optional sleep)."""
    if sleep:
        time.sleep(sleep)
    _redis().rpush(LOG, name)
    return name


def child(index: int, name: str = "c", sleep: float = 0.0) -> int:
    """An array child: record ``name:index`` and check that the helper agrees with the argument."""
    assert current_array_index() == index
    if sleep:
        time.sleep(sleep)
    _redis().rpush(LOG, f"{name}:{index}")
    return index


def fail(name: str = "boom") -> None:
    """Record, then fail."""
    _redis().rpush(LOG, name)
    raise RuntimeError(f"{name} failed on purpose")


def fail_child(index: int, bad: list[int]) -> int:
    """An array child that fails when its index is in ``bad``."""
    _redis().rpush(LOG, f"c:{index}")
    if index in bad:
        raise RuntimeError(f"child {index} fails on purpose")
    return index


def flaky(name: str, failures: int) -> str:
    """Fail the first ``failures`` attempts (counted in Redis), then succeed."""
    conn = _redis()
    attempt = int(conn.incr(f"test:wf:attempts:{name}"))
    conn.rpush(LOG, f"{name}#{attempt}")
    if attempt <= failures:
        raise RuntimeError(f"{name} attempt {attempt} fails")
    return name


def stamp(index: int) -> float:
    """Return when it ended (the scheduling-delay benchmark reads it)."""
    return time.time()


def noop(*args: object, **kwargs: object) -> None:
    """Do nothing."""


def on_end(workflow_id: str) -> None:
    """A workflow callback: record that it ran."""
    _redis().rpush(LOG, f"callback:{workflow_id}")


def pid() -> int:
    """The worker process id."""
    return os.getpid()
