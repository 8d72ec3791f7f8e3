"""Tagged, costed performance runs: ``make perf MESSAGES=N RUN_ID=tag`` (or ``jobfleet perf``).

Sends N jobs of one shape through a fleet and records, per run tag:

* throughput (jobs / (last end - first enqueue)), wait (enqueue -> start) and run (start -> end) p50/p95/p99,
  read back from the jobs themselves (RQ's ``enqueued_at``/``started_at``/``ended_at``);
* fleet instance-seconds: every second the worker registry is sampled and the distinct instances with a live
  worker are counted (EC2 instance ids on AWS; locally one "instance" per ``--slots`` worker processes);
* cost = instance-seconds x the instance type's on-demand price + the cache nodes for the run's duration,
  from the price table ``bench/prices.json``.

Without ``REDIS_URL`` it starts a local fleet (an embedded Redis and ``--workers`` worker processes in the
execution mode of ``JOBFLEET_EXECUTION``); with ``REDIS_URL`` it uses the deployed stack that URL points at
(its workers, its autoscaler) and starts nothing. Each run is appended to ``bench/results/perf_history.jsonl``;
the recent runs are printed side by side and drawn to ``bench/results/perf_runs.png``.

Shapes: ``noop``, ``sleep:<s>``, ``sleep:uniform:<lo>:<hi>``, ``sleep:exp:<mean>``, ``cpu:<n>`` (sum of squares
below n).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue
from rq.utils import utcparse

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "bench" / "results" / "perf_history.jsonl"
PNG = ROOT / "bench" / "results" / "perf_runs.png"
PRICES = ROOT / "bench" / "prices.json"


class PerfError(ValueError):
    """Bad input to the perf runner (one clear line, exit status 2)."""


@dataclass(frozen=True)
class Shape:
    """What each job does: a function path and how to draw its arguments."""

    spec: str
    function: str
    kind: str  # noop | const | uniform | exp | cpu
    a: float = 0.0
    b: float = 0.0

    def args(self, rng: random.Random) -> tuple[Any, ...]:
        """Arguments of one job."""
        if self.kind == "noop":
            return ()
        if self.kind == "const":
            return (self.a,)
        if self.kind == "uniform":
            return (rng.uniform(self.a, self.b),)
        if self.kind == "exp":
            return (rng.expovariate(1.0 / self.a),)
        return (int(self.a),)


def parse_shape(spec: str) -> Shape:
    """``noop`` | ``sleep:<s>`` | ``sleep:uniform:<lo>:<hi>`` | ``sleep:exp:<mean>`` | ``cpu:<n>``."""
    parts = spec.split(":")
    try:
        if parts == ["noop"]:
            return Shape(spec, "jobfleet.demo.jobs.noop", "noop")
        if parts[0] == "sleep" and len(parts) == 2 and float(parts[1]) >= 0:
            return Shape(spec, "jobfleet.demo.jobs.sleep", "const", float(parts[1]))
        if parts[:2] == ["sleep", "uniform"] and len(parts) == 4 and 0 <= float(parts[2]) <= float(parts[3]):
            return Shape(spec, "jobfleet.demo.jobs.sleep", "uniform", float(parts[2]), float(parts[3]))
        if parts[:2] == ["sleep", "exp"] and len(parts) == 3 and float(parts[2]) > 0:
            return Shape(spec, "jobfleet.demo.jobs.sleep", "exp", float(parts[2]))
        if parts[0] == "cpu" and len(parts) == 2 and int(parts[1]) >= 0:
            return Shape(spec, "jobfleet.demo.jobs.cpu", "cpu", float(int(parts[1])))
    except ValueError:
        pass
    raise PerfError(f"unknown job shape {spec!r}: expected noop, sleep:<s>, sleep:uniform:<lo>:<hi>, "
                    "sleep:exp:<mean> or cpu:<n>")


def load_prices(path: Path = PRICES) -> dict[str, dict[str, float]]:
    """The price table (USD per hour): ``{"ec2": {...}, "elasticache": {...}}``."""
    data = json.loads(path.read_text())
    return {"ec2": dict(data["ec2"]), "elasticache": dict(data["elasticache"])}


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


@dataclass
class RunRecord:
    """One performance run, as appended to the history file."""

    run_id: str
    at: str
    target: str
    shape: str
    messages: int
    workers: int | None
    execution: str
    finished: int
    failed: int
    throughput_jobs_per_s: float
    wait_p50_s: float
    wait_p95_s: float
    wait_p99_s: float
    run_p50_s: float
    run_p95_s: float
    run_p99_s: float
    duration_s: float
    instance_seconds: float
    instance_type: str
    instance_usd_per_h: float
    cache_node_type: str
    cache_nodes: int
    cost_usd: float
    usd_per_1k_jobs: float


# ----- the local fleet ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def local_fleet(workers: int, slots: int, queue: str) -> Iterator[str]:
    """An embedded Redis and ``workers`` worker processes (one instance id per ``slots`` of them)."""
    from jobfleet.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        procs = []
        try:
            for i in range(workers):
                env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
                env.update(REDIS_URL=server.url, PYTHONPATH=str(ROOT), JOBFLEET_METRICS_PORT="0",
                           JOBFLEET_LOG_LEVEL="warning", JOBFLEET_INSTANCE_ID=f"local-{i // slots}",
                           JOBFLEET_DATA_DIR=str(Path(tmp) / "data"))
                log = open(Path(tmp) / f"worker{i}.log", "wb")  # noqa: SIM115 - closed with the process
                procs.append((subprocess.Popen([sys.executable, "-m", "worker", "--queues", queue,
                                                "--name", f"perf-{i}"], cwd=ROOT, env=env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True), log))
            client = Redis.from_url(server.url)
            deadline = time.monotonic() + 60
            while client.scard("rq:workers") < workers:
                if time.monotonic() > deadline or any(p.poll() is not None for p, _ in procs):
                    raise RuntimeError("the local workers did not start (see their logs)")
                time.sleep(0.1)
            client.close()
            yield server.url
        finally:
            for proc, _ in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc, log in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                log.close()


# ----- one run -------------------------------------------------------------------------------------------------------

def live_instances(client: Redis) -> set[str]:
    """Instance ids with at least one live registered worker."""
    from jobfleet.worker_registry import worker_instances

    return {w.instance_id or w.name for w in worker_instances(client)}


def run_once(redis_url: str, shape: Shape, messages: int, queue: str, seed: int,
             timeout: float) -> tuple[list[tuple[float, float, float]], int, float, float]:
    """Send the jobs, wait for all of them; (enqueued, started, ended) per finished job, failures,
    instance-seconds and the duration."""
    client = Redis.from_url(redis_url)
    rng = random.Random(seed)
    q = Queue(queue, connection=client)
    began = time.time()
    instance_seconds = 0.0
    last_sample = time.monotonic()
    ids: list[str] = []
    for start in range(0, messages, 500):
        batch = [Queue.prepare_data(shape.function, shape.args(rng), result_ttl=3600, failure_ttl=3600)
                 for _ in range(min(500, messages - start))]
        ids += [job.id for job in q.enqueue_many(batch)]
    pending = set(ids)
    failed = 0
    deadline = time.monotonic() + timeout
    next_sample = 0.0
    while pending:
        now = time.monotonic()
        if now >= next_sample:
            instance_seconds += len(live_instances(client)) * (now - last_sample if next_sample else 0.0)
            last_sample = now
            next_sample = now + 1.0
        chunk = list(pending)[:2000]
        pipe = client.pipeline(transaction=False)
        for job_id in chunk:
            pipe.hget(f"rq:job:{job_id}", "status")
        for job_id, status in zip(chunk, pipe.execute(), strict=True):
            if status in (b"finished", b"failed", b"stopped", b"canceled"):
                pending.discard(job_id)
                failed += status != b"finished"
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {messages - len(pending)}/{messages} jobs ended within {timeout} s")
        time.sleep(0.2)
    now = time.monotonic()
    instance_seconds += len(live_instances(client)) * (now - last_sample)
    duration = time.time() - began
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"rq:job:{job_id}", "status", "enqueued_at", "started_at", "ended_at")
    times = []
    for status, enqueued, started, ended in pipe.execute():
        if status == b"finished" and enqueued and started and ended:
            times.append(tuple(utcparse(v.decode()).timestamp() for v in (enqueued, started, ended)))
    client.close()
    return times, failed, instance_seconds, duration  # type: ignore[return-value]


def record(run_id: str, target: str, shape: Shape, messages: int, workers: int | None,
           times: list[tuple[float, float, float]], failed: int, instance_seconds: float, duration: float,
           instance_type: str, cache_node_type: str, cache_nodes: int,
           prices: dict[str, dict[str, float]]) -> RunRecord:
    """Turn one run's raw figures into a history record (percentiles, throughput, cost)."""
    if instance_type not in prices["ec2"]:
        raise PerfError(f"no price for instance type {instance_type!r} in bench/prices.json "
                        f"(known: {', '.join(sorted(prices['ec2']))})")
    if cache_node_type not in prices["elasticache"]:
        raise PerfError(f"no price for cache node type {cache_node_type!r} in bench/prices.json "
                        f"(known: {', '.join(sorted(prices['elasticache']))})")
    waits = [s - e for e, s, _ in times]
    runs = [d - s for _, s, d in times]
    span = (max(d for _, _, d in times) - min(e for e, _, _ in times)) if times else 0.0
    price = prices["ec2"][instance_type]
    cost = instance_seconds * price / 3600 + duration * cache_nodes * prices["elasticache"][cache_node_type] / 3600
    return RunRecord(
        run_id=run_id, at=datetime.now(UTC).isoformat(timespec="seconds"), target=target, shape=shape.spec,
        messages=messages, workers=workers, execution=os.environ.get("JOBFLEET_EXECUTION", "pool"),
        finished=len(times), failed=failed, throughput_jobs_per_s=len(times) / span if span > 0 else 0.0,
        wait_p50_s=percentile(waits, 50), wait_p95_s=percentile(waits, 95), wait_p99_s=percentile(waits, 99),
        run_p50_s=percentile(runs, 50), run_p95_s=percentile(runs, 95), run_p99_s=percentile(runs, 99),
        duration_s=duration, instance_seconds=instance_seconds, instance_type=instance_type,
        instance_usd_per_h=price, cache_node_type=cache_node_type, cache_nodes=cache_nodes, cost_usd=cost,
        usd_per_1k_jobs=1000 * cost / max(1, len(times)),
    )


