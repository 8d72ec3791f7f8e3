"""Job functions the dashboard tests enqueue (importable by RQ workers as ``tests.dashboard.jobs``)."""

from __future__ import annotations

import time

from rq import get_current_job

from jobfleet.progress import report_progress


def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


def boom(message: str) -> None:
    """Always fail with ``message``."""
    raise RuntimeError(message)


def half_done(message: str) -> str:
    """Report 50 % progress with ``message`` (the fleet's progress helper), then finish."""
    report_progress(50, message)
    return "done"


def wait_for_key(key: str, timeout: float = 60.0) -> str:
    """Run until Redis ``key`` exists (or ``timeout``): a job that stays 'started' while a test looks at it."""
    job = get_current_job()
    assert job is not None
    report_progress(25, "waiting for the test")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.connection.exists(key):
            return "released"
        time.sleep(0.05)
    raise TimeoutError(f"{key} never appeared")
