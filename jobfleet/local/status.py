"""A cheap snapshot of the whole fleet for status lines: O(number of queues) Redis calls."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue, Worker

DECISIONS_STREAM = "jobfleet:autoscaler:decisions"


@dataclass(frozen=True)
class FleetStatus:
    """Counts summed over queues, live workers, and the autoscaler's last decision (if any)."""

    queued: int
    started: int
    finished: int
    failed: int
    workers: int
    busy: int
    decision: dict[str, Any] | None


def read_status(connection: Redis, queue_names: Sequence[str], since: float | None = None) -> FleetStatus:
    """Read a :class:`FleetStatus` with a single pipeline per call.

    ``since``: ignore an autoscaler decision taken before this Unix time (e.g. by a previous run).
    """
    queues = [Queue(name, connection=connection) for name in queue_names]
    pipe = connection.pipeline(transaction=False)
    for q in queues:
        pipe.llen(q.key)
        pipe.zcard(q.started_job_registry.key)
        pipe.zcard(q.finished_job_registry.key)
        pipe.zcard(q.failed_job_registry.key)
    pipe.xrevrange(DECISIONS_STREAM, count=1)
    replies = pipe.execute()
    queued, started, finished, failed = (
        sum(int(replies[i + k]) for i in range(0, 4 * len(queues), 4)) for k in range(4)
    )
    decision = _decode_entry(replies[-1][0][1]) if replies[-1] else None
    if decision is not None and since is not None and _number(decision.get("ts")) < since:
        decision = None
    workers = Worker.all(connection=connection)
    busy = sum(1 for w in workers if w.get_state() == "busy")
    return FleetStatus(queued, started, finished, failed, len(workers), busy, decision)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


_NEED = re.compile(r"need (\d+)-(\d+) slots")


def needed_instances(decision: dict[str, Any], slots_per_instance: int) -> int | None:
    """Instances the decision's need calls for (before the min/max bounds), when the decision says."""
    match = _NEED.search(str(decision.get("reason", "")))
    if match is None:
        return None
    return math.ceil(int(match.group(1)) / max(1, slots_per_instance))


def _decode_entry(fields: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        text = value.decode(errors="replace")
        try:
            out[key.decode()] = json.loads(text)
        except ValueError:
            out[key.decode()] = text
    return out
