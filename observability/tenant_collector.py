"""Per-tenant Prometheus metrics read from Redis at scrape time (``jobfleet.tenant_admin.tenant_rows``).

    jobfleet_tenant_jobs{queue,tenant,state}         queued / running jobs of the tenant in the queue
    jobfleet_tenant_served_seconds_total{queue,tenant}  run-seconds served by fair workers (never decayed)
    jobfleet_tenant_usage_seconds{queue,tenant}      decayed run-seconds (what the fair pick compares)
    jobfleet_tenant_weight{tenant}                   weight in force (1 unless set)
    jobfleet_tenant_share{queue,tenant,kind}         kind=current (part of the decayed usage) | entitled

Cost: three pipelined round trips per scrape, O(tenants) commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis
from redis.exceptions import RedisError

from jobfleet.tenant_admin import tenant_rows
from jobfleet.tenants import TENANT_SEPARATOR


class TenantCollector:
    """Collects ``jobfleet_tenant_*`` for the given queues (or every base queue in ``rq:queues`` when empty)."""

    def __init__(self, connection: Redis, queues: Sequence[str] = (), half_life: float = 300.0) -> None:
        self.connection = connection
        self.queues = tuple(queues)
        self.half_life = half_life

    def queue_names(self) -> list[str]:
        """The configured queues, else every queue RQ knows that is not a tenant queue (``q~t``)."""
        if self.queues:
            return list(self.queues)
        prefix = "rq:queue:"
        names = {(k.decode() if isinstance(k, bytes) else str(k))[len(prefix):]
                 for k in self.connection.smembers("rq:queues")}
        return sorted(n for n in names if n and TENANT_SEPARATOR not in n)

    def describe(self) -> Iterable[Metric]:
        """No samples at registration time."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Read every tenant's state; on a Redis error report ``jobfleet_tenant_exporter_up 0`` only."""
        up = GaugeMetricFamily("jobfleet_tenant_exporter_up", "1 if the last read of the tenants from Redis worked.")
        try:
            rows = tenant_rows(self.connection, self.queue_names(), self.half_life)
        except RedisError:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        jobs = GaugeMetricFamily("jobfleet_tenant_jobs", "Jobs of a tenant in a queue by state.",
                                 labels=["queue", "tenant", "state"])
        served = CounterMetricFamily("jobfleet_tenant_served_seconds", "Run-seconds served to a tenant.",
                                     labels=["queue", "tenant"])
        usage = GaugeMetricFamily("jobfleet_tenant_usage_seconds", "Decayed run-seconds of a tenant (fair share).",
                                  labels=["queue", "tenant"])
        weight = GaugeMetricFamily("jobfleet_tenant_weight", "Fair-share weight of a tenant.", labels=["tenant"])
        share = GaugeMetricFamily("jobfleet_tenant_share", "Current (decayed usage) and entitled share of a tenant.",
                                  labels=["queue", "tenant", "kind"])
        weights: dict[str, float] = {}
        for row in rows:
            jobs.add_metric([row.queue, row.tenant, "queued"], float(row.queued))
            jobs.add_metric([row.queue, row.tenant, "running"], float(row.running))
            served.add_metric([row.queue, row.tenant], row.served_s)
            usage.add_metric([row.queue, row.tenant], row.usage_s)
            share.add_metric([row.queue, row.tenant, "current"], row.share)
            share.add_metric([row.queue, row.tenant, "entitled"], row.entitled)
            weights[row.tenant] = row.weight
        for tenant, value in sorted(weights.items()):
            weight.add_metric([tenant], value)
        return [jobs, served, usage, weight, share, up]


def register_tenant_collector(
    registry: CollectorRegistry, connection: Redis, queues: Sequence[str] = (), half_life: float = 300.0
) -> TenantCollector:
    """Register the per-tenant collector on ``registry`` and return it."""
    collector = TenantCollector(connection, queues, half_life)
    registry.register(collector)
    return collector
