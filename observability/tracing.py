"""OpenTelemetry tracing for jobs (CONTRACT — the observability work fills in the bodies).

Contract used by the worker, submit API and autoscaler:
- ``configure_tracing(service_name)``: idempotent; configured from the standard ``OTEL_*`` variables.
- ``producer_span(queue, job_id, function)``: context manager around an enqueue; yields the W3C carrier
  (``dict[str, str]``) that the caller stores in ``job.meta["otel"]``.
- ``consumer_span(job, queue)``: context manager around running ``job``; continues the producer's trace.
- ``set_outcome(span, outcome, exc)``: record ``outcome`` ("finished", "failed", "retried", ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def configure_tracing(service_name: str) -> None:
    """Set up the tracer provider from ``OTEL_*`` variables (no-op placeholder)."""


@contextmanager
def producer_span(queue: str, job_id: str, function: str) -> Iterator[dict[str, str]]:
    """Span around an enqueue; yields the carrier to store in ``job.meta['otel']``."""
    yield {}


@contextmanager
def consumer_span(job: Any, queue: str) -> Iterator[Any]:
    """Span around running ``job``, child of the producer span found in ``job.meta['otel']``."""
    yield None


def set_outcome(span: Any, outcome: str, exc: BaseException | None = None) -> None:
    """Record a job's outcome (and exception) on its consumer span."""
