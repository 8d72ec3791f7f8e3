"""Workflow benchmark: submission, scheduling delay and end-to-end time, beside RQ's own mechanisms.

In one run, against a fresh embedded Redis (AOF on, as deployed):

- submission of a 10,000-child array (``submit_workflow``) beside RQ ``enqueue_many`` of 10,000 jobs
  (the anchor), and of a 1,000-node random DAG beside RQ's own ``depends_on`` for the same DAG (one
  ``enqueue`` per job in dependency order, RQ's documented way);
- scheduling delay of the DAG: for every job with dependencies, its ``enqueued_at`` minus the time its
  last dependency's function returned (read from that job's result), p50/p99, for both;
- end-to-end time (submission to last job done) of both workloads, each side run by the same plain RQ
  ``SimpleWorker`` processes (so the comparison is the dependency mechanism, not the worker).

Medians of ``--repeat`` submissions; ratios are ours / anchor (lower is better). Nothing is asserted.
Results: ``bench/results/workflows.json``. Run: ``make bench-workflows`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry
from rq.utils import utcparse

from bench.worker_throughput import spawn_contender
from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import load_settings
from jobfleet.workflows import Workflow, array, get_workflow, submit_workflow, task

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "workflows.json"
STAMP = "bench.workflows.stamp"


def stamp(*args: Any) -> float:
    """The benchmark's job: return when it ended (epoch seconds)."""
    return time.time()


def random_dag(nodes: int, seed: int = 7, window: int = 50, max_parents: int = 3) -> list[list[int]]:
    """Parents of each node: up to ``max_parents`` among the ``window`` nodes before it (seeded)."""
    rng = random.Random(seed)
    dag: list[list[int]] = []
    for k in range(nodes):
        pool = list(range(max(0, k - window), k))
        dag.append(sorted(rng.sample(pool, min(len(pool), rng.randint(0, max_parents)))))
    return dag


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def submit_array_ours(client: Redis, size: int) -> str:
    wf = Workflow("bench-array", [array("x", STAMP, size=size, retry=0)])
    return submit_workflow(wf, connection=client, settings=load_settings()).id


def submit_array_rq(client: Redis, size: int) -> list[str]:
    queue = Queue("default", connection=client)
    jobs = queue.enqueue_many([Queue.prepare_data(STAMP, args=(i,), result_ttl=3600) for i in range(size)])
    return [j.id for j in jobs]


def submit_dag_ours(client: Redis, dag: list[list[int]]) -> str:
    wf = Workflow("bench-dag", [task(f"n{k}", STAMP, retry=0, depends_on=[f"n{p}" for p in parents])
                                for k, parents in enumerate(dag)])
    return submit_workflow(wf, connection=client, settings=load_settings()).id


def submit_dag_rq(client: Redis, dag: list[list[int]]) -> list[str]:
    queue = Queue("default", connection=client)
    ids: list[str] = []
    for parents in dag:
        job = queue.enqueue(STAMP, depends_on=[ids[p] for p in parents] or None, result_ttl=3600)
        ids.append(job.id)
    return ids


