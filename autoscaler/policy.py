"""The scaling policy: a pure function from an observed snapshot to a desired fleet size (no I/O).

``decide(observation, config)`` returns a :class:`Decision`: the desired number of instances, the exact
idle instances to drain, and a human-readable reason. The daemon and the simulator run this same code.

Sizing (all in worker *slots*; ``c`` slots per instance, ``S`` mean service time, ``T`` target p95 wait,
``λ`` arrival rate, ``Q`` queued, ``R`` started/running, ``B`` expected boot time):

* steady state: the fewest slots ``m > λS`` whose Erlang-C p95 wait is within the target,
  ``C(m, λS) · exp(-(m - λS) · T / S) <= 0.05``;
* backlog: project the queue to the moment a new instance would be ready (``now + B``), counting the
  ready slots from now and every booting instance from its own expected ready time (fluid model:
  a busy slot starts ``1/S`` jobs per second); what is still queued then must start within ``T``,
  i.e. it needs ``ceil(Q_B · S / max(T, S))`` more slots on top of the steady-state ones;
* running work keeps its slots: never fewer than ``R`` slots while the queue is not empty.

Scale out goes straight to the target (``max_step`` 0 = unlimited). Scale in drains only instances
that have been fully idle for at least the idle hold, longest-idle first, and never goes below the
number of busy instances; the result is clamped to ``[min, max]``. A stale or failed observation
holds the current size and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

P95_TAIL = 0.05  # the target is a p95 wait: at most 5 % of jobs may wait longer


@dataclass(frozen=True)
class QueueState:
    """One queue as observed: counts, age of its oldest queued job, rates and mean service time."""

    name: str
    queued: int
    started: int
    scheduled: int = 0
    oldest_age_s: float = 0.0
    arrival_rate: float = 0.0  # jobs/s over the daemon's rolling window
    completion_rate: float = 0.0  # jobs/s over the same window
    mean_service_s: float | None = None  # None: no recent completions
    recent_arrival_rate: float | None = None  # jobs/s over the last minute (None: not measured)
    recent_window_s: float = 0.0  # seconds that recent rate covers
    rate_window_s: float = 0.0  # seconds the arrival rate was measured over (0: unknown, no noise band)


@dataclass(frozen=True)
class InstanceState:
    """One instance of the fleet (ready or booting) with its worker slots."""

    id: str
    slots: int
    busy: int  # slots running a job right now
    launched_at: float  # unix s of the launch request
    ready: bool = True  # False while booting
    idle_since: float | None = None  # unix s since which every slot is idle; None when busy or booting
    healthy: bool = True  # False when its workers stopped heartbeating


@dataclass(frozen=True)
class Observation:
    """A snapshot of queues and fleet; ``error`` says why it could not be taken (then it is incomplete)."""

    now: float
    observed_at: float | None
    desired: int
    queues: tuple[QueueState, ...] = ()
    instances: tuple[InstanceState, ...] = ()
    error: str | None = None
    # Fewest idle slots seen over the last idle hold (None: window not full yet). When it is >= c, an
    # instance's worth of capacity was surplus for the whole hold even if idle jobs rotated over workers.
    idle_slots_floor: int | None = None

    @property
    def queued(self) -> int:
        """Jobs waiting in every queue list."""
        return sum(q.queued for q in self.queues)

    @property
    def started(self) -> int:
        """Jobs running (RQ's started registries)."""
        return sum(q.started for q in self.queues)

    @property
    def busy_instances(self) -> int:
        """Instances with at least one busy slot."""
        return sum(1 for i in self.instances if i.busy > 0)


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the policy (see the module docstring and the README for each)."""

    min_instances: int = 0
    max_instances: int = 10
    slots_per_instance: int = 1
    target_wait_s: float = 30.0
    boot_time_s: float = 90.0
    idle_hold_s: float = 90.0
    max_step: int = 0
    stale_after_s: float = 30.0
    default_service_s: float = 10.0  # used until a completion has been observed
    fast_drain_s: float = 15.0  # idle time after which far-surplus instances are drained
    noise_band: float = 1.0  # width of the rate-noise hysteresis band, in standard deviations

    def __post_init__(self) -> None:
        problems = []
        if self.min_instances < 0:
            problems.append(f"min_instances={self.min_instances} must be >= 0")
        if self.max_instances < max(1, self.min_instances):
            problems.append(f"max_instances={self.max_instances} must be >= max(1, min_instances)")
        if self.slots_per_instance < 1:
            problems.append(f"slots_per_instance={self.slots_per_instance} must be >= 1")
        if not self.target_wait_s > 0:
            problems.append(f"target_wait_s={self.target_wait_s} must be > 0")
        for name in ("boot_time_s", "idle_hold_s", "stale_after_s", "fast_drain_s", "noise_band"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.max_step < 0:
            problems.append(f"max_step={self.max_step} must be >= 0 (0 = unlimited)")
        if not self.default_service_s > 0:
            problems.append(f"default_service_s={self.default_service_s} must be > 0")
        if problems:
            raise ValueError("bad autoscaler config: " + "; ".join(problems))


@dataclass(frozen=True)
class Decision:
    """What to do: the desired size, the instances to drain, why, and the figures behind it."""

    desired: int
    drain: tuple[str, ...]
    reason: str
    needed_slots: int = 0
    in_service: int = 0
    booting: int = 0
    busy: int = 0
    hold: bool = False
    inputs: dict[str, float] = field(default_factory=dict)
    code: str = "steady"  # low-cardinality kind: scale_out, scale_in, steady, hold, stale


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/``servers`` queue with offered ``load`` (erlangs)."""
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    blocking = 1.0  # Erlang B, computed by the stable recurrence
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


def steady_slots(arrival_rate: float, service_s: float, target_wait_s: float, tail: float = P95_TAIL) -> int:
    """Fewest slots whose M/M/m wait exceeds ``target_wait_s`` for at most ``tail`` of the jobs."""
    load = arrival_rate * service_s
    if load <= 0:
        return 0
    m = max(1, math.floor(load) + 1)
    while True:
        p_late = erlang_c(m, load) * math.exp(-(m - load) * target_wait_s / service_s)
        if p_late <= tail:
            return m
        m += 1


def projected_backlog(obs: Observation, cfg: PolicyConfig, service_s: float, arrival_rate: float) -> float:
    """Jobs still queued when an instance launched now would be ready (fluid model, booting counted)."""
    horizon = cfg.boot_time_s
    capacity_work = 0.0  # slot-seconds available in [now, now + horizon]
    for inst in obs.instances:
        if not inst.healthy:
            continue
        ready_in = 0.0 if inst.ready else max(0.0, inst.launched_at + cfg.boot_time_s - obs.now)
        capacity_work += inst.slots * max(0.0, horizon - ready_in)
    # running jobs hold their slots for about half a service time on average (residual life)
    running_work = obs.started * service_s / 2
    backlog_work = (obs.queued + arrival_rate * horizon) * service_s
    leftover = backlog_work + running_work - capacity_work
    return max(0.0, leftover / service_s)


def mean_service(obs: Observation, cfg: PolicyConfig) -> float:
    """Completion-weighted mean service time over the queues, or the configured default."""
    known = [(q.mean_service_s, max(q.completion_rate, 1e-9)) for q in obs.queues if q.mean_service_s]
    if not known:
        return cfg.default_service_s
    total = sum(w for _, w in known)
    return max(1e-3, sum((s or 0.0) * w for s, w in known) / total)


def arrival_estimate(queues: tuple[QueueState, ...] | list[QueueState]) -> tuple[float, float]:
    """Total arrival rate and its relative Poisson noise ``1/sqrt(arrivals in the window)``.

    The last minute caps the window's rate by its own upper bound ``(n + 1 + sqrt(n + 1)) / t``: a burst
    that has been served stops inflating the estimate within a minute, sparse arrivals (a quiet minute)
    do not zero it, and a rising rate is covered by the backlog term.
    """
    long_rate = sum(q.arrival_rate for q in queues)
    window = max((q.rate_window_s for q in queues), default=0.0)
    recent_window = max((q.recent_window_s for q in queues), default=0.0)
    rate = long_rate
    if recent_window > 0 and all(q.recent_arrival_rate is not None for q in queues):
        recent = sum(q.recent_arrival_rate or 0.0 for q in queues) * recent_window
        rate = min(long_rate, (recent + 1 + math.sqrt(recent + 1)) / recent_window)
    arrivals = long_rate * window
    noise = min(1.0, 1 / math.sqrt(arrivals)) if arrivals > 0 else 0.0
    return rate, noise


def _idle_for(inst: InstanceState, now: float) -> float:
    return now - inst.idle_since if inst.idle_since is not None else 0.0


def _hold(obs: Observation, cfg: PolicyConfig, why: str, code: str = "stale") -> Decision:
    busy = obs.busy_instances
    desired = min(cfg.max_instances, max(cfg.min_instances, busy, obs.desired))
    return Decision(
        desired=desired, drain=(), reason=f"hold at {desired}: {why}", busy=busy, hold=True,
        in_service=sum(1 for i in obs.instances if i.ready), booting=sum(1 for i in obs.instances if not i.ready),
        code=code,
    )


def decide(obs: Observation, cfg: PolicyConfig) -> Decision:
    """The desired fleet size and the idle instances to drain for ``obs`` under ``cfg``."""
    if obs.error:
        return _hold(obs, cfg, f"observation failed ({obs.error})")
    if obs.observed_at is None:
        return _hold(obs, cfg, "no observation yet")
    age = obs.now - obs.observed_at
    if age > cfg.stale_after_s:
        return _hold(obs, cfg, f"observation is stale ({age:.0f}s old > {cfg.stale_after_s:.0f}s)")

    c = cfg.slots_per_instance
    service_s = mean_service(obs, cfg)
    arrival_rate, noise = arrival_estimate(obs.queues)
    queued, started = obs.queued, obs.started
    in_service = [i for i in obs.instances if i.ready]
    booting = [i for i in obs.instances if not i.ready]
    busy = obs.busy_instances
    lo = max(cfg.min_instances, busy)

    def size(rate: float) -> tuple[int, int, int, float, int]:
        steady = steady_slots(rate, service_s, cfg.target_wait_s)
        backlog = projected_backlog(obs, cfg, service_s, rate)
        # what is still queued when a new instance is ready must start within the target, but each new
        # instance gets at least a boot time of work (one that boots to run one job only adds cost)
        horizon = max(cfg.target_wait_s, service_s, cfg.boot_time_s)
        backlog_slots = math.ceil(backlog * service_s / horizon - 1e-9) if backlog else 0
        running_slots = started if queued > 0 else 0
        needed = max(steady + backlog_slots, running_slots, 1 if queued > 0 else 0)
        return min(cfg.max_instances, max(lo, math.ceil(needed / c))), needed, steady, backlog, backlog_slots

    # hysteresis from the noise of the rate estimate: scale out on the low band, scale in to the high band
    target, needed_slots, steady, backlog, backlog_slots = size(max(0.0, arrival_rate * (1 - cfg.noise_band * noise)))
    keep, keep_slots = size(arrival_rate * (1 + cfg.noise_band * noise))[:2]

    current = len(obs.instances)
    drain: tuple[str, ...] = ()
    inputs = {
        "queued": float(queued), "started": float(started), "arrival_rate": round(arrival_rate, 4),
        "rate_noise": round(noise, 3), "service_s": round(service_s, 3), "steady_slots": float(steady),
        "projected_backlog": round(backlog, 2), "backlog_slots": float(backlog_slots),
        "keep_slots": float(keep_slots), "oldest_age_s": max((q.oldest_age_s for q in obs.queues), default=0.0),
    }
    why = (f"need {needed_slots}-{keep_slots} slots (steady {steady} for λ={arrival_rate:.2f}/s±{noise:.0%} "
           f"S={service_s:.1f}s, backlog {backlog_slots} for {backlog:.0f} jobs left at ready time, running {started})")
    if target > current:
        step = target - current if cfg.max_step == 0 else min(target - current, cfg.max_step)
        desired = max(current + step, min(target, cfg.min_instances))
        reason = f"scale out {current}->{desired}: {why}"
        code = "scale_out"
    elif keep < current:
        idle_now = [i for i in in_service if i.busy == 0]
        # unhealthy idle ones first, then longest idle first
        idle_now.sort(key=lambda i: (i.healthy, i.idle_since if i.idle_since is not None else obs.now))
        room = current - keep
        held = sum(1 for i in idle_now if _idle_for(i, obs.now) >= cfg.idle_hold_s)
        allowed = max(held, (obs.idle_slots_floor or 0) // c)
        # far surplus (beyond twice even the pessimistic need, with no backlog) goes after the fast hold
        if queued == 0:
            fast = sum(1 for i in idle_now if _idle_for(i, obs.now) >= cfg.fast_drain_s)
            allowed = max(allowed, min(fast, room - keep))
        drain = tuple(i.id for i in idle_now[: min(room, allowed)])
        desired = current - len(drain)
        code = "scale_in" if drain else "hold"
        if drain:
            reason = f"scale in {current}->{desired}: drain {len(drain)} idle instances; {why}"
        else:
            reason = f"hold at {current}: {room} surplus but none idle for {cfg.idle_hold_s:.0f}s; {why}"
    else:
        desired = current
        reason = f"steady at {current}: {why}"
        code = "steady"
    return Decision(
        desired=desired, drain=drain, reason=reason, needed_slots=needed_slots,
        in_service=len(in_service), booting=len(booting), busy=busy, inputs=inputs, code=code,
    )
