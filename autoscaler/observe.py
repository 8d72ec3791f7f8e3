"""The adapter from Redis to the policy: read queue state with O(queues) Redis calls and build an Observation.

Per queue one pipeline holds LLEN of the queue list, ZCARD of the started, scheduled, finished and failed
registries and the id of the oldest queued job (RQ appends at the tail, so index 0 is the oldest); a
second pipeline reads each oldest job's ``enqueued_at``. Rates come from :class:`RateWindow` kept by the
caller between observations: arrivals are increments of every job the queue has seen, completions
increments of finished + failed. The mean service time is Little's law over the window: the integral of
running jobs (busy slot-seconds) divided by the completions. The spread of service times (their squared
coefficient of variation) comes from ``started_at``/``ended_at`` of the most recently finished jobs, read
every ``spread_every_s`` seconds (one more pipelined round trip then).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq import Queue

from autoscaler.policy import InstanceState, Observation, QueueState
from autoscaler.window import (
    RATE_WINDOW_S,
    RECENT_RATE_S,
    SERVICE_SAMPLE,
    IdleFloor,
    RateWindow,
    SeasonalForecast,
    service_cv2,
)
from jobfleet.rq_time import parse_rq_time
from jobfleet.tenants import tenant_queue_names


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class QueueObserver:
    """Reads :class:`QueueState` for a fixed list of queues, keeping a rolling rate window per queue."""

    def __init__(
        self, connection: Redis, queue_names: Sequence[str], window_s: float = RATE_WINDOW_S,
        recent_s: float = RECENT_RATE_S, forecast_horizon_s: float | None = None, spread_every_s: float = 30.0,
    ) -> None:
        if not queue_names:
            raise ValueError("QueueObserver needs at least one queue name")
        self.connection = connection
        self.queues = [Queue(name, connection=connection) for name in queue_names]
        self.windows = {q.name: RateWindow(seconds=window_s) for q in self.queues}
        self.recent_s = recent_s
        self.forecast_horizon_s = forecast_horizon_s  # None: no seasonal forecast
        self.seasonal = {q.name: SeasonalForecast() for q in self.queues}
        self.spread_every_s = spread_every_s
        self.spread: dict[str, float | None] = {}
        self._spread_at = -float("inf")

    def seen_total(self) -> float:
        """Every job the observed queues have seen, as of the last :meth:`read` (the arrivals counter)."""
        return sum(w.seen_total for w in self.windows.values())

    def service_spread(self, families: Sequence[Sequence[Queue]]) -> dict[str, float | None]:
        """Squared CV of the service times of each queue's latest finished jobs (None: too few)."""
        per_member = max(1, SERVICE_SAMPLE // max(1, max(len(f) for f in families)))
        pipe = self.connection.pipeline(transaction=False)
        for q in (member for family in families for member in family):
            pipe.zrevrange(q.finished_job_registry.key, 0, per_member - 1)
        ids = iter(pipe.execute())
        family_ids = [[_text(i) for member in family for i in next(ids)] for family in families]
        pipe = self.connection.pipeline(transaction=False)
        for job_id in (i for group in family_ids for i in group):
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at")
        stamps = iter(pipe.execute())
        spread: dict[str, float | None] = {}
        for q, group in zip(self.queues, family_ids, strict=True):
            durations = []
            for _ in group:
                started, ended = (parse_rq_time(v) for v in next(stamps))
                if started is not None and ended is not None and ended >= started:
                    durations.append(ended - started)
            spread[q.name] = service_cv2(durations[:SERVICE_SAMPLE])
        return spread

    def read(self, now: float | None = None) -> list[QueueState]:
        """One snapshot of every queue (two pipelined round trips, plus one SMEMBERS per queue for its tenants)."""
        now = time.time() if now is None else now
        # a queue's work includes its tenants' queues (q~t, see jobfleet.tenants): counts add up, oldest wins
        families = [[q, *(Queue(n, connection=self.connection) for n in tenant_queue_names(self.connection, q.name))]
                    for q in self.queues]
        pipe = self.connection.pipeline(transaction=False)
        for q in (member for family in families for member in family):
            pipe.llen(q.key)
            pipe.zcard(q.started_job_registry.key)
            pipe.zcard(q.scheduled_job_registry.key)
            pipe.zcard(q.finished_job_registry.key)
            pipe.zcard(q.failed_job_registry.key)
            pipe.lindex(q.key, 0)
        replies = iter(pipe.execute())
        rows = [[[next(replies) for _ in range(6)] for _ in family] for family in families]
        oldest_ids = [_text(row[5]) for family_rows in rows for row in family_rows]
        pipe = self.connection.pipeline(transaction=False)
        for job_id in oldest_ids:
            pipe.hget(f"rq:job:{job_id}", "enqueued_at") if job_id else pipe.echo("")
        parsed = iter(parse_rq_time(stamp) for stamp in pipe.execute())
        oldest = [min((t for t in (next(parsed) for _ in family_rows) if t is not None), default=None)
                  for family_rows in rows]
        if now - self._spread_at >= self.spread_every_s:
            self.spread = self.service_spread(families)
            self._spread_at = now
        states = []
        for q, family_rows, enqueued_at in zip(self.queues, rows, oldest, strict=True):
            queued, started, scheduled, finished, failed = (sum(int(r[k]) for r in family_rows) for k in range(5))
            window = self.windows[q.name]
            seen = float(queued + started + scheduled + finished + failed)
            window.add(now, seen, float(finished + failed), float(started))
            forecast = None
            if self.forecast_horizon_s is not None:
                self.seasonal[q.name].add(now, seen)
                forecast = self.seasonal[q.name].forecast(now, self.forecast_horizon_s)
            arrivals, completions = window.rates()
            oldest_age = max(0.0, now - enqueued_at) if (queued and enqueued_at is not None) else 0.0
            service = window.service_s()
            states.append(
                QueueState(
                    name=q.name, queued=queued, started=started, scheduled=scheduled, oldest_age_s=oldest_age,
                    arrival_rate=arrivals, completion_rate=completions, mean_service_s=service,
                    recent_arrival_rate=(recent := window.recent(self.recent_s))[0], recent_window_s=recent[1],
                    rate_window_s=window.span_s(), forecast_rate=forecast, service_cv2=self.spread.get(q.name),
                )
            )
        return states


def build_observation(
    now: float,
    queues: Sequence[QueueState],
    instances: Sequence[InstanceState],
    desired: int,
    idle_floor: IdleFloor | None = None,
) -> Observation:
    """Combine queue and fleet state into an Observation, updating the idle-slot floor window."""
    floor = None
    if idle_floor is not None:
        idle_slots = sum(i.slots - i.busy for i in instances if i.ready and i.healthy)
        idle_floor.add(now, idle_slots)
        floor = idle_floor.floor(now)
    return Observation(
        now=now, observed_at=now, desired=desired, queues=tuple(queues), instances=tuple(instances),
        idle_slots_floor=floor,
    )