def median_submit(server: EmbeddedRedis, fn: Callable[[Redis], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        client = Redis.from_url(server.url)
        client.flushall()
        elapsed, _ = _timed(lambda c=client: fn(c))  # type: ignore[misc]
        times.append(elapsed)
        client.close()
    return statistics.median(times)


def run_workers(url: str, count: int, done: Callable[[], bool], timeout: float) -> float:
    """Start ``count`` plain RQ SimpleWorker processes; seconds until ``done()`` (``inf`` if not within
    ``timeout``); then stop them."""
    procs = [spawn_contender(["-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker", "-n", f"bench-{k}",
                              "--logging_level", "WARNING", "default"], url) for k in range(count)]
    started = time.perf_counter()
    try:
        while not done():
            if time.perf_counter() - started > timeout:
                return float("inf")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ended(client: Redis, job_id: str) -> float:
    raw = client.hget(f"rq:job:{job_id}", "enqueued_at")
    return utcparse(raw.decode() if isinstance(raw, bytes) else str(raw)).timestamp() if raw else float("nan")


def delays(client: Redis, ids: list[str], dag: list[list[int]]) -> list[float]:
    """enqueued_at of each dependent minus the return time of its last dependency (seconds)."""
    results = {}
    for job_id in ids:
        value = Job.fetch(job_id, connection=client).return_value()
        results[job_id] = float(value) if isinstance(value, int | float) else float("nan")
    out = []
    for k, parents in enumerate(dag):
        if parents:
            last = max(results[ids[p]] for p in parents)
            out.append(_ended(client, ids[k]) - last)
    return [d for d in out if d == d]


def end_to_end_array(server: EmbeddedRedis, size: int, workers: int) -> dict[str, float | None]:
    client = Redis.from_url(server.url)
    client.flushall()
    submit_s, wid = _timed(lambda: submit_array_ours(client, size))
    ours = submit_s + run_workers(server.url, workers, lambda: get_workflow(wid, connection=client)["status"]
                                  == "succeeded", 3600)
    client.flushall()
    submit_s, _ = _timed(lambda: submit_array_rq(client, size))
    registry = FinishedJobRegistry("default", connection=client)
    anchor = submit_s + run_workers(server.url, workers, lambda: registry.count >= size, max(120.0, 3 * ours))
    client.close()
    return {"ours_s": round(ours, 3), "rq_enqueue_many_s": _num(anchor), "ratio": _num(ours / anchor)}


def _num(value: float) -> float | None:
    return round(value, 3) if value not in (float("inf"), 0.0) else None


def end_to_end_dag(server: EmbeddedRedis, dag: list[list[int]], workers: int) -> dict[str, Any]:
    client = Redis.from_url(server.url)
    client.flushall()
    submit_s, wid = _timed(lambda: submit_dag_ours(client, dag))
    ours = submit_s + run_workers(server.url, workers, lambda: get_workflow(wid, connection=client)["status"]
                                  == "succeeded", 3600)
    ours_delays = delays(client, [f"{wid}-{k}-0" for k in range(len(dag))], dag)
    client.flushall()
    submit_s, ids = _timed(lambda: submit_dag_rq(client, dag))
    registry = FinishedJobRegistry("default", connection=client)
    anchor = submit_s + run_workers(server.url, workers, lambda: registry.count >= len(dag), max(60.0, 3 * ours))
    rq_finished = registry.count
    rq_delays = delays(client, ids, dag)
    client.close()

    def summary(values: list[float]) -> dict[str, float | None]:
        return {"p50_ms": None if not values else round(1000 * (_pct(values, 0.5) or 0), 2),
                "p99_ms": None if not values else round(1000 * (_pct(values, 0.99) or 0), 2), "n": len(values)}

    return {"ours_s": round(ours, 3), "rq_depends_on_s": _num(anchor), "ratio": _num(ours / anchor),
            "rq_depends_on_finished": rq_finished, "rq_depends_on_completed": rq_finished >= len(dag),
            "scheduling_delay": {"ours": summary(ours_delays), "rq_depends_on": summary(rq_delays)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.workflows", description=__doc__.split("\n")[0])
    parser.add_argument("--array", type=int, default=10_000, help="array size (submission and end-to-end)")
    parser.add_argument("--dag", type=int, default=1_000, help="random DAG nodes")
    parser.add_argument("--repeat", type=int, default=3, help="submissions per contender (median)")
    parser.add_argument("--workers", type=int, default=2, help="SimpleWorker processes for end-to-end runs")
    parser.add_argument("--quick", action="store_true", help="smoke run: array 1000, DAG 200, repeat 1")
    parser.add_argument("--no-e2e", action="store_true", help="submission figures only")
    args = parser.parse_args(argv)
    if args.quick:
        args.array, args.dag, args.repeat = 1000, 200, 1
    dag = random_dag(args.dag)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        os.environ["REDIS_URL"] = server.url
        try:
            sub_array = median_submit(server, lambda c: submit_array_ours(c, args.array), args.repeat)
            sub_array_rq = median_submit(server, lambda c: submit_array_rq(c, args.array), args.repeat)
            sub_dag = median_submit(server, lambda c: submit_dag_ours(c, dag), args.repeat)
            sub_dag_rq = median_submit(server, lambda c: submit_dag_rq(c, dag), args.repeat)
            result: dict[str, Any] = {
                "array_size": args.array, "dag_nodes": args.dag, "dag_edges": sum(len(p) for p in dag),
                "workers": args.workers, "worker_class": "rq.worker.SimpleWorker (both sides)",
                "submission": {
                    "array": {"ours_s": round(sub_array, 4), "rq_enqueue_many_s": round(sub_array_rq, 4),
                              "ratio": round(sub_array / sub_array_rq, 3), "goal_s": 1.0},
                    "dag": {"ours_s": round(sub_dag, 4), "rq_depends_on_s": round(sub_dag_rq, 4),
                            "ratio": round(sub_dag / sub_dag_rq, 3)},
                },
            }
            print(f"submit {args.array}-child array: ours {sub_array:.3f} s vs RQ enqueue_many {sub_array_rq:.3f} s "
                  f"(ratio {sub_array / sub_array_rq:.2f}; goal < 1 s)")
            print(f"submit {args.dag}-node DAG:      ours {sub_dag:.3f} s vs RQ depends_on {sub_dag_rq:.3f} s "
                  f"(ratio {sub_dag / sub_dag_rq:.2f})")
            if not args.no_e2e:
                result["end_to_end"] = {"dag": end_to_end_dag(server, dag, args.workers),
                                        "array": end_to_end_array(server, args.array, args.workers)}
                e2e = result["end_to_end"]
                delay = e2e["dag"]["scheduling_delay"]
                d = e2e["dag"]
                print(f"DAG end-to-end:   ours {d['ours_s']} s vs RQ depends_on {d['rq_depends_on_s']} s "
                      f"(ratio {d['ratio']}; RQ finished {d['rq_depends_on_finished']}/{args.dag} jobs)")
                ours_d, rq_d = delay["ours"], delay["rq_depends_on"]
                print(f"scheduling delay: ours p50 {ours_d['p50_ms']} ms p99 {ours_d['p99_ms']} ms; "
                      f"RQ depends_on p50 {rq_d['p50_ms']} ms p99 {rq_d['p99_ms']} ms")
                print(f"array end-to-end: ours {e2e['array']['ours_s']} s vs RQ enqueue_many "
                      f"{e2e['array']['rq_enqueue_many_s']} s (ratio {e2e['array']['ratio']})")
        finally:
            server.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
