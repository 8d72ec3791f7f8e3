"""Workflow metrics read from Redis at scrape time in O(1): ended workflows by final status, their duration
histogram (both kept by the engine's Lua scripts in ``jobfleet:wf:stats`` when a workflow ends — so they
count workflows finished by any worker, plain ``rq worker`` included) and workflows per current status."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis
from redis.exceptions import RedisError

from jobfleet.workflows.model import STATUSES, TERMINAL
from jobfleet.workflows.store import STATS, index_key

#: Upper bounds (seconds) of the duration buckets; must match ``BUCKETS`` in jobfleet/workflows/scripts.py.
BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


def _bucket_name(bound: float) -> str:
    """The Lua script's ``tostring`` of a bound: integers without a decimal point."""
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


class WorkflowCollector:
    """Prometheus collector of workflow totals (two pipelined commands per scrape)."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def describe(self) -> Iterable[Metric]:
        """No samples at registration time."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Read the stats hash and the per-status index sizes; nothing on a Redis error."""
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.hgetall(STATS)
                for status in STATUSES:
                    pipe.zcard(index_key(status))
                raw, *sizes = pipe.execute()
        except RedisError:
            return []
        stats = {(k.decode() if isinstance(k, bytes) else str(k)): float(v) for k, v in raw.items()}
        ended = CounterMetricFamily("jobfleet_workflows_ended", "Workflows that ended, by final status.",
                                    labels=["status"])
        for status in TERMINAL:
            ended.add_metric([status], stats.get(f"ended:{status}", 0.0))
        current = GaugeMetricFamily("jobfleet_workflows", "Workflows by current status.", labels=["status"])
        for status, size in zip(STATUSES, sizes, strict=True):
            current.add_metric([status], float(size))
        cumulative, buckets = 0.0, []
        for bound in BUCKETS:
            cumulative += stats.get(f"bucket:{_bucket_name(bound)}", 0.0)
            buckets.append((_bucket_name(bound), cumulative))
        cumulative += stats.get("bucket:+Inf", 0.0)
        buckets.append(("+Inf", cumulative))
        duration = HistogramMetricFamily("jobfleet_workflow_duration_seconds",
                                         "Submission to end of ended workflows, seconds.")
        duration.add_metric([], buckets, sum_value=stats.get("seconds_sum", 0.0))
        return [ended, current, duration]


def register_workflow_collector(registry: CollectorRegistry, connection: Redis) -> WorkflowCollector:
    """Register the workflow collector on ``registry`` and return it."""
    collector = WorkflowCollector(connection)
    registry.register(collector)
    return collector
