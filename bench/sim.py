"""Discrete-event simulation of a job fleet driven by a scaling policy (ours or a baseline).

Jobs arrive from a trace into their queue; a free worker slot takes the oldest job of the first non-empty
queue in priority order (``SimConfig.queue_order``, as RQ workers listen; other serve modes plug into
``SERVE_MODES``). Redis serves the worker that has been blocked longest, so idle slots are used in FIFO
order. An instance is billed per second from its launch request to its termination and becomes useful
after a boot delay drawn from a seeded distribution. Terminating an instance with running jobs kills them
(``busy_killed``); killed jobs go back to the front of their queue and run again from scratch.

Warm pool (when the policy asks for one): the ASG keeps ``prepared - live`` stopped instances (AWS's
MaxGroupPreparedCapacity). An instance enters the pool by a cold boot (billed as running), then costs
only its EBS volume while stopped
(``SimConfig.stopped_cost_ratio`` instance-hours per hour, from the configured prices); a launch takes a
stopped one when there is one and it is ready after a warm start (10-25 s by default); the pool is
refilled behind it, and instances removed at scale-in go back to the pool while it is short (reuse).
"""

from __future__ import annotations

import csv
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autoscaler.window import SERVICE_SAMPLE


@dataclass(frozen=True)
class Job:
    """One trace line."""

    arrival_s: float
    queue: str
    service_s: float


