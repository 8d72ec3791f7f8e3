"""Celery contender: one no-op task counting its runs (``celery -A bench.contenders.celery_app worker``)."""

from __future__ import annotations

import os

from celery import Celery
from redis import Redis

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench", broker=URL)
app.conf.update(task_default_queue="bench", task_ignore_result=True, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)
_counter = Redis.from_url(URL)


@app.task(name="bench.noop")
def noop() -> None:
    """No work; one INCR so the benchmark can count completions (subtracted from its commands per job)."""
    _counter.incr("bench:done")


def enqueue(count: int) -> None:
    """Send ``count`` no-op tasks."""
    for _ in range(count):
        noop.delay()
