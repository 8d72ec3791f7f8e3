"""Recurring bursts, service-time spread and target 0's holds: the windows, the policy, the observer on real Redis."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis import Redis
from rq import Queue

from autoscaler.observe import QueueObserver
from autoscaler.policy import InstanceState, Observation, PolicyConfig, QueueState, decide, steady_slots
from autoscaler.window import BurstRecurrence, burst_lead, service_cv2

NOW = 1_000_000.0


def _feed(rec: BurstRecurrence, until: float, rate: float, batches: dict[float, int], desired: int = 2,
          tick: float = 3.0, start: float = 0.0, seen: float = 0.0, peak: int = 40) -> float:
    """Drive ``rec`` with a steady ``rate`` plus batches of jobs at the given times; returns the counter."""
    t = start
    while t <= until:
        seen += rate * tick + sum(n for at, n in batches.items() if t - tick < at <= t)
        in_burst = any(0 <= t - at <= 30 for at in batches)
        rec.add(t, seen, peak if in_burst else desired)
        t += tick
    return seen


def test_three_bursts_with_agreeing_gaps_predict_the_fourth_with_its_peak() -> None:
    rec = BurstRecurrence(within_s=90)
    seen = _feed(rec, 3000, 0.3, {600: 150, 1800: 150, 3000: 150})
    assert rec.period(3000) == pytest.approx(1200, abs=6)
    lead = burst_lead(90, 3)
    assert rec.expected(4200 - lead - 30, lead) == 0  # not due yet
    assert rec.expected(4200 - lead + 3, lead) == 40  # due: the smallest peak of the three
    assert rec.held_peak(3010, 1800) == 40 and rec.held_peak(5000, 100) == 0
    # the fourth does not come: past a tolerance of the period the expectation ends
    _feed(rec, 4500, 0.3, {}, start=3003, seen=seen)
    assert rec.period(4500) is None and rec.expected(4500, lead) == 0


def test_disagreeing_gaps_or_two_bursts_predict_nothing() -> None:
    two = BurstRecurrence(within_s=90)
    _feed(two, 2000, 0.3, {600: 150, 1800: 150})
    assert two.period(2000) is None and two.expected(2950, 200) == 0
    uneven = BurstRecurrence(within_s=90)
    _feed(uneven, 5000, 0.3, {600: 150, 1800: 150, 4200: 150})  # gaps 1200 and 2400
    assert uneven.period(5000) is None


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(0.05, 5.0), seed=st.integers(0, 10_000))
def test_poisson_arrivals_without_bursts_never_find_a_period(rate: float, seed: int) -> None:
    rng = random.Random(seed)
    rec = BurstRecurrence(within_s=90)
    seen, t = 0.0, 0.0
    while t < 4 * 3600:
        n, clock = 0, 0.0
        while (clock := clock + rng.expovariate(rate)) < 3.0:
            n += 1
        seen += n
        rec.add(t, seen, 3)
        assert rec.expected(t, 150) == 0
        t += 3.0
    assert rec.period(t) is None


def test_service_cv2() -> None:
    assert service_cv2([5.0] * 20) == pytest.approx(0.0)
    assert service_cv2([1.0, 2.0] * 3) is None  # too few
    rng = random.Random(3)
    assert service_cv2([rng.expovariate(0.1) for _ in range(5000)]) == pytest.approx(1.0, abs=0.1)


def test_less_variable_service_needs_no_more_slots_and_a_heavy_tail_more() -> None:
    base = steady_slots(0.3, 10.0, 30.0)
    assert steady_slots(0.3, 10.0, 30.0, variability=0.5) <= base <= steady_slots(0.3, 10.0, 30.0, variability=3.0)
    assert steady_slots(0.33, 10.0, 30.0, variability=0.64) < steady_slots(0.33, 10.0, 30.0)


def _q(rate: float, queued: int = 0, cv2: float | None = None) -> QueueState:
    return QueueState("default", queued=queued, started=0, arrival_rate=rate, completion_rate=rate,
                      mean_service_s=10.0, rate_window_s=300, recent_arrival_rate=rate, recent_window_s=60,
                      service_cv2=cv2)


def _idle(n: int, idle_for: float) -> tuple[InstanceState, ...]:
    return tuple(InstanceState(f"i-{k}", 1, 0, NOW - 3600, idle_since=NOW - idle_for) for k in range(n))


def test_measured_spread_changes_the_sizing_and_is_reported() -> None:
    cfg = PolicyConfig(max_instances=50, target_wait_s=30)
    smooth, wild = decide(_obs(_q(0.33, cv2=0.28)), cfg), decide(_obs(_q(0.33, cv2=5.0)), cfg)
    assert smooth.needed_slots < wild.needed_slots
    assert smooth.inputs["variability"] == pytest.approx(0.64) and wild.inputs["variability"] == 3.0


def _obs(*queues: QueueState, instances: tuple[InstanceState, ...] = (), **extra: object) -> Observation:
    return Observation(now=NOW, observed_at=NOW, desired=len(instances), queues=queues, instances=instances,
                       **extra)  # type: ignore[arg-type]


def test_an_expected_burst_raises_the_floor_and_keeps_idle_instances() -> None:
    cfg = PolicyConfig(max_instances=100, target_wait_s=30, idle_hold_s=60)
    assert decide(_obs(_q(0.1), burst_expected=30), cfg).desired == 30
    idle = _idle(30, idle_for=600)
    assert decide(_obs(_q(0.1), instances=idle), cfg).drain  # not expected: idle ones go
    kept = decide(_obs(_q(0.1), instances=idle, burst_expected=30), cfg)
    assert kept.drain == () and kept.desired == 30


def test_target_zero_holds_a_burst_peak_unless_a_period_or_a_warm_pool_covers_it() -> None:
    cfg = PolicyConfig(max_instances=100, target_wait_s=0)
    idle = _idle(40, idle_for=1200)
    held = decide(_obs(_q(0.1), instances=idle, recent_peak=40), cfg)
    assert held.drain == () and held.desired == 40
    periodic = decide(_obs(_q(0.1), instances=idle, recent_peak=40, burst_period_s=1200.0), cfg)
    assert len(periodic.drain) > 30  # the recurrence pre-scales instead
    pooled = decide(_obs(_q(0.1), instances=idle, recent_peak=40, warm_pool_prepared=40), cfg)
    assert len(pooled.drain) > 30  # they go back into the warm pool
    off = PolicyConfig(max_instances=100, target_wait_s=0, peak_hold_s=0)
    assert len(decide(_obs(_q(0.1), instances=idle, recent_peak=40), off).drain) > 30


def test_target_zero_idle_hold_is_at_least_start_at_once_idle() -> None:
    assert PolicyConfig(target_wait_s=0, idle_hold_s=90).idle_hold() == 600
    assert PolicyConfig(target_wait_s=30, queue_targets=(("high", 0.0),), idle_hold_s=90).idle_hold() == 600
    assert PolicyConfig(target_wait_s=30, idle_hold_s=90).idle_hold() == 90
    cfg = PolicyConfig(max_instances=100, target_wait_s=0, idle_hold_s=90, fast_drain_s=10_000)
    assert decide(_obs(_q(0.5), instances=_idle(12, idle_for=300)), cfg).drain == ()
    with pytest.raises(ValueError, match="start_at_once_idle_s"):
        PolicyConfig(start_at_once_idle_s=-1)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_observer_measures_the_spread_of_finished_jobs(redis: Redis) -> None:
    q = Queue("spread", connection=redis)
    rng = random.Random(5)
    durations = [rng.choice((1.0, 30.0)) for _ in range(40)]
    for k, d in enumerate(durations):
        job = q.enqueue("jobfleet.demo.jobs.sleep", 0)
        redis.hset(job.key, mapping={"started_at": _iso(NOW + k), "ended_at": _iso(NOW + k + d)})
        redis.lrem(q.key, 0, job.id)
        redis.zadd(q.finished_job_registry.key, {job.id: NOW + k})
    (state,) = QueueObserver(redis, ["spread"]).read(NOW + 100)
    assert state.service_cv2 == pytest.approx(service_cv2(durations), rel=1e-6)
    (empty,) = QueueObserver(redis, ["nothing-finished"]).read(NOW + 100)
    assert empty.service_cv2 is None
