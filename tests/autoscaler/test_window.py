"""Rolling windows: rates, Little's-law service time, and the idle-slot floor."""

from __future__ import annotations

import pytest

from autoscaler.window import IdleFloor, RateWindow


def test_rates_and_service_time_from_counters() -> None:
    w = RateWindow(seconds=300, min_completions=5)
    # 2 jobs/s arrive and complete; 6 running all the time => S = 6 / 2 = 3 s (Little's law)
    for t in range(0, 101):
        w.add(float(t), seen=2.0 * t, done=2.0 * t, running=6.0)
    arrivals, completions = w.rates()
    assert arrivals == pytest.approx(2.0) and completions == pytest.approx(2.0)
    assert w.service_s() == pytest.approx(3.0)


def test_counters_that_shrink_do_not_make_negative_rates_and_few_completions_give_no_service() -> None:
    w = RateWindow(seconds=60, min_completions=5)
    w.add(0.0, seen=100, done=50, running=1)
    w.add(10.0, seen=40, done=10, running=1)  # registries expired entries
    assert w.rates() == (0.0, 0.0)
    assert w.service_s() is None


def test_idle_floor_needs_a_full_window_and_consume_removes_drained_slots() -> None:
    f = IdleFloor(seconds=10)
    for t, idle in [(0, 3), (4, 2), (8, 4)]:
        f.add(float(t), idle)
    assert f.floor(8.0) is None
    f.add(10.0, 5)
    assert f.floor(10.0) == 2
    f.consume(2)
    assert f.floor(10.0) == 0


def test_recent_rate_covers_the_last_minute_only() -> None:
    w = RateWindow(seconds=300)
    assert w.recent(60) == (0.0, 0.0) and w.span_s() == 0.0
    for t in range(0, 301, 3):
        seen = 1000.0 + 0.1 * (t - 200) if t > 200 else 5.0 * t  # a 5/s burst, then 0.1/s
        w.add(float(t), seen=seen, done=0.0)
    rate, span = w.recent(60)
    assert span == pytest.approx(60) and rate == pytest.approx(0.1)
    assert w.rates()[0] > 3  # the whole window still carries the burst
    assert w.span_s() == pytest.approx(300)
