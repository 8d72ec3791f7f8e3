"""OpenTelemetry tracing for jobs: a producer span at enqueue, a consumer span around each attempt.

Contract used by the worker, submit API and autoscaler:
- ``configure_tracing(service_name)``: idempotent; configured from the standard ``OTEL_*`` variables.
- ``producer_span(queue, job_id, function)``: context manager around an enqueue; yields the W3C carrier
  (``dict[str, str]``) that the caller stores in ``job.meta["otel"]``.
- ``consumer_span(job, queue)``: context manager around running ``job``; continues the producer's trace.
- ``set_outcome(span, outcome, exc)``: record ``outcome`` ("finished", "failed", "retried", ...).

Exporter choice (the standard OpenTelemetry variables, read here and by the SDK itself — they are not
jobfleet settings): ``OTEL_TRACES_EXPORTER`` = ``otlp`` / ``console`` / ``none`` (comma list allowed);
when it is unset, OTLP/HTTP if ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set, otherwise none. With no exporter no SDK provider is installed and the span helpers return at once
(no span objects, no context work): tracing costs nothing on the worker's hot path.

RQ forks a work horse per job and the horse leaves with ``os._exit`` (no atexit): a consumer span ended in
a forked child is therefore flushed before the context manager returns.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanKind, Status, StatusCode

TRACER_NAME = "jobfleet"
MESSAGING_SYSTEM = "rq"
META_KEY = "otel"
_FAILED_OUTCOMES = frozenset({"failed", "retried", "timeout", "stopped", "abandoned"})
_KNOWN_EXPORTERS = ("otlp", "console", "none")


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable asks for something this process cannot do."""


@dataclass
class _State:
    enabled: bool = False
    configured: bool = False
    provider: Any = None
    owner_pid: int = 0
    exporters: tuple[str, ...] = ()
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def exporters_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Which span exporters the standard ``OTEL_*`` variables ask for (empty tuple = tracing off)."""
    source = os.environ if env is None else env
    raw = source.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if source.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    if not raw:
        endpoint = source.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or source.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ("otlp",) if endpoint and endpoint.strip() else ()
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = [name for name in names if name not in _KNOWN_EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: unknown exporter {unknown[0]!r}; expected otlp, console or none"
        )
    return tuple(name for name in names if name != "none")


def configure_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Install an SDK tracer provider from the ``OTEL_*`` variables; idempotent. True if tracing is on.

    ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` are honoured; ``service_name`` is the default.
    """
    with _state.lock:
        if _state.configured:
            return _state.enabled
        exporters = exporters_from_env(env)
        _state.configured = True
        _state.exporters = exporters
        if not exporters:
            # A provider set by the embedding application (or a test) still gets our spans.
            _state.enabled = _external_provider_present()
            return _state.enabled
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

        # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over our defaults.
        resource = Resource.create({"service.name": service_name, "process.pid": os.getpid()})
        provider = TracerProvider(resource=resource.merge(OTELResourceDetector().detect()))
        if "otlp" in exporters:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if "console" in exporters:
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        _state.provider = provider
        _state.owner_pid = os.getpid()
        _state.enabled = True
        return True


def tracing_enabled() -> bool:
    """Whether spans are recorded in this process (an SDK provider is installed)."""
    if not _state.configured and not _state.enabled:
        _state.enabled = _external_provider_present()
    return _state.enabled


def enable_for_provider(provider: Any) -> None:
    """Use ``provider`` (e.g. a test's in-memory one) for jobfleet spans in this process."""
    _state.provider = provider
    _state.owner_pid = os.getpid()
    _state.enabled = True
    _state.configured = True


def reset_tracing() -> None:
    """Forget the configuration (tests); a later :func:`configure_tracing` configures afresh."""
    _state.enabled = False
    _state.configured = False
    _state.provider = None
    _state.exporters = ()


def get_tracer() -> trace.Tracer:
    """The tracer jobfleet components (e.g. the autoscaler's decision span) should use."""
    provider = _state.provider
    if provider is not None:
        return provider.get_tracer(TRACER_NAME)
    return trace.get_tracer(TRACER_NAME)


