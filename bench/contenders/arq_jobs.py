"""arq contender (run with the arq venv): ``arq bench.contenders.arq_jobs.WorkerSettings --burst``.

``python -m bench.contenders.arq_jobs enqueue N`` enqueues N no-op jobs; the ``sleep`` variant is used for the
async-concurrency comparison.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

SETTINGS = RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


async def noop(ctx: dict[str, Any]) -> None:
    """No work; one INCR so the benchmark can count completions (subtracted from its commands per job)."""
    await ctx["redis"].incr("bench:done")


async def nap(ctx: dict[str, Any], seconds: float) -> None:
    """An I/O-bound job."""
    await asyncio.sleep(seconds)
    await ctx["redis"].incr("bench:done")


class WorkerSettings:
    """arq worker configuration: both jobs, default poll delay, up to 50 jobs at once."""

    functions = [noop, nap]
    redis_settings = SETTINGS
    max_jobs = int(os.environ.get("ARQ_MAX_JOBS", "50"))


async def _enqueue(count: int, function: str, *args: Any) -> None:
    pool = await create_pool(SETTINGS)
    for start in range(0, count, 500):
        await asyncio.gather(*(pool.enqueue_job(function, *args) for _ in range(min(500, count - start))))
    await pool.aclose()


if __name__ == "__main__":
    count = int(sys.argv[2])
    function = sys.argv[3] if len(sys.argv) > 3 else "noop"
    asyncio.run(_enqueue(count, function, *[float(a) for a in sys.argv[4:]]))
