"""How many jobs a pool worker claims and hands its executor at once (pure policy, no I/O).

An idle worker claims whatever is there in one round trip; a busy one keeps about ``target_s`` seconds of
work claimed (at least the async concurrency when its jobs are ``async def``), never more than the prefetch
limit, so short jobs are fetched in large batches while long ones are claimed one by one and other workers
can take the rest.
"""

from __future__ import annotations

import math

BATCH_TARGET_S = 0.05  # seconds of work one claim should cover
WINDOW_TARGET_S = 0.01  # seconds of work queued inside the executor
MAX_WINDOW = 64
ASYNC_SPARE = 8  # jobs claimed beyond the async concurrency, so a finishing job is replaced at once


def ewma(previous: float | None, sample: float, weight: float = 0.2) -> float:
    """Exponentially weighted mean of per-job service times."""
    return sample if previous is None else previous + weight * (sample - previous)


def batch_size(service_s: float | None, async_jobs: bool, concurrency: int, limit: int,
               target_s: float = BATCH_TARGET_S) -> int:
    """Jobs to hold claimed: ``target_s`` of work at the observed service time, within [1, ``limit``]."""
    # nothing known yet: the first claim takes one job
    wanted = 1 if service_s is None else math.ceil(target_s / max(service_s, 1e-6))
    if async_jobs:  # keep the event loop full: a little more than its concurrency, even above the limit
        return max(wanted if wanted <= limit else limit, concurrency + ASYNC_SPARE)
    return max(1, min(limit, wanted))


def window(service_s: float | None, async_jobs: bool, concurrency: int, batch: int) -> int:
    """Jobs sent ahead to the executor (the rest of a batch waits in the worker, where it can be released)."""
    if async_jobs:
        return max(2, min(batch, concurrency + ASYNC_SPARE))
    wanted = 2 if service_s is None else math.ceil(WINDOW_TARGET_S / max(service_s, 1e-6))
    return max(2, min(batch, MAX_WINDOW, wanted))


def should_claim(in_flight: int, batch: int, async_jobs: bool = False) -> bool:
    """Claim more once the jobs in hand fell to half a batch (the executor never waits for a round trip);
    with async jobs, as soon as the spare ones are running."""
    if async_jobs:
        return in_flight <= batch - ASYNC_SPARE
    return in_flight <= batch // 2
