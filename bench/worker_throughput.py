"""Worker throughput, one process per contender, one Redis, one run: jobfleet pool and fork against RQ's
``Worker`` (the anchor) and ``SimpleWorker``, Celery (solo pool), Dramatiq (1 process, 8 threads) and arq.

Each contender drains a batch of no-op jobs enqueued beforehand on a fresh (flushed) embedded Redis (AOF on,
``appendfsync everysec``). The figures cover the steady part of the drain (from the first finished job to the
last), so interpreter start-up is not charged per job:

* ``jobs_per_s``; ``cpu_ms_per_job``: CPU of the worker's whole process tree (executor, work horses, the
  scheduler);
* ``redis_commands_per_job`` (``INFO stats``; commands run inside Lua scripts count one each);
  ``redis_usec_per_job``: the ``INFO commandstats`` time of the commands Redis executed (script invocations
  themselves excluded, so nothing is counted twice; the Lua interpreter's own time is not in it);
  ``redis_server_cpu_usec_per_job``: the Redis process's CPU (``INFO cpu``: parsing, networking, Lua, AOF);
  ``single_primary_ceiling_jobs_per_s`` = 1e6 / that CPU: what one single-threaded primary could serve.

Celery, Dramatiq and arq jobs do one ``INCR`` so completions can be counted (RQ-based contenders are counted
from the FinishedJobRegistry); that command is subtracted from their commands per job. arq pins redis < 6,
so it runs from its own venv (``.venv-arq``, see ``bench/requirements-arq.txt``); with it comes hiredis.
A second table compares ``async def`` jobs sleeping 0.1 s at concurrency 50 (jobfleet pool, arq).

Nothing is asserted; ratios to the anchor and the issue's goals are printed and written to
``bench/results/worker_throughput.json``. Run: ``make bench-worker`` (or
``python -m bench.worker_throughput --jobs 400 --fast-jobs 10000 --repeat 1``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from redis import Redis
from rq import Queue

from jobfleet.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "worker_throughput.json"
ARQ_PYTHON = ROOT / ".venv-arq" / "bin" / "python"
ANCHOR = "rq Worker (anchor)"
SCRIPT_COMMANDS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}


@dataclass(frozen=True)
class Contender:
    """How to enqueue for, start and count one worker implementation."""

    name: str
    args: list[str]
    system: str  # rq | celery | dramatiq | arq
    fast: bool  # drains --fast-jobs (else --jobs)
    env: dict[str, str] = field(default_factory=dict)
    job: str = "noop"  # noop | nap (async sleep 0.1 s)
    python: str = sys.executable


CONTENDERS = [
    Contender(ANCHOR, ["-m", "rq.cli", "worker", "--burst", "-w", "rq.Worker", "bench"], "rq", False),
    Contender("rq SimpleWorker", ["-m", "rq.cli", "worker", "--burst", "-w", "rq.SimpleWorker", "bench"], "rq",
              False),
    Contender("jobfleet fork", ["-m", "worker", "--burst", "--queues", "bench"], "rq", False,
              {"JOBFLEET_EXECUTION": "fork"}),
    Contender("jobfleet pool", ["-m", "worker", "--burst", "--queues", "bench"], "rq", True,
              {"JOBFLEET_EXECUTION": "pool"}),
    Contender("celery solo", ["-m", "celery", "-A", "bench.contenders.celery_app", "worker", "--pool=solo",
                              "-Q", "bench", "--without-gossip", "--without-mingle", "--without-heartbeat",
                              "-l", "warning"], "celery", True),
    Contender("dramatiq (8 threads)", ["-m", "dramatiq", "bench.contenders.dramatiq_jobs", "--processes", "1",
                                       "--threads", "8", "-Q", "bench"], "dramatiq", True),
    Contender("arq", ["-m", "arq", "bench.contenders.arq_jobs.WorkerSettings", "--burst"], "arq", True,
              python=str(ARQ_PYTHON)),
]
ASYNC_CONTENDERS = [
    Contender("jobfleet pool, async sleep(0.1) x50", ["-m", "worker", "--burst", "--queues", "bench"], "rq", True,
              {"JOBFLEET_EXECUTION": "pool", "JOBFLEET_ASYNC_CONCURRENCY": "50"}, job="nap"),
    Contender("arq, async sleep(0.1) x50", ["-m", "arq", "bench.contenders.arq_jobs.WorkerSettings", "--burst"],
              "arq", True, {"ARQ_MAX_JOBS": "50"}, job="nap", python=str(ARQ_PYTHON)),
]


@dataclass
class Run:
    """One contender draining one batch (steady window)."""

    jobs_per_s: float
    cpu_ms_per_job: float
    redis_commands_per_job: float
    redis_usec_per_job: float
    redis_server_cpu_usec_per_job: float
    single_primary_ceiling_jobs_per_s: float


def contender_env(redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a contender process."""
    return dict(os.environ, REDIS_URL=redis_url, RQ_REDIS_URL=redis_url, PYTHONPATH=str(ROOT),
                JOBFLEET_METRICS_PORT="0", JOBFLEET_LOG_LEVEL="warning", **(extra or {}))


