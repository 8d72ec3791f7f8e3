"""Tracing helpers in-process: exporter selection, context propagation, attributes, no-op fast path."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobfleet import tracing


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, ()),
    ],
)
def test_exporter_selection_follows_the_standard_variables(env: dict[str, str], expected: tuple[str, ...]) -> None:
    assert tracing.exporters_from_env(env) == expected


def test_unknown_exporter_is_a_clear_error() -> None:
    with pytest.raises(tracing.TracingConfigError, match="unknown exporter 'jaeger'"):
        tracing.exporters_from_env({"OTEL_TRACES_EXPORTER": "jaeger"})


def test_without_exporter_spans_are_skipped_entirely() -> None:
    tracing.reset_tracing()
    try:
        assert tracing.configure_tracing("t", env={}) is False
        with tracing.producer_span("q", "j1", "f") as carrier:
            assert carrier == {}
        with tracing.consumer_span(SimpleNamespace(id="j1", meta={}), "q") as span:
            assert span is None
        tracing.set_outcome(span, "finished")  # no-op, no error
    finally:
        tracing.reset_tracing()


def test_consumer_continues_the_producer_trace(spans: InMemorySpanExporter) -> None:
    with tracing.producer_span("high", "job-1", "app.tasks.send") as carrier:
        assert carrier["traceparent"].startswith("00-")
    job = SimpleNamespace(id="job-1", meta={"otel": carrier}, number_of_retries=None, func_name="app.tasks.send")
    with tracing.consumer_span(job, "high") as span:
        tracing.set_outcome(span, "finished")
    producer, consumer = spans.get_finished_spans()
    assert producer.kind == SpanKind.PRODUCER and consumer.kind == SpanKind.CONSUMER
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.attributes["messaging.message.id"] == "job-1"
    assert consumer.attributes["messaging.destination.name"] == "high"
    assert consumer.attributes["jobfleet.attempt"] == 1
    assert consumer.attributes["jobfleet.outcome"] == "finished"
    assert producer.attributes["code.function.name"] == "app.tasks.send"


def test_retries_stay_in_the_trace_with_their_attempt_number(spans: InMemorySpanExporter) -> None:
    with tracing.producer_span("default", "job-2", "f") as carrier:
        pass
    for retries in (None, 1, 2):
        job = SimpleNamespace(id="job-2", meta={"otel": carrier}, number_of_retries=retries)
        with tracing.consumer_span(job, "default") as span:
            tracing.set_outcome(span, "retried" if retries != 2 else "finished")
    producer, *attempts = spans.get_finished_spans()
    assert [s.attributes["jobfleet.attempt"] for s in attempts] == [1, 2, 3]
    assert {s.context.trace_id for s in attempts} == {producer.context.trace_id}
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert attempts[2].status.status_code == StatusCode.OK


def test_explicit_attempt_overrides_rq_retry_count(spans: InMemorySpanExporter) -> None:
    with tracing.consumer_span(SimpleNamespace(id="j", meta={}, number_of_retries=0), "q", attempt=4):
        pass
    assert spans.get_finished_spans()[0].attributes["jobfleet.attempt"] == 4


def test_dependents_link_to_their_dependencies(spans: InMemorySpanExporter) -> None:
    with tracing.producer_span("q", "parent", "f") as parent_carrier:
        pass
    with tracing.producer_span("q", "child", "g", links=[parent_carrier, None, {}]):
        pass
    parent, child = spans.get_finished_spans()
    assert [link.context.span_id for link in child.links] == [parent.context.span_id]


def test_exception_escaping_the_job_is_recorded(spans: InMemorySpanExporter) -> None:
    job = SimpleNamespace(id="j3", meta={"otel": {"traceparent": "garbage"}})
    with pytest.raises(ZeroDivisionError), tracing.consumer_span(job, "q"):
        1 / 0  # noqa: B018
    (span,) = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.events[0].name == "exception"
    assert span.parent is None  # a garbled carrier starts a new trace instead of failing the job


def test_set_outcome_records_a_given_exception(spans: InMemorySpanExporter) -> None:
    with tracing.consumer_span(SimpleNamespace(id="j4", meta={}), "q") as span:
        tracing.set_outcome(span, "failed", ValueError("bad input"))
    (finished,) = spans.get_finished_spans()
    assert finished.attributes["jobfleet.outcome"] == "failed"
    assert finished.status.description == "ValueError: bad input"
    assert finished.events[0].attributes["exception.message"] == "bad input"
