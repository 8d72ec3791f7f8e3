"""Job functions for the pool-mode and both-mode worker tests (importable by worker processes)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time

from rq import get_current_job

from jobfleet.progress import report_progress


def _connection():  # type: ignore[no-untyped-def]
    job = get_current_job()
    assert job is not None
    return job.connection


def exit_now(code: int) -> None:
    """Leave the process at once, as a job calling ``os._exit`` does."""
    os._exit(code)


def segfault() -> None:
    """Crash the process with SIGSEGV (as a buggy C extension would)."""
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(5)


def exit_first_time(counter_key: str) -> int:
    """Count the call; the first call kills the process, later calls return the count."""
    calls = int(_connection().incr(counter_key))
    if calls == 1:
        os._exit(7)
    return calls


def pid_and_sleep(pid_key: str, seconds: float) -> int:
    """Record the running process id, then sleep."""
    _connection().set(pid_key, os.getpid())
    time.sleep(seconds)
    return os.getpid()


def pid_first_time_sleeps(pid_key: str, seconds: float) -> int:
    """Record the pid; sleep only on the first call (so a retry returns at once). Returns the call count."""
    conn = _connection()
    calls = int(conn.incr(f"{pid_key}:calls"))
    conn.set(pid_key, os.getpid())
    if calls == 1:
        time.sleep(seconds)
    return calls


def deaf_sleep(seconds: float) -> None:
    """Sleep with SIGALRM blocked: a job that ignores its soft timeout (only a kill stops it)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)


def getpid() -> int:
    """The process running the job."""
    return os.getpid()


def grow(megabytes: int) -> int:
    """Keep ``megabytes`` MB alive in the process (a leak), return the pid."""
    leak = globals().setdefault("_leak", [])
    leak.append(bytearray(megabytes * 1024 * 1024))
    return os.getpid()


def progress_steps(steps: int, pause: float) -> str:
    """Report progress ``steps`` times."""
    for i in range(1, steps + 1):
        time.sleep(pause)
        report_progress(100.0 * i / steps, f"step {i}/{steps}")
    return "done"


async def async_sleep(seconds: float) -> float:
    """An I/O-bound async job."""
    await asyncio.sleep(seconds)
    job = get_current_job()
    return seconds if job is not None else -1.0


async def async_fail() -> None:
    """An async job that raises."""
    await asyncio.sleep(0.01)
    raise RuntimeError("async boom")


def libc_abort() -> None:
    """Abort the process from C."""
    ctypes.CDLL("libc.so.6").abort()


def nap(seconds: float) -> int:
    """Sleep a little, return the pid."""
    time.sleep(seconds)
    return os.getpid()