def spawn_contender(args: list[str], redis_url: str, python: str = sys.executable, env: dict[str, str] | None = None,
                    stderr: Any = subprocess.PIPE, **popen: Any) -> subprocess.Popen[bytes]:
    """Start a contender (``-m rq.cli worker ...``, ``-m worker ...``, ...) on ``redis_url``, stderr piped."""
    url_args = ["--url", redis_url] if args[:2] == ["-m", "rq.cli"] else []
    return subprocess.Popen([python, *args[:3], *url_args, *args[3:]], cwd=ROOT, env=contender_env(redis_url, env),
                            stdout=subprocess.DEVNULL, stderr=stderr, **popen)


class Probe:
    """Redis-side counters, correcting for the probe's own commands."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.own = 0

    def snapshot(self) -> tuple[int, float, float]:
        """(commands processed, commandstats usec of executed commands, server CPU seconds)."""
        stats = self.client.info("stats")
        usec = sum(v["usec"] for k, v in self.client.info("commandstats").items()
                   if k.removeprefix("cmdstat_") not in SCRIPT_COMMANDS)
        cpu = self.client.info("cpu")
        self.own += 3
        return (int(stats["total_commands_processed"]) - self.own, float(usec),
                float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run one probe command."""
        self.own += 1
        return fn()


def _tree_cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                ct = child.cpu_times()
                total += ct.user + ct.system
        return total
    except psutil.Error:
        return 0.0


def enqueue(contender: Contender, redis_url: str, client: Redis, jobs: int) -> None:
    """Put ``jobs`` jobs of the contender's kind on its queue before it starts."""
    if contender.system == "rq":
        func, args = (("bench.contenders.rq_jobs.nap", (0.1,)) if contender.job == "nap"
                      else ("jobfleet.demo.jobs.noop", ()))
        queue = Queue("bench", connection=client)
        for start in range(0, jobs, 1000):
            queue.enqueue_many([Queue.prepare_data(func, args, result_ttl=600)
                                for _ in range(min(1000, jobs - start))])
    elif contender.system == "arq":
        extra = ["nap", "0.1"] if contender.job == "nap" else ["noop"]
        subprocess.run([contender.python, "-m", "bench.contenders.arq_jobs", "enqueue", str(jobs), *extra],
                       cwd=ROOT, env=contender_env(redis_url), check=True, timeout=300)
    else:
        os.environ["REDIS_URL"] = redis_url
        module = __import__(f"bench.contenders.{'celery_app' if contender.system == 'celery' else 'dramatiq_jobs'}",
                            fromlist=["enqueue"])
        module.enqueue(jobs)


def done_counter(contender: Contender, client: Redis) -> Callable[[], int]:
    """How many jobs have finished."""
    if contender.system == "rq":
        return lambda: int(client.zcard("rq:finished:bench"))
    return lambda: int(client.get("bench:done") or 0)


