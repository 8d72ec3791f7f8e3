"""Submission speed: jobfleet's ``submit``/``submit_many`` against RQ's ``enqueue``/``enqueue_many``, same run.

Every contender writes the same no-op jobs to a fresh queue of one embedded Redis (AOF on, ``appendfsync
everysec``), alternating contenders round by round so drift hits all alike. One by one: ``--single`` jobs
through RQ ``Queue.enqueue`` (the anchor), ``submit()`` and ``submit(idempotency_key=...)``. In bulk:
``--bulk`` jobs through RQ ``enqueue_many`` (the anchor), ``submit_many`` and ``submit_many`` with a key per
job. We report jobs/s (median of ``--repeat`` rounds), Redis commands per job and the ratio to the anchor.
Nothing is asserted: figures are printed and written to ``bench/results/submit.json``.

Run: ``make bench-submit`` (or ``python -m bench.submit --single 2000 --bulk 10000 --repeat 5``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import load_settings
from jobfleet.submit import submit, submit_many

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "submit.json"
FUNC = "jobfleet.demo.jobs.noop"


def _commands(client: Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def _measure(client: Redis, n: int, body: Callable[[], None]) -> tuple[float, float]:
    """Run ``body`` (which writes ``n`` jobs); jobs/s and Redis commands per job."""
    client.flushall()
    before = _commands(client)
    start = time.perf_counter()
    body()
    elapsed = time.perf_counter() - start
    commands = _commands(client) - before - 1  # the INFO itself
    queued = Queue("default", connection=client).count
    if queued != n:
        raise RuntimeError(f"expected {n} queued jobs, found {queued}")
    return n / elapsed, commands / n


def contenders(client: Redis, url: str, single: int, bulk: int) -> dict[str, tuple[int, Callable[[], None]]]:
    """Name -> (jobs written, function that writes them)."""
    settings = load_settings({"REDIS_URL": url})
    rq_queue = Queue("default", connection=client)

    def rq_enqueue() -> None:
        for _ in range(single):
            rq_queue.enqueue(FUNC)

    def jf_submit() -> None:
        for _ in range(single):
            submit(FUNC, connection=client, settings=settings)

    def jf_submit_key() -> None:
        run = uuid.uuid4().hex
        for i in range(single):
            submit(FUNC, idempotency_key=f"{run}-{i}", connection=client, settings=settings)

    def rq_enqueue_many() -> None:
        rq_queue.enqueue_many([Queue.prepare_data(FUNC) for _ in range(bulk)])

    def jf_submit_many() -> None:
        submit_many([{"func": FUNC} for _ in range(bulk)], connection=client, settings=settings)

    def jf_submit_many_keys() -> None:
        run = uuid.uuid4().hex
        submit_many([{"func": FUNC, "idempotency_key": f"{run}-{i}"} for i in range(bulk)],
                    connection=client, settings=settings)

    return {
        "rq Queue.enqueue (anchor)": (single, rq_enqueue),
        "jobfleet submit": (single, jf_submit),
        "jobfleet submit idempotency_key": (single, jf_submit_key),
        "rq enqueue_many (anchor)": (bulk, rq_enqueue_many),
        "jobfleet submit_many": (bulk, jf_submit_many),
        "jobfleet submit_many idempotency_key": (bulk, jf_submit_many_keys),
    }


ANCHOR_OF = {
    "jobfleet submit": "rq Queue.enqueue (anchor)",
    "jobfleet submit idempotency_key": "rq Queue.enqueue (anchor)",
    "jobfleet submit_many": "rq enqueue_many (anchor)",
    "jobfleet submit_many idempotency_key": "rq enqueue_many (anchor)",
}


def main(argv: list[str] | None = None) -> int:
    """Measure every contender and write the JSON results."""
    parser = argparse.ArgumentParser(prog="python -m bench.submit", description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2000, help="jobs per one-by-one round")
    parser.add_argument("--bulk", type=int, default=10000, help="jobs per bulk call")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            client = Redis.from_url(server.url)
            table = contenders(client, server.url, args.single, args.bulk)
            for _name, (n, body) in table.items():  # warm up: imports, script load, connection
                _measure(client, n, body)
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in table}
            for _ in range(args.repeat):
                for name, (n, body) in table.items():
                    samples[name].append(_measure(client, n, body))
            client.close()
        finally:
            server.stop()
    results: dict[str, Any] = {}
    for name, runs in samples.items():
        results[name] = {
            "jobs": table[name][0],
            "jobs_per_s": round(statistics.median(r[0] for r in runs), 1),
            "redis_commands_per_job": round(statistics.median(r[1] for r in runs), 2),
        }
    for name, anchor in ANCHOR_OF.items():
        results[name]["ratio_to_anchor"] = round(results[name]["jobs_per_s"] / results[anchor]["jobs_per_s"], 2)
    doc = {
        "bench": "submit",
        "single_jobs": args.single,
        "bulk_jobs": args.bulk,
        "repeat": args.repeat,
        "python": sys.version.split()[0],
        "results": results,
        "goals": {
            "submit >= 1.0x rq Queue.enqueue": results["jobfleet submit"]["ratio_to_anchor"] >= 1.0,
            "submit_many >= 20000 jobs/s": results["jobfleet submit_many"]["jobs_per_s"] >= 20000,
            "submit_many with keys >= 20000 jobs/s":
                results["jobfleet submit_many idempotency_key"]["jobs_per_s"] >= 20000,
        },
    }
    print(f"{'contender':40} {'jobs':>6} {'jobs/s':>10} {'cmds/job':>9} {'vs anchor':>9}")
    for name, row in results.items():
        ratio = f"{row['ratio_to_anchor']:.2f}x" if "ratio_to_anchor" in row else "anchor"
        print(f"{name:40} {row['jobs']:>6} {row['jobs_per_s']:>10.1f} {row['redis_commands_per_job']:>9.2f} "
              f"{ratio:>9}")
    for goal, met in doc["goals"].items():
        print(f"{'PASS' if met else 'FAIL'}  {goal}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
