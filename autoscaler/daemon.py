"""The autoscaler daemon: observe, decide (the pure policy), act through a backend, record; every few seconds.

Each decision is appended to the capped Redis stream ``jobfleet:autoscaler:decisions`` (read by the
dashboard and the `make run` status line), emitted as an OpenTelemetry span with its inputs and reason,
and reflected in the ``jobfleet_autoscaler_*`` Prometheus metrics. The crash-recovery sweep of started
registries runs here every ``recovery_interval`` seconds. In dry-run mode nothing is changed.

Only the holder of the leader lock (:mod:`autoscaler.leader`) acts, sweeps and appends to the stream
(each entry names the daemon in ``daemon``); a standby daemon observes, decides and exports its metrics
(``jobfleet_autoscaler_leader`` 0) and takes over when the lock expires. With ``JOBFLEET_WARM_POOL_MAX``
> 0 the leader also sizes the ASG warm pool (:mod:`autoscaler.warm_pool`) from its scale-out history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from typing import Any

from opentelemetry import trace
from redis import Redis

from autoscaler import metrics
from autoscaler.backends.base import Backend
from autoscaler.history import HistoryStore
from autoscaler.leader import LeaderLock
from autoscaler.observe import QueueObserver, build_observation
from autoscaler.policy import Decision, Observation, PolicyConfig, decide, mean_service
from autoscaler.warm_pool import WarmPoolConfig, warm_pool_size
from autoscaler.window import BurstHistory, BurstRecurrence, IdleFloor, burst_lead
from jobfleet.logs import log_event
from jobfleet.settings import Settings

DECISIONS_STREAM = "jobfleet:autoscaler:decisions"
WARM_POOL_LEARN_S = 3600.0  # until the burst history is this old the warm pool only grows
STREAM_MAXLEN = 1000


def policy_config(settings: Settings) -> PolicyConfig:
    """The policy knobs from settings (raises ValueError with every problem on a bad combination)."""
    targets = settings.target_waits
    return PolicyConfig(
        min_instances=settings.autoscaler_min, max_instances=settings.autoscaler_max,
        slots_per_instance=settings.slots_per_instance,
        target_wait_s=targets.fallback if targets.fallback is not None else targets.loosest(),
        queue_targets=targets.per_queue, warm_boot_time_s=settings.warm_boot_time,
        boot_time_s=settings.boot_time, idle_hold_s=settings.idle_hold_seconds, max_step=settings.max_step,
        stale_after_s=settings.stale_after, default_service_s=settings.default_service_time,
        fast_drain_s=settings.fast_drain, noise_band=settings.noise_band, peak_hold_s=settings.burst_hold,
        start_at_once_idle_s=settings.start_at_once_idle,
    )


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class Daemon:
    """One autoscaler: call :meth:`step` once, or :meth:`run` until ``stop`` is set."""

    def __init__(
        self, settings: Settings, backend: Backend, connection: Redis, dry_run: bool | None = None,
        daemon_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.connection = connection
        self.dry_run = settings.dry_run if dry_run is None else dry_run
        self.config = policy_config(settings)
        self.observer = QueueObserver(connection, settings.queues,
                                      forecast_horizon_s=self.config.boot_time_s + settings.autoscaler_interval)
        self.idle_floor = IdleFloor(self.config.idle_hold())
        self.tracer = trace.get_tracer("jobfleet.autoscaler")
        self.last_sweep = 0.0
        self.last_decision: Decision | None = None
        self.lock = LeaderLock(connection, settings.leader_ttl, me=daemon_id)
        self.me = self.lock.me
        self.leader = False
        self.bursts = BurstHistory()
        self.recurrence = BurstRecurrence(within_s=self.config.boot_time_s)
        self.warm_pool = WarmPoolConfig(
            max_size=settings.warm_pool_max, stopped_cost_ratio=settings.stopped_cost_ratio,
            wait_cost=settings.wait_cost, learn_s=0.0,
        ) if settings.warm_pool_max > 0 else None
        self.warm_pool_size: int | None = None
        self.history = HistoryStore(connection)
        try:  # the forecast's arrival history survives a restart (and a failover: the leader keeps it)
            self.history.load(self.observer.seasonal, time.time())
        except Exception as exc:
            log_event("autoscaler_history_load_failed", level=logging.WARNING, error=_short(exc))

    def _lead(self) -> bool:
        try:
            return self.lock.acquire_or_renew()
        except Exception as exc:
            log_event("autoscaler_leader_lock_failed", level=logging.WARNING, error=_short(exc))
            return False

    def observe(self, now: float) -> Observation:
        """A snapshot of queues and fleet, or an Observation carrying the error that prevented it."""
        try:
            queues = self.observer.read(now)
        except Exception as exc:
            return Observation(now=now, observed_at=None, desired=0, error=f"redis: {_short(exc)}")
        try:
            instances = self.backend.fleet()
            desired = self.backend.desired()
            pool_ready = self.backend.warm_pool_ready() if self.warm_pool and hasattr(self.backend,
                                                                                      "warm_pool_ready") else 0
        except Exception as exc:
            return Observation(now=now, observed_at=None, desired=0, queues=tuple(queues),
                               error=f"backend: {_short(exc)}")
        obs = build_observation(now, queues, instances, desired, self.idle_floor)
        lead = burst_lead(self.config.boot_time_s, self.settings.autoscaler_interval)
        return dataclasses.replace(
            obs, warm_pool_ready=pool_ready, warm_pool_prepared=self.warm_pool_size or 0,
            **self.recurrence.observed(now, self.config.peak_hold_s, lead),
        )

    def act(self, obs: Observation, decision: Decision) -> list[str]:
        """Apply ``decision`` through the backend (leader only, unless dry-run or holding on bad input)."""
        if self.dry_run or obs.error or obs.observed_at is None or not self.leader:
            return []
        if not self.lock.renew():  # the lease ran out since the tick began: another daemon may act now
            self.leader = False
            return []
        drained: list[str] = []
        if decision.drain:
            drained = self.backend.drain(decision.drain)
            self.idle_floor.consume(len(drained) * self.config.slots_per_instance)
        if decision.desired > len(obs.instances):
            self.backend.set_desired(decision.desired)
        self.size_warm_pool(obs)
        return drained

    def size_warm_pool(self, obs: Observation) -> None:
        """PutWarmPool when the size the burst history asks for changed (aws backend, warm pool enabled).

        While the history is younger than an hour (a new daemon, or a standby that just took over) the pool
        only grows: a leader that has not seen the last bursts must not empty a pool sized by its predecessor.
        """
        if self.warm_pool is None or not hasattr(self.backend, "set_warm_pool"):
            return
        size = warm_pool_size(
            self.bursts.bursts(obs.now, self.config.boot_time_s), self.bursts.span_s(obs.now), self.warm_pool,
            slots=self.config.slots_per_instance, service_s=mean_service(obs, self.config),
            cold_boot_s=self.config.boot_time_s, warm_boot_s=self.config.warm_boot_time_s,
        )
        learning = self.bursts.span_s(obs.now) < WARM_POOL_LEARN_S
        if size == self.warm_pool_size or (learning and size <= (self.warm_pool_size or 0)):
            return
        self.backend.set_warm_pool(size)
        self.warm_pool_size = size

    def step(self, now: float | None = None) -> Decision:
        """One observe-decide-act-record cycle."""
        now = time.time() if now is None else now
        with self.tracer.start_as_current_span("autoscaler.decide") as span:
            self.leader = self._lead()
            obs = self.observe(now)
            decision = decide(obs, self.config)
            if obs.error is None and obs.observed_at is not None:  # leader or not: the burst history
                self.bursts.add(now, max(0, decision.desired - len(obs.instances)))
                self.recurrence.add(now, self.observer.seen_total(), decision.desired)
            if not self.leader and decision.code != "stale":
                decision = dataclasses.replace(decision, code="follower", hold=True,
                                               reason=f"standby (leader {self.holder()}): {decision.reason}")
            try:
                drained = self.act(obs, decision)
            except Exception as exc:
                drained = []
                decision = Decision(desired=decision.desired, drain=(), reason=f"{decision.reason}; ACT FAILED: "
                                    f"{_short(exc)}", in_service=decision.in_service, booting=decision.booting,
                                    busy=decision.busy, hold=True, inputs=decision.inputs, code="stale")
            for key, value in decision.inputs.items():
                span.set_attribute(f"autoscaler.input.{key}", value)
            span.set_attribute("autoscaler.desired", decision.desired)
            span.set_attribute("autoscaler.drained", drained)
            span.set_attribute("autoscaler.reason", decision.reason)
            span.set_attribute("autoscaler.code", decision.code)
            span.set_attribute("autoscaler.dry_run", self.dry_run)
            span.set_attribute("autoscaler.daemon", self.me)
            span.set_attribute("autoscaler.leader", self.leader)
        self.record(now, obs, decision, drained)
        self.last_decision = decision
        if self.leader:
            self.maybe_sweep(now)
            if obs.error is None and obs.observed_at is not None:
                try:
                    self.history.save(self.observer.seasonal, now)
                except Exception as exc:
                    log_event("autoscaler_history_save_failed", level=logging.WARNING, error=_short(exc))
        return decision

    def holder(self) -> str:
        """The current leader's id (or '?' when Redis cannot say)."""
        try:
            return self.lock.holder() or "none"
        except Exception:
            return "?"

    def record(self, now: float, obs: Observation, decision: Decision, drained: list[str]) -> None:
        """Append the decision to the Redis stream, update metrics and log it."""
        metrics.record_decision(decision.desired, decision.in_service, decision.booting, decision.busy,
                                decision.code, now)
        metrics.LEADER.set(1 if self.leader else 0)
        if not self.leader:
            log_event("autoscaler_standby", level=logging.DEBUG, desired=decision.desired, daemon=self.me)
            return
        entry: dict[Any, Any] = {
            "ts": f"{now:.3f}", "desired": decision.desired, "in_service": decision.in_service,
            "booting": decision.booting, "busy": decision.busy, "queued": obs.queued, "started": obs.started,
            "reason": decision.reason, "code": decision.code, "drained": json.dumps(drained),
            "dry_run": int(self.dry_run), "inputs": json.dumps(decision.inputs), "daemon": self.me,
        }
        log_event("autoscaler_decision", desired=decision.desired, code=decision.code, reason=decision.reason,
                  drained=drained, dry_run=self.dry_run, daemon=self.me)
        try:
            self.connection.xadd(DECISIONS_STREAM, entry, maxlen=STREAM_MAXLEN, approximate=True)
        except Exception as exc:
            log_event("autoscaler_record_failed", level=logging.WARNING, error=_short(exc))

    def maybe_sweep(self, now: float) -> None:
        """Run the crash-recovery sweep when ``recovery_interval`` has passed."""
        if now - self.last_sweep < self.settings.recovery_interval:
            return
        self.last_sweep = now
        try:
            from worker.recovery import sweep_abandoned
        except ImportError:  # pragma: no cover - the worker package always ships it
            return
        try:
            recovered = sweep_abandoned(self.connection, self.settings.queues, self.settings)
        except Exception as exc:
            log_event("autoscaler_sweep_failed", level=logging.WARNING, error=_short(exc))
            return
        if recovered:
            log_event("autoscaler_sweep", recovered=recovered)

    def run(self, stop: threading.Event, once: bool = False) -> None:
        """Loop every ``autoscaler_interval`` seconds until ``stop`` is set (capacity is left as it is)."""
        try:
            while not stop.is_set():
                started = time.monotonic()
                self.step()
                if once:
                    return
                stop.wait(max(0.0, self.settings.autoscaler_interval - (time.monotonic() - started)))
        finally:
            with contextlib.suppress(Exception):
                self.lock.release()  # a standby takes over at its next tick instead of after the TTL
