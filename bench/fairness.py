"""Fair share under load: jobfleet's fair dequeue vs RQ's strict order and RQ's round_robin, in one run.

Scenario (the same for every policy, each on a fresh embedded Redis with ``--slots`` worker processes):
tenant A enqueues ``--flood`` short jobs (``--job-s`` each); once every slot is busy with A, tenants B and C
each submit ``--rate`` jobs per second for ``--seconds`` seconds (more than their share, so all three stay
backlogged). Weights A:B:C = 1:1:2. Every job records when it started and ended; from that:

* ``max_share_deviation``: over windows of ``--window`` s starting ``--settle`` s after B and C began (one
  decay window: two half-lives), the largest ``|share - entitled| / entitled`` of run-seconds, any tenant;
* ``late_tenant_first_start_s``: seconds from a late tenant's first submission to its first start (the
  worse of B and C); censored at the end of the run when it never started (printed with ">=");
* ``late_tenant_p95_wait_s``: p95 of enqueue-to-start of B's and C's jobs (jobs never started count with
  their wait so far: a lower bound);
* ``jain_index``: Jain's index of share/entitled over the same windows (mean), 1 = exactly fair.

Policies: ``jobfleet`` (``python -m worker``, fair share, weights in Redis, half-life ``--half-life``),
``rq-default`` (RQ ``Worker``, one queue, strict FIFO), ``rq-round-robin`` (RQ ``Worker`` with
``--dequeue-strategy round_robin`` over one queue per tenant; it cannot weigh tenants). Results go to
``bench/results/fairness.json``; ratios to each RQ baseline are printed. ``--cpu`` instead measures the
Redis CPU per fair dequeue (INFO commandstats) at 10 and 10,000 backlogged tenants, against the strict
reliable-dequeue script, into ``bench/results/fairness_cpu.json``.

Run: ``make bench-fairness`` (about three minutes) or ``python -m bench.fairness --seconds 20``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, get_current_job

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.tenant_admin import set_weight
from jobfleet.tenants import register_tenant, tenant_queue_name
from worker.fair_policy import entitled_shares, jain_index, max_share_deviation

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fairness.json"
CPU_RESULTS = ROOT / "bench" / "results" / "fairness_cpu.json"
RUNS_KEY = "bench:fair:runs"
WEIGHTS = {"A": 1.0, "B": 1.0, "C": 2.0}
POLICIES = ("jobfleet", "rq-default", "rq-round-robin")


def work(tenant: str, seconds: float, sent: float) -> None:
    """The benchmark job: sleep, then record ``tenant sent start end``."""
    began = time.time()
    time.sleep(seconds)
    job = get_current_job()
    assert job is not None
    job.connection.rpush(RUNS_KEY, f"{tenant} {sent:.6f} {began:.6f} {time.time():.6f}")


def _queue_for(policy: str, tenant: str) -> tuple[str, bool]:
    """RQ queue name of a tenant's jobs under ``policy``, and whether to register the tenant (jobfleet)."""
    if policy == "jobfleet":
        return tenant_queue_name("default", tenant), True
    if policy == "rq-round-robin":
        return f"tenant-{tenant}", False
    return "default", False


def _enqueue(client: Redis, policy: str, tenant: str, count: int, job_s: float) -> None:
    name, register = _queue_for(policy, tenant)
    queue = Queue(name, connection=client)
    sent = time.time()
    for start in range(0, count, 500):
        with client.pipeline() as pipe:
            for _ in range(min(500, count - start)):
                queue.enqueue_call("bench.fairness.work", args=(tenant, job_s, sent), result_ttl=0, pipeline=pipe)
            if register:
                register_tenant(pipe, "default", tenant)
            pipe.execute()


def _worker_args(policy: str) -> list[str]:
    if policy == "jobfleet":
        return ["-m", "worker", "--queues", "default"]
    if policy == "rq-round-robin":
        return ["-m", "rq.cli", "worker", "-w", "rq.Worker", "--dequeue-strategy", "round_robin",
                *(f"tenant-{t}" for t in WEIGHTS)]
    return ["-m", "rq.cli", "worker", "-w", "rq.Worker", "default"]


