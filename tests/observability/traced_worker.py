"""A plain RQ worker process with jobfleet's observability hooks (used until/unless ``python -m worker`` is used).

``python -m tests.observability.traced_worker --queues a,b [--burst]``; Redis from ``REDIS_URL``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.job import Job

from jobfleet import tracing
from observability import metrics


class TracedWorker(Worker):
    """RQ's fork-per-job worker calling consumer_span/set_outcome and the metrics functions in the horse."""

    def perform_job(self, job: Job, queue: Queue, execution: Any) -> bool:
        metrics.set_busy(True)
        started = time.monotonic()
        with tracing.consumer_span(job, queue.name) as span:
            ok = super().perform_job(job, queue, execution)
            outcome = "finished" if ok else "failed"
            tracing.set_outcome(span, outcome, None if ok else RuntimeError("job failed"))
        wait = (job.started_at - job.enqueued_at).total_seconds() if job.started_at and job.enqueued_at else None
        metrics.record_job_finished(queue.name, outcome, time.monotonic() - started, wait)
        metrics.set_busy(False)
        return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queues", required=True)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--metrics-port", type=int, default=0)
    args = parser.parse_args()
    tracing.configure_tracing("jobfleet-worker")
    metrics.set_busy(False)
    metrics.init_queue_series(args.queues.split(","))
    metrics.start_worker_metrics_server(args.metrics_port, addr="127.0.0.1", retry_seconds=0.5)
    connection = Redis.from_url(os.environ["REDIS_URL"])
    queues = [Queue(name, connection=connection) for name in args.queues.split(",")]
    TracedWorker(queues, connection=connection).work(burst=args.burst, logging_level="WARNING")


if __name__ == "__main__":
    main()
