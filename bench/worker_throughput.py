"""Worker throughput: jobfleet's worker against RQ's own ``Worker`` and ``SimpleWorker``, same run.

Each contender drains the same batch of no-op jobs in burst mode from a fresh embedded Redis (AOF on,
``appendfsync everysec``), one worker process at a time. We report jobs/s (median of ``--repeat``
runs), worker CPU ms per job and Redis commands per job, and the ratio of ours to RQ's ``Worker``
(the anchor measured in this same run). Nothing is asserted: the figures are printed and written to
``bench/results/worker_throughput.json``.

Run: ``make bench-worker`` (or ``python -m bench.worker_throughput --jobs 500 --repeat 3``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from redis import Redis
from rq import Queue

from jobfleet.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "worker_throughput.json"

CONTENDERS: dict[str, list[str]] = {
    "rq Worker (anchor)": ["-m", "rq.cli", "worker", "--burst", "-w", "rq.Worker", "bench"],
    "rq SimpleWorker": ["-m", "rq.cli", "worker", "--burst", "-w", "rq.SimpleWorker", "bench"],
    "jobfleet worker": ["-m", "worker", "--burst", "--queues", "bench"],
}


@dataclass
class Run:
    """One contender draining one batch."""

    jobs_per_s: float
    cpu_ms_per_job: float
    redis_commands_per_job: float


def spawn_contender(args: list[str], redis_url: str, **popen: Any) -> subprocess.Popen[bytes]:
    """Start a contender (``-m rq.cli worker ...`` or ``-m worker ...``) on ``redis_url``, stderr piped."""
    env = dict(os.environ, REDIS_URL=redis_url, RQ_REDIS_URL=redis_url, PYTHONPATH=str(ROOT),
               JOBFLEET_METRICS_PORT="0", JOBFLEET_LOG_LEVEL="warning")
    url_args = ["--url", redis_url] if args[:2] == ["-m", "rq.cli"] else []
    return subprocess.Popen([sys.executable, *args[:3], *url_args, *args[3:]], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)


def _commands(client: Redis) -> int:
    stats = client.info("stats")
    return int(stats["total_commands_processed"])


def measure(args: list[str], redis_url: str, jobs: int) -> Run:
    """Enqueue ``jobs`` no-ops, run the contender in burst mode, time it until it exits."""
    client = Redis.from_url(redis_url)
    client.flushall()
    queue = Queue("bench", connection=client)
    batch = [Queue.prepare_data("jobfleet.demo.jobs.noop", result_ttl=60) for _ in range(jobs)]
    for start in range(0, jobs, 500):
        queue.enqueue_many(batch[start:start + 500])
    before = _commands(client)
    started = time.perf_counter()
    proc = spawn_contender(args, redis_url)
    ps = psutil.Process(proc.pid)
    cpu = 0.0
    while proc.poll() is None:
        try:
            times = ps.cpu_times()
            cpu = times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {err.decode()[-2000:]}")
    done = Queue("bench", connection=client).finished_job_registry.count
    if done != jobs:
        raise RuntimeError(f"{args}: only {done}/{jobs} jobs finished")
    commands = _commands(client) - before
    client.close()
    return Run(jobs / elapsed, 1000 * cpu / jobs, commands / jobs)


def main(argv: list[str] | None = None) -> int:
    """Run every contender ``--repeat`` times and print the table and the ratio to the anchor."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker_throughput", description=__doc__)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args(argv)
    if opts.jobs < 1 or opts.repeat < 1:
        parser.error("--jobs and --repeat must be >= 1")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as server:
        for name, args in CONTENDERS.items():
            runs = [measure(args, server.url, opts.jobs) for _ in range(opts.repeat)]
            results[name] = {
                key: statistics.median(asdict(run)[key] for run in runs) for key in asdict(runs[0])
            }
    anchor = results["rq Worker (anchor)"]["jobs_per_s"]
    print(f"{'contender':<22} {'jobs/s':>9} {'CPU ms/job':>11} {'Redis cmds/job':>15} {'x anchor':>9}")
    for name, r in results.items():
        print(f"{name:<22} {r['jobs_per_s']:>9.1f} {r['cpu_ms_per_job']:>11.2f} "
              f"{r['redis_commands_per_job']:>15.1f} {r['jobs_per_s'] / anchor:>9.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"jobs": opts.jobs, "repeat": opts.repeat, "results": results}, indent=2))
    print(f"written {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
