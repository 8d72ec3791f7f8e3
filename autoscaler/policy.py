"""The scaling policy: a pure function from an observed snapshot to a desired fleet size (no I/O).

``decide(observation, config)`` returns a :class:`Decision`: the desired number of instances, the exact
idle instances to drain, and a human-readable reason. The daemon and the simulator run this same code.

Sizing (all in worker *slots*; ``c`` slots per instance, ``S`` mean service time, ``T`` target p95 wait,
``λ`` arrival rate, ``Q`` queued, ``R`` started/running, ``B`` expected boot time):

* steady state: the fewest slots ``m > λS`` whose M/G/m p95 wait is within the target,
  ``C(m, λS) · exp(-(m - λS) · T / (S · v)) <= 0.05`` with ``v = (1 + cv²)/2`` the Allen-Cunneen factor of
  the measured service-time spread (1 for exponential service, clamped to [0.5, 3]);
* backlog: project the queue to the moment a new instance would be ready (``now + B``), counting the
  ready slots from now and every booting instance from its own expected ready time (fluid model:
  a busy slot starts ``1/S`` jobs per second); what is still queued then must start within ``T``: the
  ``m_B`` slots ready by then drain ``(m_B - λS) · T / S`` of it within the target themselves (Little's law),
  the rest needs ``ceil(rest · S / max(T, S, B))`` more slots on top of the steady-state ones;
* running work keeps its slots: never fewer than ``R`` slots while the queue is not empty.

Per-queue targets (queues listed highest priority first; workers serve them in that order): queue ``k``
with target ``T_k`` sees every slot busy as often as the whole fleet (``C(m, λS)``, non-preemptive), then
waits behind the work of queues ``1..k`` only, so each queue needs
``C(m, λS) · exp(-(m - λ_{1..k}S) · T_k / (S · v)) <= 0.05`` and its backlog projection counts queues ``1..k``;
the fleet is sized for whichever queue's target binds (``binding`` in the inputs). ``T = 0`` ("start at
once") asks for ``C(m, λS) <= 0.005`` on the pessimistic rate band and one slot per queued job; it keeps
idle instances at least ``start_at_once_idle_s`` and, after an arrival burst, the burst's peak for
``peak_hold_s`` unless the burst's recurrence is known or a warm pool's prepared capacity covers it.

A ``forecast_rate`` per queue (the seasonal history of arrivals over the next boot time, see
:mod:`autoscaler.window`) replaces the rate used for sizing where it is above the rate's pessimistic band,
ahead of periodic load; it is absent on traces without a repeating history, so it costs nothing there.
A recurring burst (``burst_expected``, from :class:`autoscaler.window.BurstRecurrence`) raises the floor to
the burst's peak size from one slow boot before it is due.

Scale out goes straight to the target (``max_step`` 0 = unlimited). Scale in drains only instances
that have been fully idle for at least the idle hold, longest-idle first, and never goes below the
number of busy instances; the result is clamped to ``[min, max]``. A stale or failed observation
holds the current size and says why.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

P95_TAIL = 0.05  # the target is a p95 wait: at most 5 % of jobs may wait longer
START_AT_ONCE_TAIL = 0.005  # target 0: the stationary share of jobs that find no idle slot (transients add to it)


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
    forecast_rate: float | None = None  # jobs/s expected over the next boot time from the seasonal history
    service_cv2: float | None = None  # squared coefficient of variation of recent service times (None: unknown)


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
    warm: bool = False  # started from the warm pool (ready after the warm start time, not the boot time)


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
    warm_pool_ready: int = 0  # stopped instances in the warm pool, ready to start in a warm start time
    warm_pool_prepared: int = 0  # the pool's prepared capacity (instances in service + stopped; 0: no pool)
    recent_peak: int = 0  # largest fleet size decided in the arrival bursts of the last ``peak_hold_s``
    burst_expected: int = 0  # instances a recurring burst due within the lead time needs (0: none due)
    burst_period_s: float | None = None  # period the bursts recur with (None: no recurrence known)

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
    queue_targets: tuple[tuple[str, float], ...] = ()  # per-queue target p95 waits; others use target_wait_s
    warm_boot_time_s: float = 20.0  # expected seconds from a warm-pool start to a ready instance
    peak_hold_s: float = 1800.0  # target 0: keep a burst's peak this long unless its recurrence is known (0 = off)
    start_at_once_idle_s: float = 600.0  # target 0: idle hold (a job that finds no idle slot waits a whole boot)

    def idle_hold(self) -> float:
        """Seconds an idle instance is kept: the idle hold, or at least ``start_at_once_idle_s`` when some
        queue's target is 0."""
        zero = self.target_wait_s == 0 or any(t == 0 for _, t in self.queue_targets)
        return max(self.idle_hold_s, self.start_at_once_idle_s) if zero else self.idle_hold_s

    def target_for(self, queue: str) -> float:
        """The target p95 wait of ``queue``."""
        return next((t for q, t in self.queue_targets if q == queue), self.target_wait_s)

    def __post_init__(self) -> None:
        problems = []
        if self.min_instances < 0:
            problems.append(f"min_instances={self.min_instances} must be >= 0")
        if self.max_instances < max(1, self.min_instances):
            problems.append(f"max_instances={self.max_instances} must be >= max(1, min_instances)")
        if self.slots_per_instance < 1:
            problems.append(f"slots_per_instance={self.slots_per_instance} must be >= 1")
        if not self.target_wait_s >= 0:
            problems.append(f"target_wait_s={self.target_wait_s} must be >= 0")
        problems += [f"target of queue {q!r}={t} must be >= 0" for q, t in self.queue_targets if not t >= 0]
        for name in ("boot_time_s", "idle_hold_s", "stale_after_s", "fast_drain_s", "noise_band", "warm_boot_time_s",
                     "peak_hold_s", "start_at_once_idle_s"):
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


