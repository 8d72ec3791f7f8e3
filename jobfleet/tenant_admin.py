"""Tenant administration and statistics: weights and caps in Redis (read by workers at every dequeue), and
one row per tenant of a queue for the CLI, the dashboard and the metrics.

    jobfleet tenants list [--queue Q ...] [--json]
    jobfleet tenants set-weight TENANT WEIGHT
    jobfleet tenants set-cap TENANT N|none
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from redis import Redis

from jobfleet.tenants import (
    CAPS_KEY,
    DEFAULT_TENANT,
    FAIR_PREFIX,
    WEIGHTS_KEY,
    check_cap,
    check_tenant,
    check_weight,
    fair_key,
    tenant_index_key,
    tenant_queue_name,
)

# KEYS: weights, then (ready, usage) per queue. ARGV: tenant, weight. Sets the weight and rescores the tenant
# wherever it is backlogged, so the very next dequeue uses it.
_SET_WEIGHT = r"""
local t, w = ARGV[1], tonumber(ARGV[2])
redis.call('HSET', KEYS[1], t, ARGV[2])
for i = 2, #KEYS, 2 do
  local s = redis.call('ZSCORE', KEYS[i], t)
  if s and tonumber(s) ~= -math.huge then
    local used = tonumber(redis.call('HGET', KEYS[i + 1], t)) or 0
    redis.call('ZADD', KEYS[i], 'XX', tostring(used / w), t)
  end
end
return 1
"""


@dataclass(frozen=True)
class TenantRow:
    """One tenant of one queue, as the dashboard and metrics show it."""

    queue: str
    tenant: str
    rq_queue: str
    queued: int
    running: int
    served_s: float  # run-seconds served by fair workers, ever
    usage_s: float  # decayed run-seconds (what the fair pick compares, before dividing by the weight)
    weight: float
    cap: int | None
    share: float  # this tenant's part of the queue's decayed usage
    entitled: float  # its weight over the weights of the queue's active tenants (0 when inactive)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fair_queues(connection: Redis) -> list[str]:
    """Queues that fair workers have served (those with fair-share state)."""
    suffix = ":meta"
    names = {_text(k)[len(FAIR_PREFIX):-len(suffix)] for k in connection.scan_iter(f"{FAIR_PREFIX}*{suffix}")}
    return sorted(names)


def set_weight(connection: Redis, tenant: str, weight: Any) -> float:
    """Set ``tenant``'s weight (ValueError on a bad name or weight); applies to the next dequeue."""
    name = check_tenant(tenant)
    value = check_weight(weight)
    keys = [WEIGHTS_KEY]
    for queue in fair_queues(connection):
        keys += [fair_key(queue, "ready"), fair_key(queue, "usage")]
    connection.eval(_SET_WEIGHT, len(keys), *keys, name, repr(value))
    return value


def set_cap(connection: Redis, tenant: str, cap: Any) -> int | None:
    """Set (or with None / "none" remove) ``tenant``'s cap on running jobs per queue."""
    name = check_tenant(tenant)
    value = None if isinstance(cap, str) and cap.strip().lower() == "none" else check_cap(cap)
    if value is None:
        connection.hdel(CAPS_KEY, name)
    else:
        connection.hset(CAPS_KEY, name, value)
    return value


