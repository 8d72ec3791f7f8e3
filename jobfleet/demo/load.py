"""Demo load for ``make run``: Poisson arrivals of a mix of demo jobs, with a burst now and then.

The bursts are there so the autoscaler has something to do: the fleet grows for a burst and shrinks
when it has drained.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis

from jobfleet.connection import redis_connection
from jobfleet.settings import SettingsError, load_settings
from jobfleet.submit import submit


@dataclass(frozen=True)
class DemoJob:
    """One kind of demo job: where it goes and how to build its arguments."""

    weight: float
    queue: str
    function: str
    args: Callable[[random.Random], tuple[object, ...]]


MIX: tuple[DemoJob, ...] = (
    DemoJob(55, "default", "jobfleet.demo.jobs.sleep", lambda r: (round(r.uniform(0.2, 1.5), 2),)),
    DemoJob(15, "high", "jobfleet.demo.jobs.cpu", lambda r: (r.randint(20_000, 200_000),)),
    DemoJob(10, "low", "jobfleet.demo.jobs.flaky", lambda r: (f"demo-{uuid.uuid4().hex[:8]}", r.randint(1, 2))),
    DemoJob(8, "default", "jobfleet.demo.jobs.with_progress", lambda r: (5, round(r.uniform(0.1, 0.4), 2))),
    DemoJob(7, "high", "jobfleet.demo.jobs.noop", lambda r: ()),
    DemoJob(5, "low", "jobfleet.demo.jobs.always_fails", lambda r: ()),
)


def pick(rng: random.Random) -> DemoJob:
    """Draw one job kind by weight."""
    return rng.choices(MIX, weights=[j.weight for j in MIX])[0]


def run(connection: Redis, rate: float, burst_every: float, burst_size: int, duration: float, seed: int) -> int:
    """Submit jobs until stopped (or ``duration`` s); return how many were submitted."""
    rng = random.Random(seed)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    submitted = 0
    started = time.monotonic()
    next_burst = started + min(10.0, burst_every)
    while not stopping and (not duration or time.monotonic() - started < duration):
        now = time.monotonic()
        count = 1
        if burst_every and now >= next_burst:
            count = burst_size
            next_burst = now + burst_every
        for _ in range(count):
            job = pick(rng)
            submit(job.function, *job.args(rng), queue=job.queue, connection=connection)
            submitted += 1
        time.sleep(rng.expovariate(rate) if rate > 0 else 1.0)
    return submitted


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m jobfleet.demo.load``."""
    parser = argparse.ArgumentParser(prog="python -m jobfleet.demo.load", description=__doc__)
    parser.add_argument("--burst-every", type=float, default=60.0, help="seconds between bursts (0 = none)")
    parser.add_argument("--burst-size", type=int, default=40, help="jobs in one burst")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = never)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.burst_every < 0 or args.burst_size < 1 or args.duration < 0:
        parser.error("--burst-every and --duration must be >= 0, --burst-size >= 1")
    try:
        settings = load_settings()
        connection = redis_connection(settings)
    except SettingsError as exc:
        print(f"jobfleet: bad setting: {exc}", file=sys.stderr)
        return 2
    total = run(connection, settings.demo_rate, args.burst_every, args.burst_size, args.duration, args.seed)
    print(f"demo load: submitted {total} jobs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
