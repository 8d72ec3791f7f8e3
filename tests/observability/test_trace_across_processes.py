"""Proof: one job enqueued in one process and run by a real worker process forms ONE trace.

Both processes export over OTLP/HTTP (protobuf) to a receiver this test runs; the producer span must be
the parent of the consumer span, and the two come from different processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from tests.conftest import ROOT, spawn
from tests.conftest import test_env as make_env
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan


def _wait_for(receiver: OtlpReceiver, count: int, timeout: float = 30.0) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = receiver.snapshot()
        if len(spans) >= count:
            return spans
        time.sleep(0.05)
    raise AssertionError(f"expected {count} spans within {timeout}s, got {receiver.snapshot()}")


def _worker_args(queue: str) -> list[str]:
    """The real worker (`python -m worker`) once it exists, else RQ's worker with our hooks."""
    if (ROOT / "worker" / "__main__.py").exists():
        return ["-m", "worker", "--queues", queue, "--burst"]
    return ["-m", "tests.observability.traced_worker", "--queues", queue, "--burst"]


def _produce(env: dict[str, str], queue: str, function: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tests.observability.produce", queue, function, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _run_worker(env: dict[str, str], queue: str, log: Path) -> None:
    proc = spawn(_worker_args(queue), env, log)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_enqueue_and_run_form_one_trace_across_processes(redis_url: str, tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        env = make_env(redis_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                       OTEL_BSP_SCHEDULE_DELAY="50", JOBFLEET_RETRY_MAX="0")
        job_id = _produce(env, "traced", "tests.observability.jobs.noop")
        _run_worker(env, "traced", tmp_path / "worker.log")
        spans = _wait_for(receiver, 2)

    by_kind = {span.kind: span for span in spans if span.attributes.get("messaging.message.id") == job_id}
    producer, consumer = by_kind[PbSpan.SPAN_KIND_PRODUCER], by_kind[PbSpan.SPAN_KIND_CONSUMER]
    assert producer.trace_id == consumer.trace_id
    assert consumer.parent_span_id == producer.span_id
    assert producer.resource["process.pid"] != consumer.resource["process.pid"]
    assert producer.resource["service.name"] == "jobfleet-submit"
    assert consumer.resource["service.name"] == "jobfleet-worker"
    assert producer.name == "publish traced" and consumer.name == "process traced"
    for span, operation in ((producer, "publish"), (consumer, "process")):
        assert span.attributes["messaging.system"] == "rq"
        assert span.attributes["messaging.operation.type"] == operation
        assert span.attributes["messaging.destination.name"] == "traced"
    assert consumer.attributes["jobfleet.attempt"] == 1
    assert consumer.attributes["jobfleet.outcome"] == "finished"


@pytest.mark.slow
def test_failed_job_span_records_the_error(redis_url: str, tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        env = make_env(redis_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                       OTEL_BSP_SCHEDULE_DELAY="50", JOBFLEET_RETRY_MAX="0")
        job_id = _produce(env, "traced-fail", "tests.observability.jobs.boom")
        _run_worker(env, "traced-fail", tmp_path / "worker.log")
        spans = _wait_for(receiver, 2)
    consumer = next(s for s in spans if s.kind == PbSpan.SPAN_KIND_CONSUMER
                    and s.attributes.get("messaging.message.id") == job_id)
    assert consumer.attributes["jobfleet.outcome"] == "failed"
    assert consumer.status_code == PbStatus.STATUS_CODE_ERROR
    assert "exception" in consumer.events
