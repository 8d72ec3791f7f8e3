"""Chaos run: jobs through ``submit()``, workers kill -9'd again and again, one Redis kill -9 + AOF restart.

    python -m bench.chaos [--jobs 1500] [--workers 4] [--duration 90] [--kill-every 2] [--job-seconds 0.3]

Prints and writes ``bench/results/chaos.json``: lost jobs (accepted but never finished), duplicated jobs
(ran to completion more than once), dead-lettered jobs, kill→restart times (from the kill -9 of a busy
worker to its job starting again elsewhere: min/median/max), false recoveries (a job taken from a worker
that was never killed) and the time to drain after the chaos ends. Defaults are those of a fresh
install; the harness only restarts each killed worker at once, as a supervisor or the ASG would.
``run_chaos`` is also called, with small numbers, by ``tests/robust/test_chaos.py`` in ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parents[1]
STARTS = "chaos:starts"
COMPLETIONS = "chaos:completions"


def chaos_job(key: str, seconds: float) -> str:
    """The job: record which worker started it (and when), sleep, record its completion."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    worker = os.environ.get("CHAOS_WORKER", "?")
    job.connection.rpush(STARTS, json.dumps({"key": key, "worker": worker, "t": time.time()}))
    time.sleep(seconds)
    job.connection.hincrby(COMPLETIONS, key, 1)
    return key


@dataclass
class ChaosResult:
    """Figures of one chaos run."""

    jobs: int
    workers: int
    kills: int
    lost: int
    duplicated: int
    dead_lettered: int
    false_recoveries: int
    restart_s: list[float] = field(default_factory=list)
    unmeasured_kills: int = 0
    redis_outage_s: float = 0.0
    drain_s: float = 0.0
    lost_keys: list[str] = field(default_factory=list)
    lost_detail: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The figures, with min/median/max of the kill→restart times."""
        out = asdict(self)
        times = sorted(self.restart_s)
        out["restart_s"] = [round(t, 2) for t in times]
        out["restart_min_s"] = round(times[0], 2) if times else None
        out["restart_median_s"] = round(statistics.median(times), 2) if times else None
        out["restart_max_s"] = round(times[-1], 2) if times else None
        return out


def _env(redis_url: str, data: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBFLEET_", "REDIS_", "OTEL_"))}
    env.update({"REDIS_URL": redis_url, "JOBFLEET_DATA_DIR": str(data), "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1", "JOBFLEET_METRICS_PORT": "0", "JOBFLEET_INSTANCE_ID": "chaos",
                "REDIS_RETRIES": "30"})
    env.update(extra)
    return env


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(proc.pid)
        for p in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


class _Fleet:
    """Worker processes named w1, w2, ...; a killed worker is replaced at once by a new name."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.count = 0

    def spawn(self) -> str:
        self.count += 1
        name = f"w{self.count}"
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "worker", "--name", name], cwd=ROOT, env={**self.env, "CHAOS_WORKER": name},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return name

    def kill(self, name: str) -> None:
        _kill_tree(self.procs.pop(name))
        self.spawn()

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                _kill_tree(proc)


def _starts(client: Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(STARTS, 0, -1)]


def _running_on(starts: list[dict[str, Any]], completions: dict[str, int], worker: str) -> str | None:
    """The job ``worker`` is running now: its latest start, when that job has not completed since."""
    mine = [s for s in starts if s["worker"] == worker]
    if not mine:
        return None
    key = str(mine[-1]["key"])
    later = [s for s in starts if s["key"] == key and s["t"] > mine[-1]["t"]]
    return None if later or completions.get(key, 0) else key


def run_chaos(
    jobs: int = 1500, workers: int = 4, duration: float = 90.0, kill_every: float = 2.0, job_seconds: float = 0.3,
    redis_kill_at: float | None = None, redis_down_s: float = 1.0, drain_timeout: float = 180.0,
    seed: int = 10, out: Any = sys.stdout, extra_env: dict[str, str] | None = None, keep: Path | None = None,
) -> ChaosResult:
    """Run one chaos experiment in a temporary directory (``keep``: copy its logs there) and return its figures."""
    from jobfleet.embedded_redis import EmbeddedRedis
    from jobfleet.settings import load_settings
    from jobfleet.submit import submit

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="jobfleet-chaos-") as tmp:
        base = Path(tmp)
        logs = base / "logs"
        logs.mkdir()
        redis_server = EmbeddedRedis(base / "redis").start()
        env = _env(redis_server.url, base / "data", extra_env or {})
        settings = load_settings(env)
        client = Redis.from_url(redis_server.url, socket_timeout=5)
        fleet = _Fleet(env, logs)
        kills: list[tuple[str, str | None, float]] = []
        outage = 0.0
        try:
            keys = [f"j{i}" for i in range(jobs)]
            ids = {key: submit("bench.chaos.chaos_job", key, job_seconds, connection=client, settings=settings).id
                   for key in keys}
            time.sleep(1.2)  # appendfsync everysec: every accepted job is on disk before Redis is killed
            for _ in range(workers):
                fleet.spawn()
            began = time.monotonic()
            redis_at = began + (redis_kill_at if redis_kill_at is not None else duration / 2)
            redis_done = False
            next_kill = began + kill_every
            while time.monotonic() - began < duration:
                now = time.monotonic()
                if not redis_done and now >= redis_at:
                    t0 = time.monotonic()
                    redis_server.kill()
                    time.sleep(redis_down_s / 2)
                    victim = rng.choice(sorted(fleet.procs))  # a kill while Redis is away
                    kills.append((victim, None, time.time()))
                    fleet.kill(victim)
                    time.sleep(redis_down_s / 2)
                    redis_server.start()
                    outage = time.monotonic() - t0
                    client = Redis.from_url(redis_server.url, socket_timeout=5)
                    redis_done = True
                    print(f"chaos: redis kill -9 and AOF restart ({outage:.1f} s)", file=out, flush=True)
                    continue
                if now >= next_kill:
                    next_kill = now + kill_every
                    try:
                        starts, completions = _starts(client), _completions(client)
                    except RedisError:
                        continue
                    busy = [(n, k) for n in sorted(fleet.procs) if (k := _running_on(starts, completions, n))]
                    if busy:
                        victim, key = rng.choice(busy)
                        kills.append((victim, key, time.time()))
                        fleet.kill(victim)
                time.sleep(0.05)
            chaos_end = time.monotonic()
            drained = _wait_drained(client, settings.queues, jobs, drain_timeout)
            drain_s = time.monotonic() - chaos_end if drained else float("nan")
            result = _result(client, keys, workers, kills, outage, drain_s, logs, settings.queues)
            result.lost_detail = [_whereabouts(client, ids[k]) for k in result.lost_keys]
            return result
        finally:
            fleet.stop()
            client.close()
            redis_server.stop()
            if keep is not None:
                shutil.copytree(logs, keep, dirs_exist_ok=True)


