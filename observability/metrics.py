"""Prometheus metrics of worker processes.

Contract used by the worker:
- ``record_job_finished(queue, outcome, run_seconds, wait_seconds)`` once per attempt end.
- ``record_retry(queue)``, ``record_recovered(queue, count)``.
- ``set_busy(busy)`` when this worker process starts (True) or ends (False) a job (call ``set_busy(False)``
  at start too, so an idle worker counts as a slot).
- ``start_worker_metrics_server(port)`` on a worker host (multiprocess-safe).
- ``init_queue_series(queues)`` at worker start: every per-queue series exists (at 0) from the first scrape.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set in the environment of the worker processes
(prometheus-client reads it at import), every process — and every forked work horse — writes its values to
files in that directory, and ONE endpoint per host serves them all merged (see
:mod:`observability.multiprocess_files`): counts of exited processes are kept (folded into an archive file),
live gauges of dead processes are dropped. Without it each process serves its own registry.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from observability.multiprocess_files import CompactingMultiProcessCollector

log = logging.getLogger(__name__)

#: Seconds; covers sub-second no-op jobs up to hour-long batch jobs and long waits.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOBS_FINISHED = Counter(
    "jobfleet_jobs_finished",
    "Job attempts that ended, by queue and outcome (finished, failed, retried, timeout, stopped, ...).",
    ["queue", "outcome"],
)
JOB_RUN_SECONDS = Histogram(
    "jobfleet_job_run_seconds", "Run time of one job attempt (start to end), seconds.", ["queue"],
    buckets=DURATION_BUCKETS,
)
JOB_WAIT_SECONDS = Histogram(
    "jobfleet_job_wait_seconds", "Wait from enqueue (or re-enqueue for a retry) to start, seconds.", ["queue"],
    buckets=DURATION_BUCKETS,
)
JOB_RETRIES = Counter("jobfleet_job_retries", "Retries scheduled after a failed attempt.", ["queue"])
JOBS_RECOVERED = Counter(
    "jobfleet_jobs_recovered", "Jobs re-enqueued after their worker died mid-job (crash recovery).", ["queue"]
)
WORKER_BUSY = Gauge(
    "jobfleet_worker_busy_slots", "Worker processes of this host running a job now.", multiprocess_mode="livesum"
)
WORKER_SLOTS = Gauge(
    "jobfleet_worker_slots", "Live worker processes (job slots) of this host.", multiprocess_mode="livesum"
)

_server_lock = threading.Lock()
_server_started = False
_slot_pid = 0


def record_job_finished(queue: str, outcome: str, run_seconds: float, wait_seconds: float | None) -> None:
    """Count one finished attempt and observe its run and wait times (negative times are clamped to 0)."""
    if not queue or not outcome:
        raise ValueError(f"record_job_finished needs a queue and an outcome, got queue={queue!r} outcome={outcome!r}")
    _ensure_queue(queue)
    JOBS_FINISHED.labels(queue=queue, outcome=outcome).inc()
    JOB_RUN_SECONDS.labels(queue=queue).observe(max(0.0, float(run_seconds)))
    if wait_seconds is not None:
        JOB_WAIT_SECONDS.labels(queue=queue).observe(max(0.0, float(wait_seconds)))


def record_retry(queue: str) -> None:
    """Count one retry scheduled for a job of ``queue``."""
    _ensure_queue(queue)
    JOB_RETRIES.labels(queue=queue).inc()


def record_recovered(queue: str, count: int) -> None:
    """Count jobs recovered after their worker died."""
    if count < 0:
        raise ValueError(f"record_recovered: count must be >= 0, got {count}")
    _ensure_queue(queue)
    if count:
        JOBS_RECOVERED.labels(queue=queue).inc(count)


def set_busy(busy: bool) -> None:
    """Mark this worker process's slot busy or idle (also registers the slot)."""
    _register_slot()
    WORKER_BUSY.set(1 if busy else 0)


_seen_queues: set[tuple[int, str]] = set()


