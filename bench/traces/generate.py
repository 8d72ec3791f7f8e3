"""Seeded generator of the shipped traces (``python -m bench.traces.generate`` rewrites them).

Each CSV has the header ``arrival_s,queue,service_s``. Arrivals are Poisson (thinned for a varying rate).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUEUES = ("high", "default", "low")


def _poisson(rng: random.Random, duration: float, rate: Callable[[float], float], peak: float) -> list[float]:
    """Arrival times of a non-homogeneous Poisson process by thinning."""
    times: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= duration:
            return times
        if rng.random() * peak <= rate(t):
            times.append(t)


def _queue(rng: random.Random) -> str:
    return rng.choices(QUEUES, weights=(1, 6, 3))[0]


def steady(rng: random.Random) -> list[tuple[float, str, float]]:
    """2 h at 0.5 jobs/s, exponential service mean 10 s (5 erlangs)."""
    return [(t, _queue(rng), rng.expovariate(1 / 10)) for t in _poisson(rng, 7200, lambda _t: 0.5, 0.5)]


def diurnal(rng: random.Random) -> list[tuple[float, str, float]]:
    """A compressed 4 h 'day': rate 0.05 -> 1.2 -> 0.05 jobs/s, lognormal service mean ~8 s."""
    duration = 4 * 3600

    def rate(t: float) -> float:
        return 0.05 + 1.15 * math.sin(math.pi * t / duration) ** 2

    sigma = 0.6
    mu = math.log(8) - sigma**2 / 2
    return [(t, _queue(rng), rng.lognormvariate(mu, sigma)) for t in _poisson(rng, duration, rate, 1.2)]


def burst(rng: random.Random) -> list[tuple[float, str, float]]:
    """2 h at 0.1 jobs/s with two sudden bursts (300 jobs in 20 s at 20 min, 500 in 30 s at 70 min)."""
    rows = [(t, _queue(rng), rng.expovariate(1 / 12)) for t in _poisson(rng, 7200, lambda _t: 0.1, 0.1)]
    for start, count, spread in ((1200.0, 300, 20.0), (4200.0, 500, 30.0)):
        rows += [(start + rng.uniform(0, spread), "default", rng.expovariate(1 / 12)) for _ in range(count)]
    return sorted(rows)


def heavy_tail(rng: random.Random) -> list[tuple[float, str, float]]:
    """2 h at 0.4 jobs/s, Pareto service times (alpha 1.3, min 2 s, capped at 900 s)."""
    return [
        (t, _queue(rng), min(900.0, 2.0 * rng.paretovariate(1.3)))
        for t in _poisson(rng, 7200, lambda _t: 0.4, 0.4)
    ]


def daily(rng: random.Random) -> list[tuple[float, str, float]]:
    """3 days with a working-day period: 0.02 jobs/s at night, a 5-minute ramp at 08:00 to 0.3 jobs/s, a lunch
    dip to 0.15 (12-13 h), down to 0.02 from 18:00; lognormal service mean ~10 s."""
    day = 86400.0

    def rate(t: float) -> float:
        h = (t % day) / 3600
        if 8 <= h < 18:
            level = 0.15 if 12 <= h < 13 else 0.3
            return 0.02 + (level - 0.02) * min(1.0, (h - 8) * 12)  # 5-minute ramp
        return 0.02

    sigma = 0.5
    mu = math.log(10) - sigma**2 / 2
    return [(t, _queue(rng), rng.lognormvariate(mu, sigma)) for t in _poisson(rng, 3 * day, rate, 0.3)]


def priority(rng: random.Random) -> list[tuple[float, str, float]]:
    """3 h, two queues: `high` interactive jobs (0.15/s, mean 5 s) and `low` batch jobs in batches of 150 every
    20 min plus a 0.2/s trickle (mean 15 s): a 5 s target for `high` and 300 s for `low` is the point."""
    rows = [(t, "high", rng.expovariate(1 / 5)) for t in _poisson(rng, 3 * 3600, lambda _t: 0.15, 0.15)]
    rows += [(t, "low", rng.expovariate(1 / 15)) for t in _poisson(rng, 3 * 3600, lambda _t: 0.2, 0.2)]
    for start in range(600, 3 * 3600, 1200):
        rows += [(start + rng.uniform(0, 10), "low", rng.expovariate(1 / 15)) for _ in range(150)]
    return sorted(rows)


TRACES: dict[str, Callable[[random.Random], list[tuple[float, str, float]]]] = {
    "steady": steady, "diurnal": diurnal, "burst": burst, "heavy_tail": heavy_tail, "daily": daily,
    "priority": priority,
}


def write_all(seed: int = 20261123) -> list[Path]:
    """Write every trace next to this file; returns the paths."""
    paths = []
    for index, (name, make) in enumerate(TRACES.items()):
        rows = make(random.Random(seed + index))
        path = HERE / f"{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["arrival_s", "queue", "service_s"])
            writer.writerows((f"{t:.3f}", q, f"{s:.3f}") for t, q, s in rows)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all():
        print(written)