def _whereabouts(client: Redis, job_id: str) -> dict[str, Any]:
    """Where a lost job is: its status, and every queue, intermediate list and registry that holds it."""
    where = {"id": job_id, "status": _text(client.hget(f"rq:job:{job_id}", "status") or b"<no hash>")}
    for key in client.scan_iter("rq:*"):
        name = _text(key)
        kind = _text(client.type(key))
        if kind == "list" and job_id in [_text(m) for m in client.lrange(key, 0, -1)]:
            where[name] = "list"
        elif kind == "zset" and any(_text(m).startswith(job_id) for m in client.zrange(key, 0, -1)):
            where[name] = "zset"
    return where


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _completions(client: Redis) -> dict[str, int]:
    return {_text(k): int(v) for k, v in client.hgetall(COMPLETIONS).items()}


def _wait_drained(client: Redis, queues: tuple[str, ...], jobs: int, timeout: float) -> bool:
    from rq import Queue

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done = client.hlen(COMPLETIONS)
            failed = sum(Queue(q, connection=client).failed_job_registry.count for q in queues)
            if done + failed >= jobs:
                return True
        except RedisError:
            pass
        time.sleep(0.25)
    return False


def _result(client: Redis, keys: list[str], workers: int, kills: list[tuple[str, str | None, float]],
            outage: float, drain_s: float, logs: Path, queues: tuple[str, ...]) -> ChaosResult:
    from rq import Queue

    starts, completions = _starts(client), _completions(client)
    restart: list[float] = []
    unmeasured = 0
    for victim, key, at in kills:
        if key is None:  # the kill during the Redis outage: whatever that worker was running
            running = [s for s in starts if s["worker"] == victim and s["t"] < at]
            key = str(running[-1]["key"]) if running else None
            if key is None or any(s["key"] == key and s["t"] < at and s["worker"] != victim for s in starts):
                unmeasured += 1
                continue
        again = [s["t"] for s in starts if s["key"] == key and s["t"] > at]
        if again:
            restart.append(min(again) - at)
        else:
            unmeasured += 1  # it had completed (or its completion was lost with Redis) just before the kill
    killed = {victim for victim, _, _ in kills}
    false_recoveries = 0
    for log in logs.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"job_recovered"' not in line:
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("worker") and event["worker"] not in killed:
                    false_recoveries += 1
    dead = sum(Queue(q, connection=client).failed_job_registry.count for q in queues)
    lost_keys = [k for k in keys if not completions.get(k)]
    return ChaosResult(
        jobs=len(keys), workers=workers, kills=len(kills), lost=max(0, len(lost_keys) - dead),
        duplicated=sum(1 for k in keys if completions.get(k, 0) > 1), dead_lettered=dead,
        false_recoveries=false_recoveries, restart_s=restart, unmeasured_kills=unmeasured,
        redis_outage_s=round(outage, 2), drain_s=round(drain_s, 2), lost_keys=lost_keys[:20],
    )


def main(argv: list[str] | None = None) -> int:
    """Run the long chaos experiment and write bench/results/chaos.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--job-seconds", type=float, default=0.3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    args = parser.parse_args(argv)
    result = run_chaos(args.jobs, args.workers, args.duration, args.kill_every, args.job_seconds)
    summary = result.summary()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"params": vars(args) | {"out": str(args.out)}, **summary}, indent=2) + "\n")
    print(f"chaos: {summary['jobs']} jobs, {summary['workers']} workers, {summary['kills']} kill -9, "
          f"redis outage {summary['redis_outage_s']} s")
    print(f"  lost {summary['lost']}  duplicated {summary['duplicated']}  dead-lettered {summary['dead_lettered']}  "
          f"false recoveries {summary['false_recoveries']}")
    print(f"  kill->restart min/median/max {summary['restart_min_s']}/{summary['restart_median_s']}/"
          f"{summary['restart_max_s']} s over {len(result.restart_s)} kills ({result.unmeasured_kills} unmeasured)")
    print(f"  time to drain after the chaos {summary['drain_s']} s")
    print(f"  written to {args.out}")
    return 0 if summary["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