def steady_slots(
    arrival_rate: float, service_s: float, target_wait_s: float, tail: float = P95_TAIL,
    classes: tuple[tuple[float, float], ...] | None = None, variability: float = 1.0,
) -> int:
    """Fewest slots whose M/G/m wait exceeds its target for at most ``tail`` of the jobs of every class.

    ``classes`` lists ``(arrival rate of this queue and every higher-priority one, target)`` per queue; the
    default is one class, the whole ``arrival_rate`` with ``target_wait_s``. ``variability`` is the
    Allen-Cunneen factor ``(1 + cv²)/2`` of the service times (1 = exponential): it stretches the wait tail.
    """
    load = arrival_rate * service_s
    if load <= 0:
        return 0
    groups = classes if classes is not None else ((arrival_rate, target_wait_s),)
    scale = service_s * variability
    m = max(1, math.floor(load) + 1)
    while True:
        waits = erlang_c(m, load)
        if all(waits * math.exp(-(m - rate * service_s) * target / scale) <= tail for rate, target in groups):
            return m
        m += 1


def ready_in(inst: InstanceState, now: float, cfg: PolicyConfig) -> float:
    """Seconds until ``inst`` is expected ready (0 when it is; booting ones at the warm or cold boot time)."""
    if inst.ready:
        return 0.0
    boot = cfg.warm_boot_time_s if inst.warm else cfg.boot_time_s
    return max(0.0, inst.launched_at + boot - now)


def projected_backlog(
    obs: Observation, cfg: PolicyConfig, service_s: float, arrival_rate: float, queued: int | None = None,
    horizon_s: float | None = None,
) -> float:
    """Jobs still queued when an instance launched now would be ready (fluid model, booting counted).

    ``queued`` (default: every queue) is the backlog of the queues considered; running jobs of every queue
    hold their slots (a worker finishes its job before taking a higher-priority one).
    """
    horizon = cfg.boot_time_s if horizon_s is None else horizon_s
    capacity_work = 0.0  # slot-seconds available in [now, now + horizon]
    for inst in obs.instances:
        if inst.healthy:
            capacity_work += inst.slots * max(0.0, horizon - ready_in(inst, obs.now, cfg))
    # running jobs hold their slots for about half a service time on average (residual life)
    running_work = obs.started * service_s / 2
    backlog_work = ((obs.queued if queued is None else queued) + arrival_rate * horizon) * service_s
    leftover = backlog_work + running_work - capacity_work
    return max(0.0, leftover / service_s)


