"""Per-queue Prometheus metrics read from Redis at scrape time, in O(queues) — never scanning jobs.

Two pipelined round trips per scrape, whatever the number of jobs:

1. per queue: ``LLEN`` of the queue list, ``LINDEX 0`` (its oldest job id: RQ appends with RPUSH and takes
   from the head), ``ZCARD`` of the started (``wip``), scheduled, deferred and failed registries, and the
   members of ``rq:workers:<queue>``;
2. ``HGET enqueued_at`` of each queue's head job and ``EXISTS`` of each registered worker key (a worker
   whose heartbeat key expired is not counted, so "no workers" alerts fire even when nobody cleaned up).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis
from redis.exceptions import RedisError

from jobfleet.rq_time import parse_rq_time

STATES = ("queued", "started", "scheduled", "deferred", "failed")
_REGISTRY_KEYS = {
    "started": "rq:wip:{}",
    "scheduled": "rq:scheduled:{}",
    "deferred": "rq:deferred:{}",
    "failed": "rq:failed:{}",
}
ALL_QUEUES_KEY = "rq:queues"


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class QueueCollector:
    """Collects ``jobfleet_queue_*`` metrics for the given queues (or every queue RQ knows when empty)."""

    def __init__(
        self,
        connection: Redis,
        queues: Sequence[str] = (),
        target_wait: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if target_wait is not None and target_wait <= 0:
            raise ValueError(f"target_wait must be > 0 seconds, got {target_wait}")
        self.connection = connection
        self.queues = tuple(queues)
        self.target_wait = target_wait
        self.clock = clock

    def queue_names(self) -> list[str]:
        """The configured queues, or the members of ``rq:queues`` (sorted) when none were given."""
        if self.queues:
            return list(self.queues)
        prefix = "rq:queue:"
        names = {_decode(key)[len(prefix):] for key in self.connection.smembers(ALL_QUEUES_KEY)}
        return sorted(name for name in names if name)

    def describe(self) -> Iterable[Metric]:
        """No samples at registration time (avoids a Redis call when the collector is registered)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Read the queues from Redis; on a Redis error report ``jobfleet_queue_exporter_up 0`` only."""
        up = GaugeMetricFamily("jobfleet_queue_exporter_up", "1 if the last read of the queues from Redis worked.")
        try:
            metrics = self._read()
        except RedisError:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*metrics, up]

    def _read(self) -> list[Metric]:
        names = self.queue_names()
        pipe = self.connection.pipeline(transaction=False)
        for name in names:
            pipe.llen(f"rq:queue:{name}")
            pipe.lindex(f"rq:queue:{name}", 0)
            for state in ("started", "scheduled", "deferred", "failed"):
                pipe.zcard(_REGISTRY_KEYS[state].format(name))
            pipe.smembers(f"rq:workers:{name}")
        first = pipe.execute()
        per_queue = [first[i * 7:(i + 1) * 7] for i in range(len(names))]

        pipe = self.connection.pipeline(transaction=False)
        for values in per_queue:
            head = values[1]
            if head:
                pipe.hget(f"rq:job:{_decode(head)}", "enqueued_at")
            for worker_key in sorted(_decode(k) for k in values[6]):
                pipe.exists(worker_key)
        second = iter(pipe.execute())
        now = self.clock()

        jobs = GaugeMetricFamily("jobfleet_queue_jobs", "Jobs of a queue by state (failed = dead-letter registry).",
                                 labels=["queue", "state"])
        oldest = GaugeMetricFamily(
            "jobfleet_queue_oldest_job_age_seconds",
            "Age of the oldest job waiting in the queue (0 when empty), seconds.", labels=["queue"],
        )
        workers = GaugeMetricFamily(
            "jobfleet_queue_workers", "Live workers (heartbeat key present) listening on the queue.", labels=["queue"]
        )
        for name, values in zip(names, per_queue, strict=True):
            for state, value in zip(STATES, (values[0], *values[2:6]), strict=True):
                jobs.add_metric([name, state], float(value))
            age = 0.0
            if values[1]:
                enqueued = parse_rq_time(next(second))
                if enqueued is not None:
                    age = max(0.0, now - enqueued)
            oldest.add_metric([name], age)
            live = sum(1 for _ in values[6] if next(second))
            workers.add_metric([name], float(live))
        metrics: list[Metric] = [jobs, oldest, workers]
        if self.target_wait is not None:
            target = GaugeMetricFamily(
                "jobfleet_target_wait_seconds", "Configured target wait (enqueue to start), seconds."
            )
            target.add_metric([], self.target_wait)
            metrics.append(target)
        return metrics


def register_queue_collector(
    registry: CollectorRegistry,
    connection: Redis,
    queues: Sequence[str] = (),
    target_wait: float | None = None,
) -> QueueCollector:
    """Register the per-queue collector on ``registry`` (e.g. the autoscaler's) and return it.

    ``queues`` empty = every queue in ``rq:queues``; ``target_wait`` (seconds) also exports
    ``jobfleet_target_wait_seconds``, the threshold of the "oldest job too old" alert.
    """
    collector = QueueCollector(connection, queues, target_wait)
    registry.register(collector)
    return collector
