"""Enqueue one job inside a producer span from a separate process; prints the job id.

``python -m tests.observability.produce QUEUE FUNCTION [ARG]``; Redis from ``REDIS_URL``.
"""

from __future__ import annotations

import os
import sys
import uuid

from redis import Redis
from rq import Queue

from jobfleet import tracing


def main() -> None:
    queue_name, function, *args = sys.argv[1:]
    tracing.configure_tracing("jobfleet-submit")
    connection = Redis.from_url(os.environ["REDIS_URL"])
    job_id = uuid.uuid4().hex
    with tracing.producer_span(queue_name, job_id, function) as carrier:
        Queue(queue_name, connection=connection).enqueue(
            function, *[float(a) for a in args], job_id=job_id, meta={"otel": carrier}
        )
    tracing.flush()
    print(job_id, flush=True)


if __name__ == "__main__":
    main()
