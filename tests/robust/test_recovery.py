"""Recovery within seconds and never a false one: per-worker deadlines, plain RQ workers, Redis outages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import JobStatus

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.conftest import ROOT
from tests.worker.helpers import running, start_worker, wait_for, worker_env
from worker.recovery import (
    CONTACT_KEY,
    HEARTBEAT_FIELD,
    RQ_MARGIN_S,
    WorkerView,
    abandon_reason,
    heartbeat_deadline,
    sweep_abandoned,
)

MEMBER = "job1:exec1"
EXECUTION = {b"worker_name": b"w", b"last_heartbeat": b"1000"}


def _view(heartbeat: float | None = 1000.0, period: float | None = 2.0, death: bool = False,
          listed: bool = True) -> WorkerView:
    return WorkerView(heartbeat, death, period, frozenset({MEMBER} if listed else set()))


def test_deadlines_are_per_worker_and_never_count_time_redis_was_away() -> None:
    deadline = heartbeat_deadline(2.0)
    assert heartbeat_deadline(1.0) == 4.5 and deadline == 7.5
    old = 0.0  # Redis has been up for ages
    # a jobfleet worker: dead once silent for longer than its published period allows
    assert abandon_reason(MEMBER, EXECUTION, _view(), 1000 + deadline - 0.1, old) is None
    assert abandon_reason(MEMBER, EXECUTION, _view(), 1000 + deadline + 0.1, old) == "worker heartbeat expired"
    assert abandon_reason(MEMBER, EXECUTION, _view(period=20), 1000 + deadline + 0.1, old) is None
    # ... but not when Redis only came back recently: ages count from there
    assert abandon_reason(MEMBER, EXECUTION, _view(), 1000 + deadline + 5, 1000 + 5) is None
    assert abandon_reason(MEMBER, EXECUTION, _view(), 1000 + 100, 1000 + 5) == "worker heartbeat expired"
    # a plain RQ worker (no published period): its heartbeat age never counts, however old
    assert abandon_reason(MEMBER, EXECUTION, _view(period=None), 1000 + 3600, old) is None
    # ... only RQ's own expiry does, and only once Redis has been up for RQ's margin
    assert abandon_reason(MEMBER, EXECUTION, None, 1000 + 3600, old) == "worker gone"
    assert abandon_reason(MEMBER, EXECUTION, None, 5000, 5000 - RQ_MARGIN_S + 1) is None
    assert abandon_reason(MEMBER, {}, _view(period=None), 5000, old) == "execution record expired"
    assert abandon_reason(MEMBER, {}, _view(period=None), 5000, 4990) is None
    # a registered death is proof, whatever the timing
    assert abandon_reason(MEMBER, EXECUTION, _view(death=True), 1001, 1001) == "worker registered its death"


def _plain_rq_worker(redis_url: str, tmp_path: Path, queue: str, interval: int) -> list[str]:
    return [str(Path(sys.executable).parent / "rq"), "worker", "--url", redis_url, "--name", "plain",
            "--job-monitoring-interval", str(interval), "--worker-ttl", "420", queue]


def _sweep_cli(env: dict[str, str], queue: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", "sweep", "--queues", queue], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _plain_worker_case(redis_url: str, redis: Redis, tmp_path: Path, job_s: float, sweep_at: float,
                       interval: int, ttl: str) -> None:
    env = worker_env(redis_url, tmp_path, JOBFLEET_WORKER_TTL=ttl, JOBFLEET_QUEUES="high,default,low,slow")
    settings = load_settings(env)
    job = submit("tests.worker.jobs.mark_and_sleep", "plain", job_s, queue="slow", timeout=int(job_s) + 60,
                 connection=redis, settings=settings)
    handle = (tmp_path / "plain.log").open("ab")
    plain = subprocess.Popen(_plain_rq_worker(redis_url, tmp_path, "slow", interval), cwd=ROOT, env=env,
                             stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: int(redis.get("plain") or 0) == 1, 30, what="plain worker starts the job")
        started = time.monotonic()
        assert redis.hget("rq:worker:plain", HEARTBEAT_FIELD) is None  # plain RQ: publishes no period
        time.sleep(max(0.0, sweep_at - (time.monotonic() - started)))
        result = _sweep_cli(env, "slow")
        assert result.returncode == 0, result.stderr
        assert '"recovered": 0' in result.stdout + result.stderr, result.stdout + result.stderr
        assert sweep_abandoned(redis, ["slow"], settings) == []
        assert Queue("slow", connection=redis).job_ids == []
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, job_s + 30, what="job finishes")
        assert int(redis.get("plain") or 0) == 1  # it ran exactly once
    finally:
        plain.send_signal(signal.SIGTERM)
        try:
            plain.wait(20)
        except subprocess.TimeoutExpired:
            plain.kill()
        handle.close()


def test_a_plain_rq_worker_is_not_robbed_of_its_job(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    """The issue's reproduction, shortened: the plain worker's busy beats (every 60 s) are older than
    ``JOBFLEET_WORKER_TTL`` (10 s) when the sweep runs at 12 s; the old sweep re-queued the job."""
    _plain_worker_case(redis_url, redis, tmp_path, job_s=14, sweep_at=12, interval=60, ttl="10")


@pytest.mark.chaos
def test_the_issues_plain_rq_worker_reproduction(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    """`rq worker --job-monitoring-interval 60 slow`, a 40 s job, `python -m worker sweep --queues slow` at 35 s."""
    _plain_worker_case(redis_url, redis, tmp_path, job_s=40, sweep_at=35, interval=60, ttl="30")


@pytest.mark.chaos  # the chaos test in `make test` covers a restart too
def test_no_false_recovery_across_a_redis_restart(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    """A busy worker cannot beat while Redis is down; after a restart longer than its deadline, neither its
    fellow worker nor a sweep may take the job away from it."""
    env = worker_env(own_redis.url, tmp_path, REDIS_RETRIES="30")
    settings = load_settings(env)
    redis = Redis.from_url(own_redis.url)
    job = submit("tests.worker.jobs.mark_and_sleep", "busy", 22, timeout=120, connection=redis, settings=settings)
    time.sleep(1.2)  # appendfsync everysec: the job is on disk
    with start_worker(env, tmp_path, name="busy"), start_worker(env, tmp_path, name="idle"):
        wait_for(lambda: int(redis.get("busy") or 0) == 1, 30, what="job start")
        time.sleep(1.2)
        own_redis.kill()
        time.sleep(heartbeat_deadline(settings.heartbeat_interval) + 2)  # longer than the deadline
        own_redis.start()
        redis = Redis.from_url(own_redis.url)
        assert sweep_abandoned(redis, ["default"], settings) == []  # right after the restart
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 60, interval=0.2, what="job end")
        assert int(redis.get("busy") or 0) == 1  # never re-queued, never run twice
    assert b"job_recovered" not in (tmp_path / "idle.log").read_bytes()


@pytest.mark.chaos
def test_no_false_recovery_across_a_redis_stall(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    """Redis frozen (SIGSTOP) longer than the deadline, without a restart: heartbeats are held up, the
    workers notice and publish the outage, and no sweep re-queues the running job."""
    env = worker_env(own_redis.url, tmp_path, REDIS_RETRIES="30")
    settings = load_settings(env)
    redis = Redis.from_url(own_redis.url)
    job = submit("tests.worker.jobs.mark_and_sleep", "stalled", 20, timeout=120, connection=redis,
                 settings=settings)
    with start_worker(env, tmp_path, name="busy"), start_worker(env, tmp_path, name="idle"), \
            running(["-m", "worker", "sweep", "--loop", "--interval", "1"], env, tmp_path / "sweep.log"):
        wait_for(lambda: int(redis.get("stalled") or 0) == 1, 30, what="job start")
        time.sleep(1.0)
        assert own_redis.pid is not None
        os.kill(own_redis.pid, signal.SIGSTOP)
        try:
            time.sleep(heartbeat_deadline(settings.heartbeat_interval) + 1.5)  # < the 10 s socket timeout
        finally:
            os.kill(own_redis.pid, signal.SIGCONT)
        wait_for(lambda: redis.get(CONTACT_KEY) is not None, 10, what="outage published")
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 60, interval=0.2, what="job end")
        assert int(redis.get("stalled") or 0) == 1
    for log in ("idle.log", "busy.log", "sweep.log"):
        assert b"job_recovered" not in (tmp_path / log).read_bytes(), log
