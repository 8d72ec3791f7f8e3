"""The autoscaler daemon: observe, decide (the pure policy), act through a backend, record; every few seconds.

Each decision is appended to the capped Redis stream ``jobfleet:autoscaler:decisions`` (read by the
dashboard and the `make run` status line), emitted as an OpenTelemetry span with its inputs and reason,
and reflected in the ``jobfleet_autoscaler_*`` Prometheus metrics. The crash-recovery sweep of started
registries runs here every ``recovery_interval`` seconds. In dry-run mode nothing is changed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from opentelemetry import trace
from redis import Redis

from autoscaler import metrics
from autoscaler.backends.base import Backend
from autoscaler.observe import QueueObserver, build_observation
from autoscaler.policy import Decision, Observation, PolicyConfig, decide
from autoscaler.window import IdleFloor
from jobfleet.logs import log_event
from jobfleet.settings import Settings

DECISIONS_STREAM = "jobfleet:autoscaler:decisions"
STREAM_MAXLEN = 1000


def policy_config(settings: Settings) -> PolicyConfig:
    """The policy knobs from settings (raises ValueError with every problem on a bad combination)."""
    return PolicyConfig(
        min_instances=settings.autoscaler_min, max_instances=settings.autoscaler_max,
        slots_per_instance=settings.slots_per_instance, target_wait_s=settings.target_wait,
        boot_time_s=settings.boot_time, idle_hold_s=settings.idle_hold_seconds, max_step=settings.max_step,
        stale_after_s=settings.stale_after, default_service_s=settings.default_service_time,
        fast_drain_s=settings.fast_drain, noise_band=settings.noise_band,
    )


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class Daemon:
    """One autoscaler: call :meth:`step` once, or :meth:`run` until ``stop`` is set."""

    def __init__(
        self, settings: Settings, backend: Backend, connection: Redis, dry_run: bool | None = None
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.connection = connection
        self.dry_run = settings.dry_run if dry_run is None else dry_run
        self.config = policy_config(settings)
        self.observer = QueueObserver(connection, settings.queues)
        self.idle_floor = IdleFloor(self.config.idle_hold_s)
        self.tracer = trace.get_tracer("jobfleet.autoscaler")
        self.last_sweep = 0.0
        self.last_decision: Decision | None = None

    def observe(self, now: float) -> Observation:
        """A snapshot of queues and fleet, or an Observation carrying the error that prevented it."""
        try:
            queues = self.observer.read(now)
        except Exception as exc:
            return Observation(now=now, observed_at=None, desired=0, error=f"redis: {_short(exc)}")
        try:
            instances = self.backend.fleet()
            desired = self.backend.desired()
        except Exception as exc:
            return Observation(now=now, observed_at=None, desired=0, queues=tuple(queues),
                               error=f"backend: {_short(exc)}")
        return build_observation(now, queues, instances, desired, self.idle_floor)

    def act(self, obs: Observation, decision: Decision) -> list[str]:
        """Apply ``decision`` through the backend (unless dry-run or holding on bad input); drained ids."""
        if self.dry_run or obs.error or obs.observed_at is None:
            return []
        drained: list[str] = []
        if decision.drain:
            drained = self.backend.drain(decision.drain)
            self.idle_floor.consume(len(drained) * self.config.slots_per_instance)
        if decision.desired > len(obs.instances):
            self.backend.set_desired(decision.desired)
        return drained

    def step(self, now: float | None = None) -> Decision:
        """One observe-decide-act-record cycle."""
        now = time.time() if now is None else now
        with self.tracer.start_as_current_span("autoscaler.decide") as span:
            obs = self.observe(now)
            decision = decide(obs, self.config)
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
        self.record(now, obs, decision, drained)
        self.last_decision = decision
        self.maybe_sweep(now)
        return decision

    def record(self, now: float, obs: Observation, decision: Decision, drained: list[str]) -> None:
        """Append the decision to the Redis stream, update metrics and log it."""
        metrics.record_decision(decision.desired, decision.in_service, decision.booting, decision.busy,
                                decision.code, now)
        entry: dict[Any, Any] = {
            "ts": f"{now:.3f}", "desired": decision.desired, "in_service": decision.in_service,
            "booting": decision.booting, "busy": decision.busy, "queued": obs.queued, "started": obs.started,
            "reason": decision.reason, "code": decision.code, "drained": json.dumps(drained),
            "dry_run": int(self.dry_run), "inputs": json.dumps(decision.inputs),
        }
        log_event("autoscaler_decision", desired=decision.desired, code=decision.code, reason=decision.reason,
                  drained=drained, dry_run=self.dry_run)
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
        while not stop.is_set():
            started = time.monotonic()
            self.step()
            if once:
                return
            stop.wait(max(0.0, self.settings.autoscaler_interval - (time.monotonic() - started)))
