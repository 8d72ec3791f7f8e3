"""Both execution modes: a job that kills its process, a kill -9 of the process running a job, stop-job."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from redis import Redis
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.worker.helpers import start_worker, wait_for, worker_env


def _error(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string if result else None) or ""


def _status(job: Job) -> JobStatus | None:
    return job.get_status(refresh=True)


@pytest.mark.usefixtures("execution_mode")
def test_jobs_that_kill_their_process_fail_or_retry_and_the_worker_goes_on(
    redis_url: str, redis: Redis, tmp_path: Path, execution_mode: str
) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    with start_worker(env, tmp_path) as proc:
        exits = submit("tests.worker.pool_jobs.exit_now", 3, retry=None, connection=redis, settings=settings)
        crashes = submit("tests.worker.pool_jobs.segfault", retry=None, connection=redis, settings=settings)
        flaky = submit("tests.worker.pool_jobs.exit_first_time", "calls", connection=redis, settings=settings)
        after = submit("tests.worker.pool_jobs.getpid", connection=redis, settings=settings)
        for job in (exits, crashes):
            wait_for(lambda job=job: _status(job) == JobStatus.FAILED, 30, what=f"{job.func_name} to fail")
        wait_for(lambda: _status(flaky) == JobStatus.FINISHED and _status(after) == JobStatus.FINISHED, 30,
                 what="the retried job and the next one")
        assert proc.poll() is None
    assert flaky.return_value() == 2  # the attempt that killed its process was retried by policy
    assert Job.fetch(flaky.id, connection=redis).retries_left == settings.retry_max - 1
    if execution_mode == "pool":
        assert "exited with code 3" in _error(exits) and "WorkHorseTerminated" in _error(exits)
        assert "SIGSEGV" in _error(crashes)
    else:
        assert "terminated unexpectedly" in _error(exits) and "terminated unexpectedly" in _error(crashes)
    assert StartedJobRegistry("default", connection=redis).get_job_ids() == []


@pytest.mark.usefixtures("execution_mode")
def test_kill_9_of_the_process_running_a_job_and_a_stop_job_command(
    redis_url: str, redis: Redis, tmp_path: Path, execution_mode: str
) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    with start_worker(env, tmp_path) as proc:
        killed = submit("tests.worker.pool_jobs.pid_first_time_sleeps", "pid:k", 60, connection=redis,
                        settings=settings)
        pid = int(wait_for(lambda: redis.get("pid:k"), 30, what="job start"))
        assert pid != proc.pid
        os.kill(pid, signal.SIGKILL)  # the executor (pool) or the work horse (fork), not the worker
        wait_for(lambda: _status(killed) == JobStatus.FINISHED, 30, what="the killed job's retry to finish")
        assert killed.return_value() == 2
        stopped = submit("tests.worker.pool_jobs.pid_and_sleep", "pid:s", 60, connection=redis, settings=settings)
        wait_for(lambda: redis.get("pid:s"), 30, what="second job start")
        send_stop_job_command(redis, stopped.id)
        wait_for(lambda: _status(stopped) == JobStatus.STOPPED, 30, what="the stopped job")
        after = submit("tests.worker.pool_jobs.getpid", connection=redis, settings=settings)
        wait_for(lambda: _status(after) == JobStatus.FINISHED, 30, what="a job after the stop")
        assert proc.poll() is None
    assert Job.fetch(stopped.id, connection=redis).retries_left == settings.retry_max  # never retried
    if execution_mode == "pool":
        assert after.return_value() != pid  # a new executor took over
