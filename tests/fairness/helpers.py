"""Helpers for the fairness tests: enqueue as the tenant-aware submit does, and record job runs."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job

from jobfleet.tenants import check_tenant, register_tenant, tenant_queue_name

RUNS_KEY = "test:fair:runs"


def enqueue(redis: Redis, func: str, *args: Any, queue: str = "default", tenant: str | None = None,
            count: int = 1, **kwargs: Any) -> list[Job]:
    """Enqueue ``count`` jobs of ``tenant`` on ``queue`` the way ``submit(tenant=...)`` does (one pipeline)."""
    name = check_tenant(tenant)
    target = Queue(tenant_queue_name(queue, name), connection=redis)
    jobs = []
    with redis.pipeline() as pipe:
        for _ in range(count):
            jobs.append(target.enqueue_call(func, args=args, kwargs=kwargs, pipeline=pipe))
        register_tenant(pipe, queue, name)
        pipe.execute()
    return jobs


def record(tenant: str, seconds: float) -> str:
    """Job function: sleep ``seconds``, then append ``tenant start end`` to the runs list."""
    began = time.time()
    time.sleep(seconds)
    job = get_current_job()
    assert job is not None
    job.connection.rpush(RUNS_KEY, f"{tenant} {began:.6f} {time.time():.6f}")
    return tenant


def runs(redis: Redis) -> list[tuple[str, float, float]]:
    """Recorded runs as ``(tenant, start, end)``, in completion order."""
    out = []
    for raw in redis.lrange(RUNS_KEY, 0, -1):
        tenant, start, end = raw.decode().split()
        out.append((tenant, float(start), float(end)))
    return out
