"""Dashboard fixtures: an app on the session's real Redis and a queue with jobs in every state."""

from __future__ import annotations

import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from dashboard.app import create_app
from jobfleet.embedded_redis import free_port
from jobfleet.settings import Settings
from tests.conftest import spawn
from tests.conftest import test_env as child_env
from tests.dashboard import jobs

with warnings.catch_warnings():  # Starlette's notice about httpx2 is not ours to act on
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient on the dashboard app (no token configured)."""
    with TestClient(create_app(settings), base_url="http://localhost") as test_client:
        yield test_client


@dataclass
class Population:
    """Jobs of queue ``default`` in known states."""

    queued: list[Job]
    finished: list[Job]
    failed: list[Job]
    scheduled: Job
    deferred: Job


def run_burst(redis: Redis, queue: Queue) -> None:
    """Run every queued job of ``queue`` in this process with RQ's SimpleWorker."""
    SimpleWorker([queue], connection=redis).work(burst=True)


@pytest.fixture
def population(redis: Redis) -> Population:
    """2 finished, 3 failed, 4 queued, 1 scheduled, 1 deferred job in queue ``default``."""
    queue = Queue("default", connection=redis)
    finished = [queue.enqueue(jobs.add, i, 1) for i in range(2)]
    failed = [queue.enqueue(jobs.boom, f"failure {i}") for i in range(3)]
    run_burst(redis, queue)
    queued = [queue.enqueue(jobs.add, 10, i) for i in range(4)]
    scheduled = queue.enqueue_in(timedelta(hours=1), jobs.add, 1, 2)
    deferred = queue.enqueue(jobs.add, 3, 4, depends_on=queued[0])
    return Population(queued, finished, failed, scheduled, deferred)


@pytest.fixture
def dashboard_server(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start ``python -m dashboard`` (real uvicorn, free port) with extra env vars; returns its base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = free_port()
        log = tmp_path / f"dashboard-{port}.log"
        proc = spawn(["-m", "dashboard"], child_env(redis_url, tmp_path, JOBFLEET_DASHBOARD_PORT=str(port), **env), log)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"dashboard exited with {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"dashboard did not answer /healthz: {log.read_text()}")
            time.sleep(0.05)

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@dataclass
class BusyWorker:
    """A real fleet worker process (``python -m worker``) running ``job`` until ``release`` is set."""

    name: str
    instance_id: str
    job: Job
    release: str
    proc: subprocess.Popen[bytes]


@pytest.fixture
def busy_worker(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[BusyWorker]:
    """Start a burst fleet worker on queue ``high`` with one long job; released and reaped afterwards."""
    release = "dashboard-test:release"
    job = Queue("high", connection=redis).enqueue(jobs.wait_for_key, release, 60)
    env = child_env(redis_url, tmp_path, JOBFLEET_INSTANCE_ID="i-0abc123")
    proc = spawn(["-m", "worker", "--queues", "high", "--burst", "--name", "dash-w1"], env, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 20
        while Job.fetch(job.id, connection=redis).get_status() != "started":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start the job: {(tmp_path / 'worker.log').read_text()}")
            time.sleep(0.05)
        yield BusyWorker("dash-w1", "i-0abc123", job, release, proc)
    finally:
        redis.set(release, 1)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
