"""Helpers for worker tests: real `python -m worker` processes, polling with deadlines, clean stops."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import spawn
from tests.conftest import test_env as child_env

FAST = {
    "JOBFLEET_RETRY_BASE": "0.2",
    "JOBFLEET_RETRY_CAP": "1",
    "JOBFLEET_WORKER_TTL": "10",
    "JOBFLEET_INSTANCE_ID": "test-instance",
    "JOBFLEET_LOG_LEVEL": "info",
}


EXECUTION_MODES = ("fork", "pool")
_execution: list[str] = []  # set by the ``execution_mode`` fixture (tests/worker/conftest.py)


def use_execution(mode: str | None) -> None:
    """Make ``worker_env`` run workers in ``mode`` (None: the default)."""
    _execution[:] = [mode] if mode else []


def worker_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Child environment with fast retries and a short worker TTL (and the execution mode under test)."""
    mode = {"JOBFLEET_EXECUTION": _execution[0]} if _execution else {}
    return child_env(redis_url, tmp_path, **{**FAST, **mode, **extra})


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def kill_tree(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``proc`` and every descendant (horse, scheduler), then reap ``proc``."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(proc.pid)
        family = [*parent.children(recursive=True), parent]
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is always killed (with its descendants) when the block ends."""
    proc = spawn(args, env, log)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL the whole process tree if it is still there after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    if proc.poll() is None:
        kill_tree(proc)


def start_worker(env: dict[str, str], tmp_path: Path, *extra: str, name: str = "w1") -> Any:
    """Context manager for one `python -m worker` process named ``name``."""
    return running(["-m", "worker", "--name", name, *extra], env, tmp_path / f"{name}.log")