def measure(contender: Contender, redis_url: str, jobs: int, timeout: float = 600.0) -> Run:
    """Enqueue, start the contender, measure the steady window from the first to the last finished job."""
    client = Redis.from_url(redis_url)
    client.flushall()
    client.config_resetstat()
    enqueue(contender, redis_url, client, jobs)
    probe = Probe(client)
    counter = done_counter(contender, client)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - not a pipe: a chatty contender must not block on its log
    proc = spawn_contender(contender.args, redis_url, contender.python, contender.env, stderr=log,
                           start_new_session=True)
    ps = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    start: tuple[float, int, float, tuple[int, float, float]] | None = None
    try:
        while True:
            done = probe.call(counter)
            now = time.perf_counter()
            if start is None and done >= 1:
                start = (now, done, _tree_cpu(ps), probe.snapshot())
            if done >= jobs:
                cpu_end = _tree_cpu(ps)
                end = probe.snapshot()
                break
            if proc.poll() is not None and probe.call(counter) < jobs:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise RuntimeError(f"{contender.name} exited early ({proc.returncode}): {err[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{contender.name}: only {done}/{jobs} jobs in {timeout} s")
            time.sleep(0.02)
    finally:
        _stop(proc)
        log.close()
        client.close()
    assert start is not None
    t0, done0, cpu0, (cmd0, usec0, rcpu0) = start
    window_jobs = max(1, jobs - done0)
    elapsed = max(now - t0, 1e-6)
    cmd1, usec1, rcpu1 = end
    incr = 0 if contender.system == "rq" else 1
    server_us = 1e6 * (rcpu1 - rcpu0) / window_jobs
    return Run(
        jobs_per_s=window_jobs / elapsed,
        cpu_ms_per_job=1000 * (cpu_end - cpu0) / window_jobs,
        redis_commands_per_job=(cmd1 - cmd0) / window_jobs - incr,
        redis_usec_per_job=(usec1 - usec0) / window_jobs,
        redis_server_cpu_usec_per_job=server_us,
        single_primary_ceiling_jobs_per_s=1e6 / server_us if server_us > 0 else float("inf"),
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (dramatiq's worker processes)


def _median(runs: list[Run]) -> dict[str, float]:
    return {key: statistics.median(asdict(run)[key] for run in runs) for key in asdict(runs[0])}


def goals(results: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """The issue's goals for ``jobfleet pool`` against what was measured in this run."""
    pool = results.get("jobfleet pool")
    anchor = results.get(ANCHOR)
    if pool is None or anchor is None:
        return {}
    dramatiq = results.get("dramatiq (8 threads)", {}).get("jobs_per_s")
    checks: dict[str, tuple[float, float | None, bool]] = {
        "jobs_per_s >= 2000": (pool["jobs_per_s"], 2000.0, pool["jobs_per_s"] >= 2000),
        "x anchor >= 50": (pool["jobs_per_s"] / anchor["jobs_per_s"], 50.0,
                           pool["jobs_per_s"] / anchor["jobs_per_s"] >= 50),
        "ahead of dramatiq": (pool["jobs_per_s"], dramatiq, dramatiq is not None and pool["jobs_per_s"] > dramatiq),
        "redis commands/job <= 10": (pool["redis_commands_per_job"], 10.0, pool["redis_commands_per_job"] <= 10),
        "cpu ms/job <= 0.5": (pool["cpu_ms_per_job"], 0.5, pool["cpu_ms_per_job"] <= 0.5),
    }
    nap = results.get("jobfleet pool, async sleep(0.1) x50")
    if nap is not None:
        checks["async sleep(0.1) x50 >= 400/s"] = (nap["jobs_per_s"], 400.0, nap["jobs_per_s"] >= 400)
    return {name: {"measured": m, "goal": g, "met": ok} for name, (m, g, ok) in checks.items()}


def main(argv: list[str] | None = None) -> int:
    """Run every contender ``--repeat`` times; print the tables, ratios to the anchor and the goals."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400, help="jobs for the slow contenders (fork per job)")
    parser.add_argument("--fast-jobs", type=int, default=10000, help="jobs for the fast contenders")
    parser.add_argument("--async-jobs", type=int, default=3000, help="jobs of the async comparison")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="semicolon-separated contender names (default: all)")
    opts = parser.parse_args(argv)
    if min(opts.jobs, opts.fast_jobs, opts.async_jobs, opts.repeat) < 1:
        parser.error("--jobs, --fast-jobs, --async-jobs and --repeat must be >= 1")
    wanted = {n.strip() for n in opts.only.split(";") if n.strip()}
    contenders = [c for c in [*CONTENDERS, *ASYNC_CONTENDERS] if not wanted or c.name in wanted]
    skipped = []
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as server:
        for contender in contenders:
            if contender.system == "arq" and not ARQ_PYTHON.exists():
                skipped.append(f"{contender.name}: no {ARQ_PYTHON.relative_to(ROOT)} (make bench-worker makes it)")
                continue
            jobs = opts.async_jobs if contender.job == "nap" else opts.fast_jobs if contender.fast else opts.jobs
            runs = [measure(contender, server.url, jobs) for _ in range(opts.repeat)]
            results[contender.name] = {**_median(runs), "jobs": jobs}
            r = results[contender.name]
            print(f"  measured {contender.name}: {r['jobs_per_s']:.1f} jobs/s", flush=True)
    anchor = results.get(ANCHOR, {}).get("jobs_per_s")
    header = (f"{'contender':<38} {'jobs/s':>8} {'x anchor':>8} {'CPU ms/job':>10} {'cmds/job':>8} "
              f"{'Redis us/job':>12} {'server CPU us/job':>17} {'1-primary ceiling':>17}")
    print(header)
    for name, r in results.items():
        ratio = f"{r['jobs_per_s'] / anchor:8.1f}" if anchor else f"{'-':>8}"
        print(f"{name:<38} {r['jobs_per_s']:>8.1f} {ratio} {r['cpu_ms_per_job']:>10.3f} "
              f"{r['redis_commands_per_job']:>8.2f} {r['redis_usec_per_job']:>12.1f} "
              f"{r['redis_server_cpu_usec_per_job']:>17.1f} {r['single_primary_ceiling_jobs_per_s']:>17.0f}")
    checks = goals(results)
    for name, check in checks.items():
        print(f"goal {name}: measured {check['measured']:.2f} -> {'met' if check['met'] else 'NOT met'}")
    for line in skipped:
        print(f"skipped {line}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "jobs": opts.jobs, "fast_jobs": opts.fast_jobs, "async_jobs": opts.async_jobs, "repeat": opts.repeat,
        "cpus": os.cpu_count(), "load_average_1m_at_end": os.getloadavg()[0],
        "results": results, "goals": checks, "skipped": skipped,
    }, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
