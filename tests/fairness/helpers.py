"""Helpers for the fairness tests: enqueue as the tenant-aware submit does, and record job runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
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
    """Job function: sleep ``seconds``, then append ``tenant job_id start end`` to the runs list."""
    began = time.time()
    time.sleep(seconds)
    job = get_current_job()
    assert job is not None
    job.connection.rpush(RUNS_KEY, f"{tenant} {job.id} {began:.6f} {time.time():.6f}")
    return tenant


@dataclass(frozen=True)
class Run:
    """One recorded job run."""

    tenant: str
    job_id: str
    start: float
    end: float


def runs(redis: Redis) -> list[Run]:
    """Recorded runs, in completion order."""
    out = []
    for raw in redis.lrange(RUNS_KEY, 0, -1):
        tenant, job_id, start, end = raw.decode().split()
        out.append(Run(tenant, job_id, float(start), float(end)))
    return out


def max_concurrency(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at once."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def window_shares(all_runs: list[Run], tenants: list[str], start: float, end: float) -> dict[str, float]:
    """Each tenant's part of the run-seconds served to ``tenants`` within ``[start, end]``."""
    used = {t: 0.0 for t in tenants}
    for run in all_runs:
        if run.tenant in used:
            used[run.tenant] += max(0.0, min(run.end, end) - max(run.start, start))
    total = sum(used.values())
    return {t: (u / total if total else 0.0) for t, u in used.items()}
