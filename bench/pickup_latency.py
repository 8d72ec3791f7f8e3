"""Idle pick-up latency: enqueue → job body start on an idle worker, per priority queue, ours vs RQ's ``Worker``.

One long-running worker listens on ``high,default,low`` against a fresh embedded Redis. Jobs are enqueued
one at a time, each after the previous one finished and a random pause (so enqueues do not line up with
any poll period); the job (``jobfleet.demo.jobs.clock``) returns the time its body started, fork included.
Both contenders run in the same invocation and the ratio of medians to RQ's ``Worker`` (the anchor) is
printed; nothing is asserted. Results go to ``bench/results/pickup_latency.json``.

Run: ``make bench-latency`` (or ``python -m bench.pickup_latency --jobs 30``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis
from rq import Queue, Worker
from rq.job import Job, JobStatus

from bench.worker_throughput import spawn_contender
from jobfleet.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pickup_latency.json"
QUEUES = ("high", "default", "low")
CONTENDERS: dict[str, list[str]] = {
    "rq Worker (anchor)": ["-m", "rq.cli", "worker", "-w", "rq.Worker", *QUEUES],
    "jobfleet worker": ["-m", "worker", "--queues", ",".join(QUEUES)],
}


def _wait_idle(client: Redis, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early with code {proc.returncode}")
        workers = Worker.all(connection=client)
        if workers and all(w.get_state() == "idle" for w in workers):
            return
        time.sleep(0.1)
    raise RuntimeError("worker did not become idle within 30 s")


def _one(queue: Queue, timeout: float = 10.0) -> float:
    """Seconds from enqueue to the job body's start."""
    sent = time.time()
    job = queue.enqueue("jobfleet.demo.jobs.clock", result_ttl=60)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Job.fetch(job.id, connection=queue.connection).get_status()
        if status == JobStatus.FINISHED:
            started = job.return_value(refresh=True)
            return float(started or 0.0) - sent
        if status == JobStatus.FAILED:
            raise RuntimeError(f"job {job.id} failed")
        time.sleep(0.002)
    raise RuntimeError(f"job {job.id} on {queue.name} was not done within {timeout}s")


def measure(args: list[str], redis_url: str, jobs: int, rng: random.Random) -> dict[str, list[float]]:
    """Latencies (s) per queue for one contender."""
    client = Redis.from_url(redis_url)
    client.flushall()
    proc = spawn_contender(args, redis_url, start_new_session=True)
    try:
        _wait_idle(client, proc)
        time.sleep(1.0)
        latencies: dict[str, list[float]] = {name: [] for name in QUEUES}
        for _ in range(jobs):
            for name in QUEUES:
                time.sleep(rng.uniform(0.05, 0.4))
                latencies[name].append(_one(Queue(name, connection=client)))
        return latencies
    except RuntimeError:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=20)[1].decode(errors="replace")
        raise RuntimeError(f"{args[:3]}: worker log tail:\n{err[-3000:]}") from None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        client.close()


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    """Measure both contenders and print medians, p95s and the ratio to the anchor."""
    parser = argparse.ArgumentParser(prog="python -m bench.pickup_latency", description=__doc__)
    parser.add_argument("--jobs", type=int, default=30, help="jobs per queue per contender")
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args(argv)
    if opts.jobs < 1:
        parser.error("--jobs must be >= 1")
    rng = random.Random(opts.seed)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as server:
        for name, args in CONTENDERS.items():
            per_queue = measure(args, server.url, opts.jobs, rng)
            results[name] = {
                q: {"median_ms": 1000 * statistics.median(v), "p95_ms": 1000 * _pct(v, 95)}
                for q, v in per_queue.items()
            }
    anchor = results["rq Worker (anchor)"]
    print(f"{'contender':<20} {'queue':<8} {'median ms':>10} {'p95 ms':>8} {'median x anchor':>16}")
    for name, rows in results.items():
        for q, r in rows.items():
            ratio = r["median_ms"] / anchor[q]["median_ms"]
            print(f"{name:<20} {q:<8} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} {ratio:>16.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"jobs_per_queue": opts.jobs, "results": results}, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
