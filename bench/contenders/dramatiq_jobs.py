"""Dramatiq contender: one no-op actor counting its runs (``dramatiq bench.contenders.dramatiq_jobs``)."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
dramatiq.set_broker(RedisBroker(url=URL))
_counter = Redis.from_url(URL)


@dramatiq.actor(queue_name="bench")
def noop() -> None:
    """No work; one INCR so the benchmark can count completions (subtracted from its commands per job)."""
    _counter.incr("bench:done")


def enqueue(count: int) -> None:
    """Send ``count`` no-op messages."""
    for _ in range(count):
        noop.send()