def load_trace(path: Path) -> list[Job]:
    """Read a CSV trace with header ``arrival_s,queue,service_s``; clear errors on bad lines."""
    jobs: list[Job] = []
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != ["arrival_s", "queue", "service_s"]:
            raise ValueError(f"{path}: header must be exactly 'arrival_s,queue,service_s', got {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            try:
                job = Job(float(row["arrival_s"]), row["queue"].strip(), float(row["service_s"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{lineno}: expected numbers in arrival_s and service_s, got {row}") from None
            if job.arrival_s < 0 or job.service_s <= 0 or not job.queue:
                raise ValueError(f"{path}:{lineno}: need arrival_s >= 0, service_s > 0 and a queue name: {row}")
            jobs.append(job)
    if not jobs:
        raise ValueError(f"{path}: the trace has no jobs")
    jobs.sort(key=lambda j: j.arrival_s)
    return jobs


@dataclass
class SimInstance:
    """A simulated instance."""

    id: str
    launched_at: float
    ready_at: float
    slots: int
    running: dict[int, float] = field(default_factory=dict)  # job index -> end time
    idle_since: float | None = None
    terminated_at: float | None = None
    warm: bool = False  # started from the warm pool

    def ready(self, now: float) -> bool:
        return now >= self.ready_at

    @property
    def busy(self) -> int:
        return len(self.running)


@dataclass
class FleetView:
    """What a policy sees at a tick (the simulator's equivalent of the daemon's Redis observation)."""

    now: float
    queued: int
    started: int
    instances: Sequence[SimInstance]
    arrivals_total: int
    completions_total: int
    recent_service_s: float | None
    queued_by_queue: dict[str, int]
    started_by_queue: dict[str, int]
    oldest_age_s: float
    queue_order: tuple[str, ...] = ()  # every queue of the trace, highest priority first
    arrivals_by_queue: dict[str, int] = field(default_factory=dict)
    completions_by_queue: dict[str, int] = field(default_factory=dict)
    oldest_by_queue: dict[str, float] = field(default_factory=dict)
    warm_pool_ready: int = 0  # stopped instances in the warm pool
    service_by_queue: dict[str, tuple[float, ...]] = field(default_factory=dict)  # recent service times

    @property
    def in_service(self) -> list[SimInstance]:
        return [i for i in self.instances if i.ready(self.now)]


@dataclass
class Action:
    """A policy's answer: the desired size, and the instances it chose to remove (None: the ASG picks)."""

    desired: int
    remove: tuple[str, ...] | None = None
    warm_pool: int | None = None  # instances kept prepared, in service + stopped (the ASG's
    # MaxGroupPreparedCapacity; the pool holds what the fleet does not use; None: leave the pool as it is)


class SimPolicy(Protocol):
    """A scaling policy run by the simulator."""

    name: str
    interval_s: float

    def tick(self, view: FleetView) -> Action:
        """Decide at one tick."""
        ...

    def self_terminating(self, view: FleetView) -> list[str]:
        """Instances that terminate themselves now (buildkite-style idle timeout); [] for others."""
        ...


@dataclass(frozen=True)
class SimConfig:
    """Fleet parameters shared by every policy in a run."""

    slots_per_instance: int = 1
    boot_min_s: float = 45.0
    boot_max_s: float = 120.0
    min_instances: int = 0
    max_instances: int = 100
    seed: int = 7
    tail_s: float = 3600.0  # after the last job ends, keep billing until the fleet is at min (at most this long)
    give_up_s: float = 6 * 3600.0  # a policy that strands jobs is stopped this long after the last arrival
    sample_every_s: float = 10.0
    queue_order: tuple[str, ...] = ("high", "default", "low")  # priority; other queues follow in trace order
    serve_mode: str = "strict"  # a key of SERVE_MODES
    warm_min_s: float = 10.0
    warm_max_s: float = 25.0
    instance_price_h: float = 0.0208  # on-demand $/h (infra default t3.small, us-east-1)
    ebs_price_gb_month: float = 0.08  # gp3 $/GB-month
    volume_gb: float = 20.0  # root volume (infra rootVolumeGb default)

    def boot_delay(self, rng: random.Random) -> float:
        """One boot delay (uniform between the bounds)."""
        return rng.uniform(self.boot_min_s, self.boot_max_s)

    def warm_delay(self, rng: random.Random) -> float:
        """One warm start delay from the pool (uniform between the bounds)."""
        return rng.uniform(self.warm_min_s, self.warm_max_s)

    @property
    def stopped_cost_ratio(self) -> float:
        """Instance-hours one stopped instance costs per hour (its EBS volume at the configured prices)."""
        return self.volume_gb * self.ebs_price_gb_month / 730.0 / self.instance_price_h


@dataclass
class PoolInstance:
    """A warm-pool instance: booting into the pool (billed as running) until ``stopped_at``, then stopped."""

    id: str
    launched_at: float
    stopped_at: float
    left_at: float | None = None  # taken into service or terminated

    def running_s(self, end: float) -> float:
        return max(0.0, min(self.stopped_at, self.left_at if self.left_at is not None else end) - self.launched_at)

    def stopped_s(self, end: float) -> float:
        return max(0.0, (self.left_at if self.left_at is not None else end) - self.stopped_at)


@dataclass
class SimResult:
    """Measured figures of one policy on one trace plus its time series."""

    policy: str
    waits: list[float]
    instance_seconds: float
    scaling_actions: int
    busy_killed: int
    series: list[tuple[float, int, int, int]]  # t, queued, desired, in_service
    jobs_done: int
    jobs_total: int
    waits_by_queue: dict[str, list[float]] = field(default_factory=dict)
    stopped_seconds: float = 0.0  # warm-pool instance-seconds spent stopped
    stopped_cost_ratio: float = 0.0
    warm_starts: int = 0

    def summary(self) -> dict[str, Any]:
        """The figures written to the results JSON (instance_hours includes the stopped pool's EBS cost)."""
        return {
            "p50_wait_s": round(percentile(self.waits, 50), 2),
            "p95_wait_s": round(percentile(self.waits, 95), 2),
            "p99_wait_s": round(percentile(self.waits, 99), 2),
            "instance_hours": round((self.instance_seconds + self.stopped_seconds * self.stopped_cost_ratio) / 3600, 3),
            "scaling_actions": self.scaling_actions,
            "busy_killed": self.busy_killed,
            "jobs_done": self.jobs_done,
            "p95_wait_by_queue": {q: round(percentile(w, 95), 2) for q, w in self.waits_by_queue.items()},
            "running_hours": round(self.instance_seconds / 3600, 3),
            "stopped_hours": round(self.stopped_seconds / 3600, 3),
            "warm_starts": self.warm_starts,
        }


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for an empty list)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def strict_priority(sim: Simulator) -> str | None:
    """The first non-empty queue in priority order (RQ's worker order)."""
    return next((name for name in sim.order if sim.queues[name]), None)


# serve modes: which queue a free slot takes its next job from (weighted/fair modes register here)
SERVE_MODES: dict[str, Callable[[Simulator], str | None]] = {"strict": strict_priority}


class Simulator:
    """Runs one policy over one trace."""

    def __init__(self, jobs: Sequence[Job], policy: SimPolicy, config: SimConfig) -> None:
        if config.serve_mode not in SERVE_MODES:
            raise ValueError(f"serve mode {config.serve_mode!r}: expected one of {', '.join(SERVE_MODES)}")
        self.jobs = list(jobs)
        self.policy = policy
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.warm_rng = random.Random(config.seed + 2)
        self.victim_rng = random.Random(config.seed + 1)
        self.pick = SERVE_MODES[config.serve_mode]
        seen = list(dict.fromkeys(j.queue for j in self.jobs))
        self.order = tuple([q for q in config.queue_order if q in seen]
                           + [q for q in seen if q not in config.queue_order])
        self.queues: dict[str, deque[int]] = {name: deque() for name in self.order}
        self.instances: dict[str, SimInstance] = {}
        self.warm: set[str] = set()  # instances started from the pool
        self.pool: list[PoolInstance] = []  # every pool instance ever (left_at set once gone)
        self.pool_target: int | None = None
        self.first_start: dict[int, float] = {}
        self.idle_slots: deque[tuple[str, int]] = deque()  # FIFO of (instance id, slot token)
        self.events: list[tuple[float, int, str, object]] = []
        self.seq = itertools.count()
        self.ids = itertools.count(1)
        self.completions = 0
        self.arrivals = 0
        self.arrivals_by: dict[str, int] = dict.fromkeys(self.order, 0)
        self.completions_by: dict[str, int] = dict.fromkeys(self.order, 0)
        self.busy_killed = 0
        self.actions = 0
        self.desired = 0
        self.billed = 0.0
        self.warm_starts = 0
        self.recent_service: deque[float] = deque(maxlen=20)
        self.service_by: dict[str, deque[float]] = {name: deque(maxlen=SERVICE_SAMPLE) for name in self.order}
        self.series: list[tuple[float, int, int, int]] = []
        self.now = 0.0

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # -- events ---------------------------------------------------------------------------------
    def _push(self, t: float, kind: str, payload: object = None) -> None:
        heapq.heappush(self.events, (t, next(self.seq), kind, payload))

    def run(self) -> SimResult:
        """Simulate until every job finished and the fleet is back at min (or the tail runs out)."""
        for index, job in enumerate(self.jobs):
            self._push(job.arrival_s, "arrive", index)
        self._push(0.0, "tick")
        self._push(0.0, "sample")
        for _ in range(self.cfg.min_instances):
            self._launch(0.0)
        self.desired = self.cfg.min_instances
        last_arrival = self.jobs[-1].arrival_s
        done_at: float | None = None
        while self.events:
            t, _, kind, payload = heapq.heappop(self.events)
            self.now = t
            if kind == "arrive":
                index = int(payload)  # type: ignore[call-overload]
                self.arrivals += 1
                self.arrivals_by[self.jobs[index].queue] += 1
                self.queues[self.jobs[index].queue].append(index)
                self._dispatch()
            elif kind == "ready":
                inst = self.instances.get(str(payload))
                if inst and inst.terminated_at is None:
                    inst.idle_since = t
                    for slot in range(inst.slots):
                        self.idle_slots.append((inst.id, slot))
                    self._dispatch()
            elif kind == "finish":
                finished: tuple[str, int, int] = payload  # type: ignore[assignment]
                inst_id, job_index, slot = finished
                inst = self.instances.get(inst_id)
                if inst and inst.terminated_at is None and job_index in inst.running:
                    del inst.running[job_index]
                    self.completions += 1
                    self.completions_by[self.jobs[job_index].queue] += 1
                    self.recent_service.append(self.jobs[job_index].service_s)
                    self.service_by[self.jobs[job_index].queue].append(self.jobs[job_index].service_s)
                    if not inst.running:
                        inst.idle_since = t
                    self.idle_slots.append((inst_id, slot))
                    self._dispatch()
            elif kind == "tick":
                self._tick()
                all_done = self.completions >= len(self.jobs) and t >= last_arrival
                if all_done and done_at is None:
                    done_at = t
                live = [i for i in self.instances.values() if i.terminated_at is None]
                if done_at is not None and (len(live) <= self.cfg.min_instances or t - done_at >= self.cfg.tail_s):
                    break
                if t - last_arrival > self.cfg.give_up_s:
                    break  # jobs stranded (e.g. a queue below the scale-out threshold with no instance)
                self._push(t + self.policy.interval_s, "tick")
            elif kind == "sample":
                live = [i for i in self.instances.values() if i.terminated_at is None]
                in_service = sum(1 for i in live if i.ready(t))
                self.series.append((t, self.queued, self.desired, in_service))
                self._push(t + self.cfg.sample_every_s, "sample")
        end = self.now
        for inst in self.instances.values():
            stop = inst.terminated_at if inst.terminated_at is not None else end
            self.billed += stop - inst.launched_at
        pool_running = sum(p.running_s(end) for p in self.pool)
        stopped = sum(p.stopped_s(end) for p in self.pool)
        # a job that never started counts with the time it had waited when the run stopped (censored)
        waits = [self.first_start.get(i, end) - job.arrival_s for i, job in enumerate(self.jobs)]
        by_queue: dict[str, list[float]] = {name: [] for name in self.order}
        for job, wait in zip(self.jobs, waits, strict=True):
            by_queue[job.queue].append(wait)
        return SimResult(self.policy.name, waits, self.billed + pool_running, self.actions, self.busy_killed,
                         self.series, self.completions, len(self.jobs), by_queue, stopped,
                         self.cfg.stopped_cost_ratio, self.warm_starts)

    # -- mechanics ------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while self.idle_slots:
            name = self.pick(self)
            if name is None:
                return
            inst_id, slot = self.idle_slots.popleft()
            inst = self.instances.get(inst_id)
            if inst is None or inst.terminated_at is not None:
                continue
            job_index = self.queues[name].popleft()
            self.first_start.setdefault(job_index, self.now)
            end = self.now + self.jobs[job_index].service_s
            inst.running[job_index] = end
            inst.idle_since = None
            self._push(end, "finish", (inst_id, job_index, slot))

    def _stopped(self) -> list[PoolInstance]:
        return [p for p in self.pool if p.left_at is None and p.stopped_at <= self.now]

    def _pooled(self) -> list[PoolInstance]:
        return [p for p in self.pool if p.left_at is None]

    def _launch(self, now: float) -> SimInstance:
        stopped = self._stopped()
        if stopped:  # warm start from the pool; the ASG refills the pool behind it
            taken = stopped[0]
            taken.left_at = now
            inst_id, delay = taken.id, self.cfg.warm_delay(self.warm_rng)
            self.warm.add(inst_id)
            self.warm_starts += 1
        else:
            inst_id, delay = f"i-{next(self.ids):05d}", self.cfg.boot_delay(self.rng)
        inst = SimInstance(inst_id, now, now + delay, self.cfg.slots_per_instance, warm=inst_id in self.warm)
        self.instances[inst_id] = inst
        self._push(inst.ready_at, "ready", inst_id)
        return inst

    def _pool_goal(self) -> int:
        """Stopped instances the pool should hold: what the live fleet leaves of the prepared capacity."""
        live = sum(1 for i in self.instances.values() if i.terminated_at is None)
        return max(0, (self.pool_target or 0) - live)

    def _resize_pool(self) -> None:
        """Bring the pool to its goal: launch into it (a cold boot, then stopped) or terminate stopped ones."""
        if self.pool_target is None:
            return
        pooled = self._pooled()
        goal = self._pool_goal()
        for _ in range(goal - len(pooled)):
            pid = f"i-{next(self.ids):05d}"
            self.pool.append(PoolInstance(pid, self.now, self.now + self.cfg.boot_delay(self.rng)))
        surplus = len(pooled) - goal
        for extra in sorted(pooled, key=lambda p: -p.stopped_at)[:max(0, surplus)]:
            extra.left_at = self.now

    def _terminate(self, inst: SimInstance) -> None:
        inst.terminated_at = self.now
        if inst.running:
            self.busy_killed += len(inst.running)
            for job_index in sorted(inst.running, reverse=True):
                self.queues[self.jobs[job_index].queue].appendleft(job_index)  # RQ's recovery re-enqueues it
            inst.running.clear()
        elif self.pool_target is not None and len(self._pooled()) < self._pool_goal():
            # reuse on scale-in: the idle instance is stopped back into the pool (app already installed)
            self.pool.append(PoolInstance(f"{inst.id}r{next(self.ids)}", self.now, self.now))
        self._dispatch()

    def _view(self) -> FleetView:
        live = [i for i in self.instances.values() if i.terminated_at is None]
        queued_by = {name: len(q) for name, q in self.queues.items()}
        started_by: dict[str, int] = dict.fromkeys(self.order, 0)
        for inst in live:
            for index in inst.running:
                started_by[self.jobs[index].queue] += 1
        oldest_by = {name: self.now - self.jobs[q[0]].arrival_s for name, q in self.queues.items() if q}
        service = sum(self.recent_service) / len(self.recent_service) if self.recent_service else None
        return FleetView(self.now, self.queued, sum(started_by.values()), live, self.arrivals, self.completions,
                         service, queued_by, started_by, max(oldest_by.values(), default=0.0), self.order,
                         dict(self.arrivals_by), dict(self.completions_by), oldest_by, len(self._stopped()),
                         {name: tuple(d) for name, d in self.service_by.items()})

    def _tick(self) -> None:
        view = self._view()
        for inst_id in self.policy.self_terminating(view):
            inst = self.instances[inst_id]
            if inst.terminated_at is None:
                self._terminate(inst)
                self.desired = max(self.cfg.min_instances, self.desired - 1)
                self.actions += 1
        view = self._view()
        action = self.policy.tick(view)
        if action.warm_pool is not None and action.warm_pool != self.pool_target:
            self.pool_target = max(0, action.warm_pool)
            self._resize_pool()
        desired = min(self.cfg.max_instances, max(self.cfg.min_instances, action.desired))
        live = [i for i in self.instances.values() if i.terminated_at is None]
        changed = False
        if action.remove:
            for inst_id in action.remove:
                chosen = self.instances.get(inst_id)
                if chosen is not None and chosen.terminated_at is None:
                    self._terminate(chosen)
                    changed = True
            live = [i for i in self.instances.values() if i.terminated_at is None]
        if desired > len(live):
            for _ in range(desired - len(live)):
                self._launch(self.now)
            changed = True
        elif desired < len(live):
            # the ASG picks victims itself: not by busyness (seeded, so every run is repeatable)
            victims = self.victim_rng.sample(live, len(live) - desired)
            for inst in victims:
                self._terminate(inst)
            changed = True
        self._resize_pool()
        if changed or desired != self.desired:
            self.actions += 1
        self.desired = desired


def run_policy(jobs: Sequence[Job], make_policy: Callable[[], SimPolicy], config: SimConfig) -> SimResult:
    """Simulate a fresh policy over ``jobs``."""
    return Simulator(jobs, make_policy(), config).run()
