"""Pool mode only: hard timeouts, executor recycling, async jobs, and plain RQ workers on the same queues."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.conftest import ROOT
from tests.worker.helpers import start_worker, wait_for, worker_env


def _status(job: Job) -> JobStatus | None:
    return job.get_status(refresh=True)


def _error(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string if result else None) or ""


def test_timeouts_soft_then_hard_and_executor_recycling(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="pool", JOBFLEET_POOL_MAX_JOBS="3",
                     JOBFLEET_POOL_KILL_GRACE="1")
    settings = load_settings(env)
    with start_worker(env, tmp_path) as proc:
        soft = submit("jobfleet.demo.jobs.sleep", 30, timeout=1, retry=None, connection=redis, settings=settings)
        deaf = submit("tests.worker.pool_jobs.deaf_sleep", 30, timeout=1, retry=None, connection=redis,
                      settings=settings)
        pids = [submit("tests.worker.pool_jobs.getpid", connection=redis, settings=settings) for _ in range(7)]
        wait_for(lambda: _status(soft) == JobStatus.FAILED and _status(deaf) == JobStatus.FAILED, 30,
                 what="both timeouts")
        wait_for(lambda: all(_status(j) == JobStatus.FINISHED for j in pids), 30, what="the jobs after them")
        assert proc.poll() is None
    assert f"job {soft.id} exceeded its timeout of 1 s" in _error(soft)  # raised inside the job (SIGALRM)
    assert f"job {deaf.id} exceeded its timeout of 1 s and did not stop; its executor was killed" in _error(deaf)
    executors = {j.return_value() for j in pids}
    assert len(executors) >= 3  # at most 3 jobs per executor (JOBFLEET_POOL_MAX_JOBS), then a fresh one
    assert StartedJobRegistry("default", connection=redis).get_job_ids() == []


def test_executor_over_its_memory_limit_is_replaced(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="pool", JOBFLEET_POOL_MAX_MEMORY_MB="1")
    settings = load_settings(env)
    with start_worker(env, tmp_path):
        jobs = [submit("tests.worker.pool_jobs.grow", 1, connection=redis, settings=settings) for _ in range(70)]
        wait_for(lambda: all(_status(j) == JobStatus.FINISHED for j in jobs), 40, what="the leaking jobs")
    pids = [j.return_value() for j in jobs]
    assert len(set(pids)) >= 2  # checked every 32 jobs: over 1 MB, so the executor was replaced
    assert "executor_recycled" in (tmp_path / "w1.log").read_text()


def test_async_jobs_run_concurrently_with_timeouts_and_failures(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="pool", JOBFLEET_ASYNC_CONCURRENCY="20")
    settings = load_settings(env)
    queue = Queue("default", connection=redis)
    jobs = queue.enqueue_many([Queue.prepare_data("tests.worker.pool_jobs.async_sleep", (0.5,), result_ttl=600)
                               for _ in range(40)])
    late = submit("tests.worker.pool_jobs.async_sleep", 30, timeout=1, retry=None, connection=redis,
                  settings=settings)
    boom = submit("tests.worker.pool_jobs.async_fail", retry=None, connection=redis, settings=settings)
    with start_worker(env, tmp_path):
        began = time.monotonic()
        wait_for(lambda: all(Job.fetch(j.id, connection=redis).get_status(refresh=False) == JobStatus.FINISHED
                             for j in jobs), 30, interval=0.05, what="the async jobs")
        elapsed = time.monotonic() - began
        wait_for(lambda: _status(late) == JobStatus.FAILED and _status(boom) == JobStatus.FAILED, 20)
    assert elapsed < 10  # 40 x 0.5 s run one by one would take 20 s; 20 at a time take about 1 s
    assert {Job.fetch(j.id, connection=redis).return_value() for j in jobs} == {0.5}  # get_current_job() works
    assert f"job {late.id} exceeded its timeout of 1 s" in _error(late)
    assert "RuntimeError: async boom" in _error(boom)


def test_plain_rq_workers_share_the_queues_and_see_the_same_data(redis_url: str, redis: Redis,
                                                                 tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="pool")
    queue = Queue("default", connection=redis)
    jobs = queue.enqueue_many([Queue.prepare_data("tests.worker.pool_jobs.nap", (0.01,), result_ttl=600)
                               for _ in range(300)])
    rq = str(Path(sys.executable).parent / "rq")
    with start_worker(env, tmp_path, "--burst"):
        plain = subprocess.run([rq, "worker", "-w", "rq.SimpleWorker", "--burst", "--url", redis_url, "default"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert plain.returncode == 0, plain.stderr[-2000:]
        wait_for(lambda: FinishedJobRegistry("default", connection=redis).count == 300, 60, what="every job")
    runners = {Job.fetch(j.id, connection=redis).worker_name for j in jobs}
    assert len(runners) == 2  # both workers ran some of the jobs
    for job in Job.fetch_many([j.id for j in jobs], connection=redis):
        assert job is not None and job.get_status(refresh=False) == JobStatus.FINISHED
        result = job.latest_result()
        assert result is not None and result.type == result.Type.SUCCESSFUL and isinstance(job.return_value(), int)
    assert StartedJobRegistry("default", connection=redis).count == 0
    assert FailedJobRegistry("default", connection=redis).count == 0
    info = subprocess.run([rq, "info", "--url", redis_url, "--only-queues"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and "default" in info.stdout, info.stderr
