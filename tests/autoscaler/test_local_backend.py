"""Local backend end to end: real Redis, real `python -m autoscaler --backend local` and real worker processes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from tests.conftest import spawn
from tests.conftest import test_env as child_env

DECISIONS = "jobfleet:autoscaler:decisions"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("autoscaler-local")]


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def _decisions(redis: Redis) -> list[dict[str, Any]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in redis.xrange(DECISIONS)]


def _worker_pids(redis: Redis) -> set[int]:
    from jobfleet.worker_registry import worker_instances

    return {w.pid for w in worker_instances(redis) if w.pid}


def test_burst_scales_out_drains_and_shrinks_without_interrupting_a_job(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    env = child_env(
        redis_url, tmp_path, JOBFLEET_QUEUES="default", JOBFLEET_AUTOSCALER_INTERVAL="2", JOBFLEET_BOOT_TIME="2",
        JOBFLEET_IDLE_HOLD="2", JOBFLEET_TARGET_WAIT="2", JOBFLEET_MIN_INSTANCES="0", JOBFLEET_MAX_INSTANCES="4",
        JOBFLEET_RECOVERY_INTERVAL="5",
    )
    queue = Queue("default", connection=redis)
    jobs = [queue.enqueue("jobfleet.demo.jobs.sleep", 1.5, job_timeout=60) for _ in range(12)]
    proc = spawn(["-m", "autoscaler", "--backend", "local"], env, tmp_path / "autoscaler.log")
    try:
        # Scale out straight to the target: more than one instance in one decision, capped at max.
        first_out = _wait("a scale-out decision", lambda: [d for d in _decisions(redis) if d["code"] == "scale_out"],
                          timeout=20)[0]
        assert 2 <= int(first_out["desired"]) <= 4, first_out
        _wait("several workers registered", lambda: len(_worker_pids(redis)) >= 2, timeout=20)
        _wait("backlog drained", lambda: all(Job.fetch(j.id, connection=redis).is_finished for j in jobs),
              timeout=40)
        _wait("fleet shrinks to 0", lambda: not _worker_pids(redis) and _decisions(redis)[-1]["desired"] == "0",
              timeout=30)
        scale_ins = [d for d in _decisions(redis) if d["code"] == "scale_in"]
        assert scale_ins and all(json.loads(d["drained"]) for d in scale_ins)
        # No job interrupted: every job finished exactly once, none failed or re-queued.
        assert all(Job.fetch(j.id, connection=redis).get_status() == "finished" for j in jobs)
        assert queue.failed_job_registry.count == 0
        logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "data" / "logs").glob("worker-*.log"))
        stops = [json.loads(line) for line in logs.splitlines() if '"shutdown_requested"' in line]
        assert stops and not [s for s in stops if s.get("busy")], "scale-in signalled a busy worker"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp_path / "autoscaler.log").read_text()[-3000:]


def test_sigterm_warm_stops_workers_and_keeps_running_job(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    env = child_env(
        redis_url, tmp_path, JOBFLEET_QUEUES="default", JOBFLEET_AUTOSCALER_INTERVAL="2", JOBFLEET_BOOT_TIME="2",
        JOBFLEET_IDLE_HOLD="30", JOBFLEET_MAX_INSTANCES="2",
    )
    job = Queue("default", connection=redis).enqueue("jobfleet.demo.jobs.sleep", 4, job_timeout=60)
    proc = spawn(["-m", "autoscaler", "--backend", "local"], env, tmp_path / "autoscaler.log")
    pids: set[int] = set()
    try:
        _wait("job started", lambda: Job.fetch(job.id, connection=redis).get_status() == "started", timeout=20)
        pids = _worker_pids(redis)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert proc.returncode == 0
        assert Job.fetch(job.id, connection=redis).get_status() == "finished"
        for pid in pids:  # no orphan worker processes
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
