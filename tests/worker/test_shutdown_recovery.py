"""Warm/cold shutdown, crash recovery after kill -9, and a Redis restart under real worker processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.worker.helpers import kill_tree, running, start_worker, wait_for, worker_env
from worker.recovery import sweep_abandoned


def _started(redis: Redis, key: str, count: int = 1) -> bool:
    return int(redis.get(key) or 0) >= count


@pytest.mark.usefixtures("execution_mode")
def test_warm_shutdown_finishes_the_running_job_and_takes_no_new_one(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    with start_worker(env, tmp_path) as proc:
        job = submit("tests.worker.jobs.mark_and_sleep", "m", 1.5, connection=redis, settings=settings)
        wait_for(lambda: _started(redis, "m"), 20, what="job start")
        waiting = submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert waiting.get_status(refresh=True) == JobStatus.QUEUED
    assert Queue("default", connection=redis).job_ids == [waiting.id]


@pytest.mark.parametrize("how", ["second-sigterm", "deadline"])
@pytest.mark.usefixtures("execution_mode")
def test_forced_shutdown_puts_the_job_back_on_its_queue(
    redis_url: str, redis: Redis, tmp_path: Path, how: str
) -> None:
    env = worker_env(redis_url, tmp_path, JOBFLEET_SHUTDOWN_DEADLINE="1" if how == "deadline" else "600")
    settings = load_settings(env)
    with start_worker(env, tmp_path) as proc:
        job = submit("tests.worker.jobs.slow_first_time", "s", 60, connection=redis, settings=settings)
        wait_for(lambda: _started(redis, "s"), 20, what="job start")
        proc.send_signal(signal.SIGTERM)
        if how == "second-sigterm":
            time.sleep(1.2)  # RQ treats a repeat within 1 s as the same request
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert Queue("default", connection=redis).job_ids == [job.id]
    assert FailedJobRegistry("default", connection=redis).get_job_ids() == []
    assert StartedJobRegistry("default", connection=redis).get_job_ids() == []
    with start_worker(env, tmp_path, name="w2"):
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 20, what="re-run")
    assert job.return_value() == 2


@pytest.mark.usefixtures("execution_mode")
def test_kill_9_mid_job_is_recovered_by_the_sweep(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    began = time.monotonic()
    job = submit("tests.worker.jobs.slow_first_time", "k9", 120, queue="low", connection=redis, settings=settings)
    with running(["-m", "worker", "--queues", "low", "--name", "doomed"], env, tmp_path / "doomed.log") as doomed:
        wait_for(lambda: _started(redis, "k9"), 20, what="job start")
        kill_tree(doomed, signal.SIGKILL)  # the worker, its work horse and its scheduler
    assert job.get_status(refresh=True) == JobStatus.STARTED  # nobody else listens on "low"
    assert sweep_abandoned(redis, ["low"], settings) == []  # heartbeats are still fresh: not yet abandoned
    with running(["-m", "worker", "sweep", "--loop", "--interval", "1"], env, tmp_path / "sweep.log"):
        wait_for(lambda: Queue("low", connection=redis).job_ids == [job.id], 40, interval=0.2, what="re-queue")
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert Job.fetch(job.id, connection=redis).retries_left == settings.retry_max - 1  # counted as a retry
    with start_worker(env, tmp_path, "--queues", "low", name="rescuer"):
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 20, what="rescue")
    assert job.return_value() == 2
    assert time.monotonic() - began < 60
    assert "job_recovered" in (tmp_path / "sweep.log").read_text()


@pytest.mark.usefixtures("execution_mode")
def test_redis_restart_mid_run_loses_no_accepted_job(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    env = worker_env(own_redis.url, tmp_path, REDIS_RETRIES="30")
    settings = load_settings(env)
    redis = Redis.from_url(own_redis.url)
    jobs = [submit("jobfleet.demo.jobs.sleep", 0.1, connection=redis, settings=settings) for _ in range(30)]
    time.sleep(1.5)  # AOF appendfsync everysec: accepted jobs are on disk
    with start_worker(env, tmp_path, name="a"), start_worker(env, tmp_path, name="b"), \
            running(["-m", "worker", "sweep", "--loop", "--interval", "1"], env, tmp_path / "sweep.log"):
        wait_for(lambda: sum(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs) >= 5, 20)
        own_redis.kill()
        time.sleep(0.5)
        own_redis.start()
        redis = Redis.from_url(own_redis.url)

        def all_done() -> bool:
            statuses = [Job.fetch(j.id, connection=redis).get_status(refresh=False) for j in jobs]
            return all(s == JobStatus.FINISHED for s in statuses)

        wait_for(all_done, 50, interval=0.3, what="every job to finish after the restart")
        assert len({w.decode() for w in redis.smembers("rq:workers")}) == 2  # both workers survived
    redis.close()