# ----- history, table, plot ------------------------------------------------------------------------------------------

def append_history(path: Path, run: RunRecord) -> None:
    """Append one run (one JSON object per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(asdict(run)) + "\n")


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every run in the history file, oldest first (unreadable lines are skipped)."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict) and "run_id" in value:
                runs.append(value)
    return runs


COLUMNS = [("run_id", "run", "{}"), ("shape", "shape", "{}"), ("messages", "jobs", "{}"),
           ("throughput_jobs_per_s", "jobs/s", "{:.1f}"), ("wait_p50_s", "wait p50", "{:.3f}"),
           ("wait_p95_s", "p95", "{:.3f}"), ("wait_p99_s", "p99", "{:.3f}"), ("run_p50_s", "run p50", "{:.3f}"),
           ("run_p95_s", "p95", "{:.3f}"), ("run_p99_s", "p99", "{:.3f}"),
           ("instance_seconds", "inst-s", "{:.1f}"), ("cost_usd", "cost $", "{:.5f}"),
           ("usd_per_1k_jobs", "$/1k jobs", "{:.5f}")]


def table(runs: list[dict[str, Any]]) -> str:
    """The runs side by side, one line each."""
    rows = [[title for _, title, _ in COLUMNS]]
    for run in runs:
        rows.append([fmt.format(run.get(key, "")) if run.get(key) is not None else "-" for key, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))) for row in rows)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Bars per run: throughput, wait p95 and cost per 1,000 jobs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(r["run_id"]) for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(max(9, 1.3 * len(runs) * 3), 3.6))
    for ax, key, title in zip(axes, ("throughput_jobs_per_s", "wait_p95_s", "usd_per_1k_jobs"),
                              ("throughput (jobs/s)", "wait p95 (s)", "cost per 1,000 jobs (USD)"), strict=True):
        ax.bar(labels, [float(r.get(key) or 0) for r in runs], color="#4c72b0")
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle("jobfleet performance runs")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----- command line --------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None, prog: str = "python -m bench.perf") -> int:
    """Run one tagged performance run, append it to the history, print recent runs and draw them."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000, help="jobs to send (MESSAGES)")
    parser.add_argument("--run-id", required=True, help="tag of this run (RUN_ID; PerfTestRun on AWS)")
    parser.add_argument("--shape", default="noop", help="noop | sleep:<s> | sleep:uniform:<lo>:<hi> | "
                        "sleep:exp:<mean> | cpu:<n>")
    parser.add_argument("--queue", default="default")
    parser.add_argument("--workers", type=int, default=2, help="local fleet: worker processes")
    parser.add_argument("--slots", type=int, default=2, help="local fleet: worker processes per instance")
    parser.add_argument("--instance-type", default="t3.small", help="priced worker instance type")
    parser.add_argument("--cache-node-type", default="cache.t4g.micro")
    parser.add_argument("--cache-nodes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the jobs may take")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--history", type=Path, default=HISTORY)
    parser.add_argument("--png", type=Path, default=PNG)
    parser.add_argument("--show", type=int, default=10, help="recent runs in the table and the plot")
    opts = parser.parse_args(argv)
    try:
        shape = parse_shape(opts.shape)
        if opts.messages < 1 or opts.workers < 1 or opts.slots < 1 or opts.cache_nodes < 0 or opts.show < 1:
            raise PerfError("--messages, --workers, --slots and --show must be >= 1, --cache-nodes >= 0")
        if not opts.run_id.strip() or len(opts.run_id) > 128:
            raise PerfError("--run-id must be 1-128 characters")
        prices = load_prices()
        record(opts.run_id, "check", shape, 1, None, [], 0, 0.0, 0.0, opts.instance_type, opts.cache_node_type,
               opts.cache_nodes, prices)  # price lookups fail before any job is sent
        remote = os.environ.get("REDIS_URL")
        if remote:
            times, failed, inst_s, duration = run_once(remote, shape, opts.messages, opts.queue, opts.seed,
                                                       opts.timeout)
            workers, target = None, "deployed"
        else:
            with local_fleet(opts.workers, opts.slots, opts.queue) as url:
                times, failed, inst_s, duration = run_once(url, shape, opts.messages, opts.queue, opts.seed,
                                                           opts.timeout)
            workers, target = opts.workers, "local"
        run = record(opts.run_id, target, shape, opts.messages, workers, times, failed, inst_s, duration,
                     opts.instance_type, opts.cache_node_type, opts.cache_nodes, prices)
    except PerfError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    append_history(opts.history, run)
    recent = read_history(opts.history)[-opts.show:]
    print(table(recent))
    plot(recent, opts.png)
    print(f"appended run {run.run_id!r} to {opts.history}; plot {opts.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
