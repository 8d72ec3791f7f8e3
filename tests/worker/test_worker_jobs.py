"""Real `python -m worker` processes on a real Redis: retries, permanent errors, DLQ, timeouts, progress, logs."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from jobfleet.errors import DeadLetterError
from jobfleet.progress import get_progress
from jobfleet.settings import load_settings
from jobfleet.submit import submit
from jobfleet.worker_registry import worker_instances
from tests.conftest import ROOT
from tests.worker.helpers import start_worker, wait_for, worker_env
from worker.dlq import list_failed, requeue_all, requeue_failed


def _status(job: Job) -> JobStatus | None:
    return job.get_status(refresh=True)


def _error(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string if result else None) or ""


def _log_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


@pytest.mark.usefixtures("execution_mode")
def test_retry_with_backoff_then_success_and_json_logs(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    with start_worker(env, tmp_path):
        job = submit("jobfleet.demo.jobs.flaky", "f1", 2, connection=redis, settings=settings)
        wait_for(lambda: _status(job) == JobStatus.FINISHED, 30, what="flaky job to finish")
    assert job.return_value() == 3
    assert Job.fetch(job.id, connection=redis).retries_left == settings.retry_max - 2
    events = [e for e in _log_lines(tmp_path / "w1.log") if e.get("job_id") == job.id]
    finished = [e for e in events if e["event"] == "job_finished"]
    assert [e["outcome"] for e in finished] == ["retried", "retried", "finished"]
    assert [e["attempt"] for e in finished] == [1, 2, 3]
    for event in finished:
        assert {"ts", "level", "event", "job_id", "queue", "function", "attempt", "duration_s", "outcome"} <= set(event)
        assert event["queue"] == "default" and event["function"] == "jobfleet.demo.jobs.flaky"
    # backoff: the attempts are spaced by the scheduler (base 0.2 s, whole-second scheduling)
    starts = [e["ts"] for e in events if e["event"] == "job_started"]
    assert len(starts) == 3 and all(b - a >= 0.1 for a, b in itertools.pairwise(starts))


@pytest.mark.usefixtures("execution_mode")
def test_permanent_errors_go_straight_to_dlq_then_requeue(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    with start_worker(env, tmp_path):
        a = submit("tests.worker.jobs.bad_value", "count:a", connection=redis, settings=settings)
        b = submit("tests.worker.jobs.permanent", "count:b", connection=redis, settings=settings)
        c = submit("jobfleet.demo.jobs.always_fails", retry=None, connection=redis, settings=settings)
        for job in (a, b, c):
            wait_for(lambda job=job: _status(job) == JobStatus.FAILED, 20, what=f"{job.func_name} to fail")
        assert redis.get("count:a") == b"1" and redis.get("count:b") == b"1"  # never retried
        failed = FailedJobRegistry("default", connection=redis)
        assert set(failed.get_job_ids()) == {a.id, b.id, c.id}
        assert "ValueError: bad input value" in _error(a)
        assert "Traceback" in _error(b) and "PermanentError" in _error(b)
        listed = {d.job_id: d for d in list_failed(redis, "default")}
        assert listed[a.id].error == "ValueError: bad input value"

        requeue_failed(redis, a.id)
        wait_for(lambda: redis.get("count:a") == b"2", 20, what="requeued job to run again")
        wait_for(lambda: a.id in failed.get_job_ids(), 20)
        moved = requeue_all(redis, "default")
        assert set(moved) == {a.id, b.id, c.id}
        wait_for(lambda: redis.get("count:b") == b"2" and len(failed.get_job_ids()) == 3, 20)

    with pytest.raises(DeadLetterError, match="no job with id 'nope'"):
        requeue_failed(redis, "nope")
    with pytest.raises(DeadLetterError, match="unknown queue 'missing'"):
        requeue_all(redis, "missing")
    ok = submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings)
    with pytest.raises(DeadLetterError, match="is not in the dead-letter registry"):
        requeue_failed(redis, ok.id)
    cli = [sys.executable, "-m", "worker", "dlq"]
    listing = subprocess.run([*cli, "list", "--queue", "default"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=30)
    assert listing.returncode == 0 and len(listing.stdout.strip().splitlines()) == 3
    unknown = subprocess.run([*cli, "requeue", "nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 2 and "no job with id 'nope'" in unknown.stderr
    again = subprocess.run([*cli, "requeue-all", "--queue", "default"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=30)
    assert again.returncode == 0 and "requeued 3 job(s)" in again.stdout


@pytest.mark.usefixtures("execution_mode")
def test_timeout_names_job_and_limit(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    with start_worker(env, tmp_path):
        job = submit("jobfleet.demo.jobs.sleep", 30, timeout=1, retry=None, connection=redis, settings=settings)
        wait_for(lambda: _status(job) == JobStatus.FAILED, 20, what="timeout")
    assert f"job {job.id} exceeded its timeout of 1 s" in _error(job)


@pytest.mark.usefixtures("execution_mode")
def test_dependencies_priorities_progress_and_worker_view(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    first = submit("tests.worker.jobs.append", "order", "first", 0.3, connection=redis, settings=settings)
    second = submit("tests.worker.jobs.append", "order", "second", depends_on=first, connection=redis,
                    settings=settings)
    low = submit("tests.worker.jobs.append", "prio", "low", queue="low", connection=redis, settings=settings)
    high = submit("tests.worker.jobs.append", "prio", "high", queue="high", connection=redis, settings=settings)
    progress = submit("jobfleet.demo.jobs.with_progress", 4, 0.3, queue="low", connection=redis, settings=settings)
    with start_worker(env, tmp_path):
        wait_for(lambda: (get_progress(progress) or {}).get("percent", 0) >= 25, 20, what="progress")
        view = wait_for(lambda: [w for w in worker_instances(redis) if w.current_job_id == progress.id], 10)
        info = view[0]
        assert info.name == "w1" and info.instance_id == "test-instance" and info.state == "busy"
        assert info.queues == ("high", "default", "low") and info.pid and info.last_heartbeat
        assert info.state_since and abs(time.time() - info.state_since) < 5
        wait_for(lambda: _status(progress) == JobStatus.FINISHED, 20)
        final = get_progress(progress) or {}
        assert final["percent"] == 100.0 and final["message"] == "step 4/4"
        wait_for(lambda: _status(second) == JobStatus.FINISHED and _status(low) == JobStatus.FINISHED, 20)
        idle = wait_for(lambda: [w for w in worker_instances(redis) if w.state == "idle"], 10)[0]
        assert idle.current_job_id is None and idle.state_since >= info.state_since
    assert redis.lrange("order", 0, -1) == [b"first", b"second"]
    assert redis.lrange("prio", 0, -1) == [b"high", b"low"]
    assert worker_instances(redis) == []
    assert high.get_status(refresh=True) == JobStatus.FINISHED


def test_plain_queue_enqueue_and_rq_enqueue_get_default_retry(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    plain = Queue("default", connection=redis).enqueue("jobfleet.demo.jobs.flaky", "plain", 1)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "rq"), "enqueue", "--url", redis_url, "-q", "default",
         "jobfleet.demo.jobs.flaky", "rq-cli", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    cli_job_id = Queue("default", connection=redis).job_ids[-1]
    with start_worker(env, tmp_path):
        wait_for(lambda: _status(plain) == JobStatus.FINISHED, 30, what="plain enqueue job")
        cli_job = Job.fetch(cli_job_id, connection=redis)
        wait_for(lambda: _status(cli_job) == JobStatus.FINISHED, 30, what="rq enqueue job")
    assert redis.get("jobfleet:demo:flaky:plain") == b"2"
    assert redis.get("jobfleet:demo:flaky:rq-cli") == b"2"
    assert Job.fetch(plain.id, connection=redis).retries_left == load_settings(env).retry_max - 1


def test_rq_cli_runs_our_worker_class(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    job = Queue("default", connection=redis).enqueue("jobfleet.demo.jobs.flaky", "cli-worker", 1)
    rq = str(Path(sys.executable).parent / "rq")
    out = subprocess.run(
        [rq, "worker", "-w", "worker.worker.JobfleetWorker", "--url", redis_url, "--burst", "--with-scheduler",
         "default"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # burst mode: the first attempt failed and was scheduled; a second burst run picks up the retry
    wait_for(lambda: subprocess.run(
        [rq, "worker", "-w", "worker.worker.JobfleetWorker", "--url", redis_url, "--burst", "--with-scheduler",
         "default"], cwd=ROOT, env=env, capture_output=True, timeout=60).returncode == 0
        and _status(job) == JobStatus.FINISHED, 30, interval=0.5, what="retry under rq worker")
    assert redis.get("jobfleet:demo:flaky:cli-worker") == b"2"
