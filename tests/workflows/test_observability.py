"""A workflow's tasks share its trace; workflow metrics by final status and duration."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from jobfleet import tracing
from jobfleet.settings import Settings
from jobfleet.workflows import Workflow, array, submit_workflow, task
from observability.workflow_collector import register_workflow_collector

J = "tests.workflows.jobs"


def test_every_task_continues_the_workflow_trace(spans: InMemorySpanExporter, redis: Redis, settings: Settings) -> None:
    wf = Workflow("traced", [task("a", f"{J}.noop"), array("b", f"{J}.child", size=3, depends_on=["a"])])
    wid = submit_workflow(wf, connection=redis, settings=settings).id
    (root,) = [s for s in spans.get_finished_spans() if s.attributes.get("messaging.message.id") == wid
               or wid in str(s.attributes)]
    for job_id in (f"{wid}-0-0", f"{wid}-1-0", f"{wid}-1-2"):
        job = Job.fetch(job_id, connection=redis)
        with tracing.consumer_span(job, "default") as span:  # what the jobfleet worker wraps each attempt in
            assert span is not None
        consumer = spans.get_finished_spans()[-1]
        assert consumer.context.trace_id == root.context.trace_id
        assert consumer.parent is not None and consumer.parent.span_id == root.context.span_id


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples}


def test_metrics_by_final_status_and_duration(redis: Redis, settings: Settings) -> None:
    registry = CollectorRegistry()
    register_workflow_collector(registry, redis)
    ok = submit_workflow(Workflow("ok", [task("a", f"{J}.noop")]), connection=redis, settings=settings).id
    submit_workflow(Workflow("bad", [task("a", f"{J}.fail", args=["log:m"], retry=0)]), connection=redis,
                    settings=settings)
    submit_workflow(Workflow("waiting", [task("a", f"{J}.noop", queue="low")]), connection=redis, settings=settings)
    before = _samples(registry)
    assert before[("jobfleet_workflows", (("status", "queued"),))] == 3
    SimpleWorker([Queue("default", connection=redis)], connection=redis).work(burst=True)
    after = _samples(registry)
    assert after[("jobfleet_workflows_ended_total", (("status", "succeeded"),))] == 1
    assert after[("jobfleet_workflows_ended_total", (("status", "failed"),))] == 1
    assert after[("jobfleet_workflows", (("status", "queued"),))] == 1
    assert after[("jobfleet_workflow_duration_seconds_count", ())] == 2
    assert after[("jobfleet_workflow_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert 0 < after[("jobfleet_workflow_duration_seconds_sum", ())] < 60
    assert redis.hget(f"jobfleet:wf:{ok}", "status") == b"succeeded"
