"""Policies the simulator runs: ours (the daemon's own ``autoscaler.policy.decide``) and four baselines.

The baselines follow /work/shared/anchors/autoscaling-baselines.md with the anchors' documented defaults.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from autoscaler.policy import InstanceState, Observation, PolicyConfig, QueueState, decide, mean_service
from autoscaler.warm_pool import WarmPoolConfig, warm_pool_size
from autoscaler.window import (
    RATE_WINDOW_S,
    RECENT_RATE_S,
    BurstHistory,
    BurstRecurrence,
    IdleFloor,
    RateWindow,
    SeasonalForecast,
    burst_lead,
    service_cv2,
)
from bench.sim import Action, FleetView


class _NoSelfTermination:
    def self_terminating(self, view: FleetView) -> list[str]:
        return []


@dataclass
class OursPolicy(_NoSelfTermination):
    """The daemon's policy, fed an Observation built exactly like the daemon builds it (one state per queue).

    ``warm_pool`` set: the policy also sizes the ASG warm pool from its own burst history. ``forecast``:
    per-queue seasonal forecasts of the arrivals over the next boot time (daily period).
    """

    config: PolicyConfig
    interval_s: float = 3.0
    rate_window_s: float = RATE_WINDOW_S
    name: str = "ours"
    warm_pool: WarmPoolConfig | None = None
    forecast: bool = True
    variability: bool = True  # size the wait tail by the measured service-time spread
    period_s: float = 86400.0
    _rates: dict[str, RateWindow] = field(init=False)
    _seasonal: dict[str, SeasonalForecast] = field(init=False)
    _idle: IdleFloor = field(init=False)
    _bursts: BurstHistory = field(init=False)
    _recurrence: BurstRecurrence = field(init=False)
    _pool_size: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._recurrence = BurstRecurrence(within_s=self.config.boot_time_s)
        self._rates = {}
        self._seasonal = {}
        self._idle = IdleFloor(self.config.idle_hold())
        self._bursts = BurstHistory()

    def tick(self, view: FleetView) -> Action:
        now = view.now
        instances = tuple(
            InstanceState(
                id=i.id, slots=i.slots, busy=i.busy, launched_at=i.launched_at, ready=i.ready(now),
                idle_since=i.idle_since if i.ready(now) and not i.running else None, warm=i.warm,
            )
            for i in view.instances
        )
        idle_slots = sum(i.slots - i.busy for i in instances if i.ready)
        self._idle.add(now, idle_slots)
        horizon = self.config.boot_time_s + self.interval_s
        queues = []
        for name in view.queue_order:
            rates = self._rates.setdefault(name, RateWindow(self.rate_window_s))
            seen = view.arrivals_by_queue.get(name, 0)
            rates.add(now, seen, view.completions_by_queue.get(name, 0), view.started_by_queue.get(name, 0))
            forecast = None
            if self.forecast:
                seasonal = self._seasonal.setdefault(name, SeasonalForecast(self.period_s))
                seasonal.add(now, seen)
                forecast = seasonal.forecast(now, horizon)
            arrival_rate, completion_rate = rates.rates()
            recent = rates.recent(RECENT_RATE_S)
            queues.append(QueueState(
                name=name, queued=view.queued_by_queue.get(name, 0), started=view.started_by_queue.get(name, 0),
                oldest_age_s=view.oldest_by_queue.get(name, 0.0), arrival_rate=arrival_rate,
                completion_rate=completion_rate, mean_service_s=rates.service_s(), recent_arrival_rate=recent[0],
                recent_window_s=recent[1], rate_window_s=rates.span_s(), forecast_rate=forecast,
                service_cv2=service_cv2(view.service_by_queue.get(name, ())) if self.variability else None,
            ))
        obs = Observation(
            now=now, observed_at=now, desired=len(instances), queues=tuple(queues), instances=instances,
            idle_slots_floor=self._idle.floor(now), warm_pool_ready=view.warm_pool_ready if self.warm_pool else 0,
            warm_pool_prepared=self._pool_size,
            **self._recurrence.observed(now, self.config.peak_hold_s, burst_lead(self.config.boot_time_s,
                                                                                  self.interval_s)),
        )
        decision = decide(obs, self.config)
        if decision.drain:
            self._idle.consume(len(decision.drain) * self.config.slots_per_instance)
        self._bursts.add(now, max(0, decision.desired - len(instances)))
        self._recurrence.add(now, float(sum(view.arrivals_by_queue.values())), decision.desired)
        pool = None
        if self.warm_pool is not None:
            pool = warm_pool_size(
                self._bursts.bursts(now, self.config.boot_time_s), self._bursts.span_s(now), self.warm_pool,
                slots=self.config.slots_per_instance, service_s=mean_service(obs, self.config),
                cold_boot_s=self.config.boot_time_s, warm_boot_s=self.config.warm_boot_time_s,
            )
        self._pool_size = pool or 0
        return Action(decision.desired, decision.drain, pool)


@dataclass
class SeedThreshold(_NoSelfTermination):
    """The original: every 10 s, +1 if queued > 50, -1 if queued < 10; any instance is removed."""

    min_instances: int = 0
    max_instances: int = 100
    interval_s: float = 10.0
    name: str = "seed-threshold"

    def tick(self, view: FleetView) -> Action:
        n = len(view.instances)
        if view.queued > 50:
            n += 1
        elif view.queued < 10:
            n -= 1
        return Action(min(self.max_instances, max(self.min_instances, n)))


@dataclass
class KedaHpa(_NoSelfTermination):
    """KEDA Redis Lists scaler (listLength 5) + HPA defaults, min 0 with activation/cooldown."""

    slots_per_instance: int = 1
    list_length: int = 5
    interval_s: float = 15.0
    polling_s: float = 30.0
    stabilization_s: float = 300.0
    cooldown_s: float = 300.0
    tolerance: float = 0.1
    name: str = "keda-hpa"
    _recs: deque[tuple[float, int]] = field(default_factory=deque)
    _last_active: float = -1e18
    _last_poll: float = -1e18
    _active: bool = False

    def tick(self, view: FleetView) -> Action:
        n = len(view.instances)
        queued = view.queued
        if n == 0:
            # activation is only checked on KEDA's polling interval
            if view.now - self._last_poll < self.polling_s:
                return Action(0)
            self._last_poll = view.now
            if queued > 0:
                self._last_active = view.now
                self._recs.clear()
                return Action(1)
            return Action(0)
        if queued > 0:
            self._last_active = view.now
        elif view.now - self._last_active >= self.cooldown_s:
            self._recs.clear()
            return Action(0)  # deactivation: scale to zero after the cooldown without activity
        ratio = queued / (self.list_length * n)
        desired = n if abs(ratio - 1) <= self.tolerance else math.ceil(queued / self.list_length)
        desired = max(1, desired)
        if desired > n:
            desired = min(desired, max(n + 4, 2 * n))
        self._recs.append((view.now, desired))
        while self._recs and self._recs[0][0] < view.now - self.stabilization_s:
            self._recs.popleft()
        if desired < n:
            desired = max(r for _, r in self._recs)  # highest recommendation of the last 300 s
        return Action(desired)


@dataclass
class AwsTargetTracking(_NoSelfTermination):
    """AWS target tracking on backlog per instance (queued / n), 60 s datapoints, default alarms."""

    target: float
    min_instances: int = 0
    interval_s: float = 60.0
    scale_in_cooldown_s: float = 300.0
    name: str = "aws-target-tracking"
    _points: deque[float] = field(default_factory=lambda: deque(maxlen=15))
    _last_scale_in: float = -1e18

    def tick(self, view: FleetView) -> Action:
        n_all = len(view.instances)
        in_service = len(view.in_service)
        metric = view.queued / max(1, in_service)
        self._points.append(metric)
        recent = list(self._points)
        if len(recent) >= 3 and all(p > self.target for p in recent[-3:]):
            # warming instances are not counted as capacity: size on the in-service ones
            desired = math.ceil(max(1, in_service) * metric / self.target)
            return Action(max(n_all, desired))
        if (
            len(recent) == 15
            and all(p < 0.9 * self.target for p in recent)
            and view.now - self._last_scale_in >= self.scale_in_cooldown_s
        ):
            desired = max(self.min_instances, math.floor(n_all * metric / self.target))
            if desired < n_all:
                self._last_scale_in = view.now
                return Action(desired)
        return Action(n_all)


@dataclass
class BuildkiteStyle:
    """Every 10 s desired = ceil((queued + started) / c); idle instances terminate themselves."""

    slots_per_instance: int = 1
    idle_timeout_s: float = 600.0
    interval_s: float = 10.0
    name: str = "buildkite-style"

    def tick(self, view: FleetView) -> Action:
        need = math.ceil((view.queued + view.started) / self.slots_per_instance)
        return Action(max(len(view.instances), need))

    def self_terminating(self, view: FleetView) -> list[str]:
        return [
            i.id for i in view.instances
            if i.ready(view.now) and not i.running and i.idle_since is not None
            and view.now - i.idle_since >= self.idle_timeout_s
        ]