def _ensure_queue(queue: str) -> None:
    key = (os.getpid(), queue)
    if key not in _seen_queues:
        _seen_queues.add(key)
        init_queue_series([queue])


def init_queue_series(queues: Iterable[str], outcomes: Iterable[str] = ("finished", "failed", "retried")) -> None:
    """Create every per-queue series at 0 (call at worker start) so panels and rates exist before events."""
    for queue in queues:
        for outcome in outcomes:
            JOBS_FINISHED.labels(queue=queue, outcome=outcome)
        JOB_RUN_SECONDS.labels(queue=queue)
        JOB_WAIT_SECONDS.labels(queue=queue)
        JOB_RETRIES.labels(queue=queue)
        JOBS_RECOVERED.labels(queue=queue)


def _register_slot() -> None:
    global _slot_pid
    pid = os.getpid()
    if _slot_pid != pid:
        _slot_pid = pid
        WORKER_SLOTS.set(1)


def multiprocess_dir() -> Path | None:
    """The directory prometheus-client writes to in this process (``PROMETHEUS_MULTIPROC_DIR``), if any."""
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # the client's own variable, read by the client too
    return Path(raw) if raw else None


def worker_registry(metrics_dir: Path | None = None) -> CollectorRegistry:
    """The registry a worker host serves: all processes' files in multiprocess mode, else this process's."""
    directory = metrics_dir or multiprocess_dir()
    if directory is None:
        return REGISTRY
    directory.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    CompactingMultiProcessCollector(directory, registry=registry)
    return registry


def serve_worker_metrics(port: int, addr: str = "0.0.0.0", metrics_dir: Path | None = None) -> Any:
    """Serve the worker metrics on ``port`` now; raises ``OSError`` if the port is taken. Returns the server."""
    server, _thread = start_http_server(port, addr=addr, registry=worker_registry(metrics_dir))
    return server


def start_worker_metrics_server(port: int, addr: str = "0.0.0.0", retry_seconds: float = 5.0) -> None:
    """Serve this host's worker metrics on ``port`` (0 = do not serve); safe to call from every worker process.

    In multiprocess mode the first process to bind the port serves the whole host; the others keep trying
    every ``retry_seconds`` in a daemon thread, so the endpoint survives the exit of the serving process.
    """
    global _server_started
    _register_slot()
    if port <= 0:
        return
    with _server_lock:
        if _server_started:
            return
        _server_started = True
    if _try_serve(port, addr):
        return
    if multiprocess_dir() is None:
        raise OSError(errno.EADDRINUSE, f"worker metrics port {port} is in use (and not in multiprocess mode)")
    stop = threading.Event()

    def keep_trying() -> None:
        while not stop.wait(retry_seconds):
            if _try_serve(port, addr):
                return

    threading.Thread(target=keep_trying, name="metrics-port-standby", daemon=True).start()


def _try_serve(port: int, addr: str) -> bool:
    try:
        serve_worker_metrics(port, addr)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return False
    log.info("serving worker metrics on %s:%s", addr, port)
    return True


def mark_process_dead(pid: int, metrics_dir: Path | None = None) -> None:
    """Drop the live gauges of an exited worker process right away (the server also prunes dead pids)."""
    from prometheus_client import multiprocess

    directory = metrics_dir or multiprocess_dir()
    if directory is not None:
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(pid, str(directory))


def main(argv: list[str] | None = None) -> int:
    """``python -m observability.metrics --dir D --port P``: serve one host's multiprocess worker metrics."""
    import argparse
    import signal
    import time

    parser = argparse.ArgumentParser(prog="python -m observability.metrics", description=main.__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="prometheus-client multiprocess directory")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--addr", default="0.0.0.0")
    args = parser.parse_args(argv)
    try:
        serve_worker_metrics(args.port, addr=args.addr, metrics_dir=args.dir)
    except OSError as exc:
        print(f"jobfleet: cannot serve worker metrics on {args.addr}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    while not stopping.wait(1.0):
        time.sleep(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