@contextlib.contextmanager
def _workers(policy: str, url: str, slots: int, half_life: float, logdir: Path) -> Iterator[None]:
    env = dict(os.environ, REDIS_URL=url, RQ_REDIS_URL=url, PYTHONPATH=str(ROOT), JOBFLEET_METRICS_PORT="0",
               JOBFLEET_LOG_LEVEL="warning", JOBFLEET_FAIR_HALF_LIFE=str(half_life), JOBFLEET_QUEUES="default")
    procs = []
    try:
        for i in range(slots):
            args = _worker_args(policy)
            if args[:2] == ["-m", "rq.cli"]:
                args = [*args[:3], "--url", url, "--name", f"{policy}-{i}", *args[3:]]
            else:
                args = [*args, "--name", f"{policy}-{i}"]
            log = (logdir / f"{policy}-{i}.log").open("ab")
            procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_policy(policy: str, args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    """One policy, start to finish, on its own Redis; the four figures plus details."""
    server = EmbeddedRedis(Path(tempfile.mkdtemp(dir=logdir)), aof=False)
    server.start()
    client = Redis.from_url(server.url)
    try:
        if policy == "jobfleet":
            for tenant, weight in WEIGHTS.items():
                set_weight(client, tenant, weight)
        _enqueue(client, policy, "A", args.flood, args.job_s)
        with _workers(policy, server.url, args.slots, args.half_life, logdir):
            _wait(lambda: client.llen(RUNS_KEY) >= 2 * args.slots, 120, f"{policy}: workers busy with A")
            began = time.time()
            sent = {"B": 0, "C": 0}
            first_sent: dict[str, float] = {}
            while (now := time.time()) < began + args.seconds:
                due = int((now - began) * args.rate) + 1
                for tenant in ("B", "C"):
                    if sent[tenant] < due:
                        first_sent.setdefault(tenant, time.time())
                        _enqueue(client, policy, tenant, due - sent[tenant], args.job_s)
                        sent[tenant] = due
                time.sleep(0.01)
            ended = time.time()
            records = [(r.decode() if isinstance(r, bytes) else str(r)).split() for r in client.lrange(RUNS_KEY, 0, -1)]
        runs = [(t, float(s), float(b), float(e)) for t, s, b, e in records]
    finally:
        client.close()
        server.stop()
    return _figures(policy, runs, sent, first_sent, began, ended, args)


def _figures(policy: str, runs: list[tuple[str, float, float, float]], sent: dict[str, int],
             first_sent: dict[str, float], began: float, ended: float, args: argparse.Namespace) -> dict[str, Any]:
    censored = False
    first_starts = []
    for tenant in ("B", "C"):
        starts = [b for t, _, b, _ in runs if t == tenant]
        if starts:
            first_starts.append(min(starts) - first_sent[tenant])
        else:
            first_starts.append(ended - first_sent[tenant])
            censored = True
    waits = [b - s for t, s, b, _ in runs if t in ("B", "C")]
    started = {t: sum(1 for r in runs if r[0] == t) for t in ("B", "C")}
    # jobs of B and C sent but never started: their wait so far (send times are spread evenly over the run)
    for tenant in ("B", "C"):
        missing = sent[tenant] - started[tenant]
        waits += [ended - (began + (sent[tenant] - k) / args.rate) for k in range(missing)]
    waits.sort()
    p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else 0.0
    entitled = entitled_shares(WEIGHTS, WEIGHTS)
    deviations, jains, windows = [], [], []
    start = began + args.settle
    while start + args.window <= ended + 1e-9:
        used = {t: 0.0 for t in WEIGHTS}
        for t, _, b, e in runs:
            used[t] += max(0.0, min(e, start + args.window) - max(b, start))
        total = sum(used.values())
        shares = {t: (u / total if total else 0.0) for t, u in used.items()}
        deviations.append(max_share_deviation(shares, entitled))
        jains.append(jain_index(shares, entitled))
        windows.append({t: round(v, 4) for t, v in shares.items()})
        start += args.window
    return {
        "max_share_deviation": round(max(deviations, default=float("nan")), 4),
        "late_tenant_first_start_s": round(max(first_starts), 4),
        "late_tenant_p95_wait_s": round(p95, 4),
        "jain_index": round(statistics.fmean(jains) if jains else float("nan"), 4),
        "_first_start_censored": censored,
        "_windows": windows,
        "_jobs_run": len(runs),
    }


# ----- Redis CPU per dequeue --------------------------------------------------------------------------------


def _usec_per_call(client: Redis) -> float:
    stats = client.info("commandstats")
    calls = usec = 0.0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        if name in stats:
            calls += float(stats[name]["calls"])
            usec += float(stats[name]["usec"])
    return usec / calls if calls else float("nan")


def measure_cpu(tenants: int, dequeues: int, logdir: Path, rounds: int = 3) -> dict[str, float]:
    """Redis CPU (usec) per fair dequeue and per job-end accounting with ``tenants`` backlogged tenants,
    and per strict reliable dequeue from one queue (the anchor): medians of ``rounds`` interleaved rounds."""
    from jobfleet.settings import load_settings
    from worker.fair_queue import _JOB_ENDED, FairQueue, fair_queue_class, run_script
    from worker.reliable_queue import ReliableQueue

    server = EmbeddedRedis(Path(tempfile.mkdtemp(dir=logdir)), aof=False)
    server.start()
    client = Redis.from_url(server.url)
    try:
        per_tenant = max(2, rounds * dequeues // tenants + 2)
        rng = random.Random(1)
        with client.pipeline(transaction=False) as pipe:
            for i in range(tenants):
                name = f"t{i}"
                for _ in range(per_tenant):
                    pipe.rpush(f"rq:queue:default~{name}", f"job-{i}-{_}")
                register_tenant(pipe, "default", name)
                pipe.hset("jobfleet:fair:default:usage", name, rng.random() * 100)
                if i % 1000 == 999:
                    pipe.execute()
            for k in range(rounds * dequeues + 1):
                pipe.rpush("rq:queue:plain", f"plain-{k}")
            pipe.execute()
        fq: type[FairQueue] = fair_queue_class(load_settings({"JOBFLEET_FAIR_HALF_LIFE": "300"}))
        fq.move_first(client, ["rq:queue:default"])  # warm-up: scores every newly registered tenant once
        ReliableQueue.move_first(client, ["rq:queue:plain"])
        fair, ended, strict = [], [], []
        for _ in range(rounds):
            client.config_resetstat()
            for _ in range(dequeues):
                fq.move_first(client, ["rq:queue:default"])
            fair.append(_usec_per_call(client))
            charges = list(fq.charges.values())
            fq.charges.clear()
            client.config_resetstat()
            for charge in charges:
                run_script(client, _JOB_ENDED, ["jobfleet:fair:weights", "jobfleet:fair:caps"],
                           [300.0, charge.queue, charge.tenant, 0.1, charge.seconds, charge.at, 0.2])
            ended.append(_usec_per_call(client))
            client.config_resetstat()
            for _ in range(dequeues):
                ReliableQueue.move_first(client, ["rq:queue:plain"])
            strict.append(_usec_per_call(client))
        fair_us, ended_us, strict_us = (statistics.median(v) for v in (fair, ended, strict))
    finally:
        client.close()
        server.stop()
    return {"tenants": tenants, "fair_dequeue_usec": round(fair_us, 2), "job_end_usec": round(ended_us, 2),
            "strict_dequeue_usec": round(strict_us, 2), "fair_vs_strict": round(fair_us / strict_us, 2)}


def main(argv: list[str] | None = None) -> int:
    """Run every policy (or ``--cpu``) and write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.split("\n")[0])
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--slots", type=int, default=4, help="worker processes")
    parser.add_argument("--flood", type=int, default=10_000, help="jobs tenant A enqueues first")
    parser.add_argument("--job-s", type=float, default=0.2, help="seconds each job sleeps")
    parser.add_argument("--rate", type=float, default=12.0, help="jobs per second B and C each submit")
    parser.add_argument("--seconds", type=float, default=45.0, help="how long B and C submit")
    parser.add_argument("--half-life", type=float, default=5.0, help="jobfleet's JOBFLEET_FAIR_HALF_LIFE")
    parser.add_argument("--settle", type=float, default=None, help="skip this long (default 2 half-lives)")
    parser.add_argument("--window", type=float, default=10.0, help="share window, seconds")
    parser.add_argument("--cpu", action="store_true", help="measure Redis CPU per dequeue instead")
    args = parser.parse_args(argv)
    if args.settle is None:
        args.settle = 2 * args.half_life
    logdir = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    if args.cpu:
        rows = [measure_cpu(n, 1000, logdir) for n in (10, 10_000)]
        for row in rows:
            print(f"{row['tenants']:>6} tenants: fair dequeue {row['fair_dequeue_usec']:.1f} us/call, job end "
                  f"{row['job_end_usec']:.1f} us/call, strict dequeue {row['strict_dequeue_usec']:.1f} us/call "
                  f"(x{row['fair_vs_strict']:.2f})")
        CPU_RESULTS.write_text(json.dumps({"redis_cpu_per_call": rows}, indent=2) + "\n")
        print(f"wrote {CPU_RESULTS.relative_to(ROOT)}")
        return 0
    results: dict[str, dict[str, Any]] = {}
    for policy in (p.strip() for p in args.policies.split(",") if p.strip()):
        if policy not in POLICIES:
            parser.error(f"unknown policy {policy!r}: expected {', '.join(POLICIES)}")
        print(f"running {policy} ...", flush=True)
        results[policy] = run_policy(policy, args, logdir)
        r = results[policy]
        print(f"  {policy}: max_share_deviation {r['max_share_deviation']}, late first start "
              f"{'>=' if r['_first_start_censored'] else ''}{r['late_tenant_first_start_s']} s, p95 wait "
              f"{r['late_tenant_p95_wait_s']} s, jain {r['jain_index']}, jobs {r['_jobs_run']}", flush=True)
        print(f"  windows: {r['_windows']}", flush=True)
    public = {name: {k: v for k, v in r.items() if not k.startswith("_")} for name, r in results.items()}
    RESULTS.write_text(json.dumps({"policies": public}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    ours = public.get("jobfleet")
    for base in ("rq-default", "rq-round-robin"):
        if ours and base in public:
            theirs = public[base]
            ratio = {k: (round(ours[k] / theirs[k], 3) if theirs[k] else float("inf")) for k in ours}
            print(f"jobfleet / {base}: {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
