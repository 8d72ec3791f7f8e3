"""Prometheus metrics of worker processes (CONTRACT — the observability work fills in the bodies).

Contract used by the worker:
- ``record_job_finished(queue, outcome, run_seconds, wait_seconds)`` once per attempt end.
- ``record_retry(queue)``, ``record_recovered(queue, count)``.
- ``set_busy(busy)`` when this worker process starts (True) or ends (False) a job.
- ``start_worker_metrics_server(port)`` on a worker host (multiprocess-safe).
"""

from __future__ import annotations


def record_job_finished(queue: str, outcome: str, run_seconds: float, wait_seconds: float | None) -> None:
    """Count one finished attempt and observe its run and wait times."""


def record_retry(queue: str) -> None:
    """Count one retry scheduled for a job of ``queue``."""


def record_recovered(queue: str, count: int) -> None:
    """Count jobs recovered after their worker died."""


def set_busy(busy: bool) -> None:
    """Mark this worker process's slot busy or idle."""


def start_worker_metrics_server(port: int) -> None:
    """Serve this host's worker metrics on ``port`` (no-op placeholder)."""