def tenant_rows(connection: Redis, queues: Sequence[str], half_life: float) -> list[TenantRow]:
    """Every tenant (the default one included) of each of ``queues``: three pipelined round trips per call."""
    pipe = connection.pipeline(transaction=False)
    for queue in queues:
        pipe.smembers(tenant_index_key(queue))
        pipe.hgetall(fair_key(queue, "usage"))
        pipe.hgetall(fair_key(queue, "served"))
        pipe.hget(fair_key(queue, "meta"), "t0")
    pipe.hgetall(WEIGHTS_KEY)
    pipe.hgetall(CAPS_KEY)
    pipe.time()
    replies = pipe.execute()
    seconds, micros = replies[-1]
    now = float(seconds) + float(micros) / 1e6
    weights = {_text(k): float(v) for k, v in replies[-3].items()}
    caps = {_text(k): int(v) for k, v in replies[-2].items()}
    per_queue: list[tuple[str, list[str], dict[str, float], dict[str, float], float]] = []
    for i, queue in enumerate(queues):
        members, usage, served, t0 = replies[4 * i: 4 * i + 4]
        tenants = sorted({DEFAULT_TENANT, *(_text(m) for m in members)})
        factor = 2.0 ** ((now - float(t0)) / half_life) if (t0 is not None and half_life > 0) else 1.0
        decayed = {_text(k): float(v) / factor for k, v in usage.items()}
        per_queue.append((queue, tenants, decayed, {_text(k): float(v) for k, v in served.items()}, factor))
    pipe = connection.pipeline(transaction=False)
    for queue, tenants, *_ in per_queue:
        for tenant in tenants:
            name = tenant_queue_name(queue, tenant)
            pipe.llen(f"rq:queue:{name}")
            pipe.zcard(f"rq:wip:{name}")
            pipe.llen(f"rq:queue:{name}:intermediate")
    counts = iter(pipe.execute())
    rows: list[TenantRow] = []
    for queue, tenants, decayed, served, _ in per_queue:
        stats = {t: (int(next(counts)), int(next(counts)) + int(next(counts))) for t in tenants}
        active = [t for t, (q, r) in stats.items() if q or r]
        weight_sum = sum(weights.get(t, 1.0) for t in active)
        usage_sum = sum(decayed.get(t, 0.0) for t in tenants)
        for tenant in tenants:
            queued, running = stats[tenant]
            weight = weights.get(tenant, 1.0)
            rows.append(TenantRow(
                queue=queue, tenant=tenant, rq_queue=tenant_queue_name(queue, tenant), queued=queued,
                running=running, served_s=round(served.get(tenant, 0.0), 6),
                usage_s=round(decayed.get(tenant, 0.0), 6), weight=weight, cap=caps.get(tenant),
                share=round(decayed.get(tenant, 0.0) / usage_sum, 6) if usage_sum > 0 else 0.0,
                entitled=round(weight / weight_sum, 6) if tenant in active and weight_sum > 0 else 0.0,
            ))
    return rows


def main(argv: Sequence[str] | None = None, prog: str = "jobfleet tenants") -> int:
    """The ``jobfleet tenants`` command; bad input ends with a one-line error and exit status 2."""
    from jobfleet.connection import redis_connection
    from jobfleet.settings import SettingsError, load_settings

    parser = argparse.ArgumentParser(prog=prog, description="Tenants: weights, caps and fair-share state.")
    sub = parser.add_subparsers(dest="action", required=True)
    p_list = sub.add_parser("list", help="per-tenant queued, running, served, weight and shares")
    p_list.add_argument("--queue", action="append", default=None, help="queue (repeatable; default JOBFLEET_QUEUES)")
    p_list.add_argument("--json", action="store_true", help="one JSON object per line")
    p_weight = sub.add_parser("set-weight", help="set a tenant's weight (> 0; default 1)")
    p_weight.add_argument("tenant")
    p_weight.add_argument("weight")
    p_cap = sub.add_parser("set-cap", help="cap a tenant's running jobs per queue (>= 1, or none)")
    p_cap.add_argument("tenant")
    p_cap.add_argument("cap")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        settings = load_settings()
        connection = redis_connection(settings)
        if args.action == "set-weight":
            print(f"tenant {args.tenant}: weight {set_weight(connection, args.tenant, args.weight):g}")
        elif args.action == "set-cap":
            cap = set_cap(connection, args.tenant, args.cap)
            print(f"tenant {args.tenant}: cap {cap if cap is not None else 'none'}")
        else:
            rows = tenant_rows(connection, args.queue or list(settings.queues), settings.fair_half_life)
            _print_rows(rows, args.json)
    except (ValueError, SettingsError) as exc:
        print(f"jobfleet: {exc}", file=sys.stderr)
        return 2
    return 0


def _print_rows(rows: list[TenantRow], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(asdict(row)))
        return
    header = f"{'queue':<12} {'tenant':<20} {'queued':>7} {'running':>7} {'served_s':>10} {'weight':>7} " \
             f"{'cap':>5} {'share':>6} {'entitled':>8}"
    print(header)
    for r in rows:
        print(f"{r.queue:<12} {r.tenant:<20} {r.queued:>7} {r.running:>7} {r.served_s:>10.1f} {r.weight:>7g} "
              f"{(r.cap if r.cap is not None else '-')!s:>5} {r.share:>6.3f} {r.entitled:>8.3f}")