def mean_service(obs: Observation, cfg: PolicyConfig) -> float:
    """Completion-weighted mean service time over the queues, or the configured default."""
    known = [(q.mean_service_s, max(q.completion_rate, 1e-9)) for q in obs.queues if q.mean_service_s]
    if not known:
        return cfg.default_service_s
    total = sum(w for _, w in known)
    return max(1e-3, sum((s or 0.0) * w for s, w in known) / total)


VARIABILITY_BOUNDS = (0.5, 3.0)  # deterministic service .. a heavy tail (the approximation is rough beyond)


def service_variability(obs: Observation) -> float:
    """Allen-Cunneen factor ``(1 + cv²)/2`` of the service times, completion-weighted over the queues that
    measured one and clamped to :data:`VARIABILITY_BOUNDS`; 1 (exponential) while nothing is measured."""
    known = [(q.service_cv2, max(q.completion_rate, 1e-9)) for q in obs.queues if q.service_cv2 is not None]
    if not known:
        return 1.0
    cv2 = sum((c or 0.0) * w for c, w in known) / sum(w for _, w in known)
    lo, hi = VARIABILITY_BOUNDS
    return min(hi, max(lo, (1 + cv2) / 2))


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


def queue_rates(queues: tuple[QueueState, ...], total: float) -> list[float]:
    """Split the total rate estimate over the queues by their shares of the window's arrivals."""
    long_total = sum(q.arrival_rate for q in queues)
    if long_total <= 0:
        return [0.0 for _ in queues]
    return [total * q.arrival_rate / long_total for q in queues]


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
    variability = service_variability(obs)
    arrival_rate, noise = arrival_estimate(obs.queues)
    queued, started = obs.queued, obs.started
    in_service = [i for i in obs.instances if i.ready]
    booting = [i for i in obs.instances if not i.ready]
    busy = obs.busy_instances
    lo = max(cfg.min_instances, busy)

    names = [q.name for q in obs.queues]
    targets = [cfg.target_for(name) for name in names]
    start_at_once = bool(targets) and min(targets) == 0
    queued_prefix = list(itertools.accumulate(q.queued for q in obs.queues))
    queued_now = sum(q.queued for q, t in zip(obs.queues, targets, strict=True) if t == 0)
    if start_at_once and cfg.peak_hold_s > 0 and obs.burst_period_s is None:
        # a returning burst must not wait for a boot either; with a warm pool the instances scaled in go back
        # into it and come back in a warm start, so only what its prepared capacity lacks is held running
        lo = max(lo, min(cfg.max_instances, obs.recent_peak) - obs.warm_pool_prepared)
    if obs.burst_expected:  # a recurring burst is due: its capacity is ready when it comes
        lo = max(lo, min(cfg.max_instances, obs.burst_expected))
    # the next instance comes from the warm pool when it has a stopped one ready
    boot_next = cfg.warm_boot_time_s if obs.warm_pool_ready > 0 else cfg.boot_time_s

    # slots ready by the time a new instance would be (the backlog term counts what they drain themselves)
    ready_slots = sum(i.slots for i in obs.instances if i.healthy and ready_in(i, obs.now, cfg) <= boot_next)
    # hysteresis from the noise of the rate estimate: scale out on the low band, scale in to the high band
    # (at target 0 both use the high band: a job that arrives to no idle slot has already missed it)
    high_band = arrival_rate * (1 + cfg.noise_band * noise)
    low_band = high_band if start_at_once else max(0.0, arrival_rate * (1 - cfg.noise_band * noise))

    def size(total_rate: float, explain: bool = True) -> tuple[int, int, int, float, int, str]:
        # a forecast counts only where it rises above the pessimistic band of the measured rate (a forecast
        # of the load already being served would only trade the low band for the mean)
        rates = [f if (f := q.forecast_rate or 0.0) > hb else r for r, hb, q in
                 zip(queue_rates(obs.queues, total_rate), queue_rates(obs.queues, high_band), obs.queues, strict=True)]
        prefix = list(itertools.accumulate(rates))
        classes = tuple(zip(prefix, targets, strict=True))
        steady = steady_slots(sum(rates), service_s, cfg.target_wait_s, classes=classes,
                              tail=START_AT_ONCE_TAIL if start_at_once else P95_TAIL, variability=variability)
        total = sum(rates)
        binding = 0 if len(classes) == 1 or not explain else max(
            range(len(classes)), default=None,
            key=lambda k: steady_slots(total, service_s, 0, classes=classes[k:k + 1], variability=variability))
        backlog, backlog_slots = 0.0, 0
        for k, target in enumerate(targets):
            left = projected_backlog(obs, cfg, service_s, prefix[k], queued_prefix[k], horizon_s=boot_next)
            # what is still queued when a new instance is ready must start within the target, but each new
            # instance gets at least a boot time of work (one that boots to run one job only adds cost) -
            # except at target 0, where every queued job gets a slot of its own
            horizon = max(target, service_s, boot_next) if target > 0 else service_s
            # the fleet's spare slots at that moment drain part of it within the target themselves
            allowance = max(0.0, ready_slots - prefix[k] * service_s) * target / service_s
            slots = math.ceil(max(0.0, left - allowance) * service_s / horizon - 1e-9) if left > allowance else 0
            if slots > backlog_slots or (binding is None and left > 0):
                backlog, backlog_slots, binding = left, slots, k
        running_slots = started if queued > 0 else 0
        if queued_now:  # every job queued at target 0 gets a slot now (each one has already waited)
            running_slots = queued_now + started
        needed = max(steady + backlog_slots, running_slots, 1 if queued > 0 else 0)
        which = names[binding] if binding is not None else "-"
        return min(cfg.max_instances, max(lo, math.ceil(needed / c))), needed, steady, backlog, backlog_slots, which

    target, needed_slots, steady, backlog, backlog_slots, binding = size(low_band)
    keep, keep_slots = (target, needed_slots) if high_band == low_band else size(high_band, explain=False)[:2]
    forecast = sum(q.forecast_rate or 0.0 for q in obs.queues)

    current = len(obs.instances)
    drain: tuple[str, ...] = ()
    inputs = {
        "queued": float(queued), "started": float(started), "arrival_rate": round(arrival_rate, 4),
        "rate_noise": round(noise, 3), "service_s": round(service_s, 3), "steady_slots": float(steady),
        "projected_backlog": round(backlog, 2), "backlog_slots": float(backlog_slots),
        "keep_slots": float(keep_slots), "oldest_age_s": max((q.oldest_age_s for q in obs.queues), default=0.0),
        "forecast_rate": round(forecast, 4), "boot_next_s": boot_next,
        "burst_expected": float(obs.burst_expected), "burst_period_s": round(obs.burst_period_s or 0.0, 1),
        "variability": round(variability, 3),
    }
    why = (f"need {needed_slots}-{keep_slots} slots for queue {binding} (steady {steady} for "
           f"λ={arrival_rate:.2f}/s±{noise:.0%}{f' forecast {forecast:.2f}/s' if forecast else ''} S={service_s:.1f}s, "
           f"backlog {backlog_slots} for {backlog:.0f} jobs left at ready time, running {started})")
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
        held = sum(1 for i in idle_now if _idle_for(i, obs.now) >= cfg.idle_hold())
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
            reason = f"hold at {current}: {room} surplus but none idle for {cfg.idle_hold():.0f}s; {why}"
    else:
        desired = current
        reason = f"steady at {current}: {why}"
        code = "steady"
    return Decision(
        desired=desired, drain=drain, reason=reason, needed_slots=needed_slots,
        in_service=len(in_service), booting=len(booting), busy=busy, inputs=inputs, code=code,
    )
