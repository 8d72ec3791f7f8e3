"""Jobs for demos, benchmarks and tests (importable by workers as ``jobfleet.demo.jobs.<name>``)."""

from __future__ import annotations

import time

from rq import get_current_job

from jobfleet.progress import report_progress

FLAKY_KEY = "jobfleet:demo:flaky:{0}"


def sleep(seconds: float) -> float:
    """Sleep ``seconds`` and return it."""
    time.sleep(float(seconds))
    return float(seconds)


def cpu(n: int) -> int:
    """Burn CPU: sum of squares below ``n``."""
    return sum(i * i for i in range(int(n)))


def flaky(key: str, failures: int) -> int:
    """Fail the first ``failures`` calls for ``key`` (count kept in Redis), then succeed; returns the call number."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("flaky() counts its calls in Redis and must run inside a job")
    calls = int(job.connection.incr(FLAKY_KEY.format(key)))
    job.connection.expire(FLAKY_KEY.format(key), 86400)
    if calls <= int(failures):
        raise RuntimeError(f"flaky {key}: failing call {calls} of {failures}")
    return calls


def always_fails() -> None:
    """Raise every time (ends in the dead-letter registry once its retries are used)."""
    raise RuntimeError("always_fails: this job always fails")


def with_progress(steps: int, delay: float) -> int:
    """Do ``steps`` steps of ``delay`` seconds, reporting progress after each."""
    steps = int(steps)
    for i in range(1, steps + 1):
        time.sleep(float(delay))
        report_progress(100.0 * i / steps, f"step {i}/{steps}")
    return steps


def clock() -> float:
    """Return the wall-clock time at which the job body started (pick-up latency benchmarks)."""
    return time.time()


def noop() -> None:
    """Do nothing (throughput benchmarks)."""