def _external_provider_present() -> bool:
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _links(carriers: Iterable[Mapping[str, str] | None]) -> list[Link]:
    links = []
    for carrier in carriers:
        if not carrier:
            continue
        ctx = trace.get_current_span(propagate.extract(dict(carrier))).get_span_context()
        if ctx.is_valid:
            links.append(Link(ctx))
    return links


@contextmanager
def producer_span(
    queue: str, job_id: str, function: str, links: Iterable[Mapping[str, str] | None] = ()
) -> Iterator[dict[str, str]]:
    """Span around an enqueue; yields the carrier to store in ``job.meta['otel']``.

    ``links``: carriers of related jobs (e.g. the jobs this one depends on) to link to.
    """
    if not tracing_enabled():
        yield {}
        return
    with get_tracer().start_as_current_span(
        f"publish {queue}",
        kind=SpanKind.PRODUCER,
        links=_links(links),
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "publish",
            "messaging.operation.name": "enqueue",
            "messaging.destination.name": queue,
            "messaging.message.id": job_id,
            "code.function.name": function,
        },
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


def job_carrier(job: Any) -> dict[str, str]:
    """The W3C carrier stored in a job's meta (empty if none or malformed)."""
    meta = getattr(job, "meta", None)
    carrier = meta.get(META_KEY) if isinstance(meta, dict) else None
    if not isinstance(carrier, dict):
        return {}
    return {str(k): str(v) for k, v in carrier.items() if isinstance(v, str)}


def job_attempt(job: Any) -> int:
    """1 for the first attempt, 2 for the first retry, ..."""
    retries = getattr(job, "number_of_retries", None)
    return (retries or 0) + 1


@contextmanager
def consumer_span(job: Any, queue: str, attempt: int | None = None) -> Iterator[Any]:
    """Span around running ``job``, child of the producer span found in ``job.meta['otel']``.

    ``attempt`` (1-based) defaults to RQ's retry count + 1. Yields the span (``None`` when tracing is off).
    An exception escaping the block is recorded, the span marked failed, and the exception re-raised.
    """
    if not tracing_enabled():
        yield None
        return
    parent = propagate.extract(job_carrier(job))
    token = otel_context.attach(parent)
    try:
        func_name = getattr(job, "func_name", None)
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "perform",
            "messaging.destination.name": queue,
            "messaging.message.id": str(getattr(job, "id", "")),
            "jobfleet.attempt": attempt if attempt is not None else job_attempt(job),
        }
        if func_name:
            attributes["code.function.name"] = str(func_name)
        with get_tracer().start_as_current_span(
            f"process {queue}", kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            yield span
    finally:
        otel_context.detach(token)
        _flush_if_forked()


def set_outcome(span: Any, outcome: str, exc: BaseException | None = None) -> None:
    """Record a job's outcome (and exception) on its consumer span; no-op for ``None``/non-recording spans."""
    if span is None or isinstance(span, NonRecordingSpan) or not isinstance(span, Span):
        return
    span.set_attribute("jobfleet.outcome", outcome)
    if exc is not None:
        span.record_exception(exc)
    if exc is not None or outcome in _FAILED_OUTCOMES:
        description = f"{type(exc).__name__}: {exc}" if exc is not None else outcome
        span.set_status(Status(StatusCode.ERROR, description))
    else:
        span.set_status(Status(StatusCode.OK))


def current_trace_id() -> str | None:
    """Hex trace id of the active span (for log lines), or None."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def flush(timeout_millis: int = 5000) -> None:
    """Export every finished span now (before a process exits without running atexit)."""
    provider = _state.provider
    if provider is not None and hasattr(provider, "force_flush"):
        provider.force_flush(timeout_millis)


def _flush_if_forked() -> None:
    # The SDK restarts its batch thread in a forked child, but RQ's work horse ends with os._exit.
    if _state.provider is not None and os.getpid() != _state.owner_pid:
        flush()
