"""Reliable dequeue on a real Redis: atomic moves into intermediate lists, priority order, idle latency, and the
recovery of jobs stranded between dequeue and start by a worker that died (kill -9 window)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import Settings, load_settings
from jobfleet.submit import submit
from tests.worker.helpers import running, start_worker, wait_for, worker_env
from worker.recovery import return_stranded, sweep_abandoned
from worker.reliable_queue import ReliableQueue, _waker
from worker.worker import JobfleetWorker, JobLost

QUEUES = ["high", "default", "low"]


def _keys(redis: Redis) -> list[str]:
    return [Queue(name, connection=redis).key for name in QUEUES]


def _intermediate(redis: Redis, name: str) -> list[str]:
    return IntermediateQueue(Queue(name, connection=redis).key, redis).get_job_ids()


def _settings(redis_url: str, tmp_path: Path) -> Settings:
    return load_settings(worker_env(redis_url, tmp_path, JOBFLEET_STRANDED_AFTER="1"))


def test_dequeue_moves_from_the_first_non_empty_queue_into_its_intermediate_list(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    settings = _settings(redis_url, tmp_path)
    low = submit("jobfleet.demo.jobs.noop", queue="low", connection=redis, settings=settings)
    high = submit("jobfleet.demo.jobs.noop", queue="high", connection=redis, settings=settings)
    queues = [ReliableQueue(name, connection=redis) for name in QUEUES]
    job, queue = ReliableQueue.dequeue_any(queues, None, connection=redis) or (None, None)
    assert job is not None and queue is not None
    assert (job.id, queue.name) == (high.id, "high")
    assert _intermediate(redis, "high") == [high.id] and Queue("high", connection=redis).job_ids == []
    job, queue = ReliableQueue.dequeue_any(queues, 1, connection=redis) or (None, None)
    assert job is not None and queue is not None and (job.id, queue.name) == (low.id, "low")
    assert _intermediate(redis, "low") == [low.id]
    assert ReliableQueue.dequeue_any(queues, None, connection=redis) is None
    began = time.monotonic()
    with pytest.raises(DequeueTimeout):
        ReliableQueue.dequeue_any(queues, 1, connection=redis)
    assert 0.9 < time.monotonic() - began < 3.0
    redis.rpush(Queue("default", connection=redis).key, "no-such-job")  # an id without a job hash
    assert ReliableQueue.dequeue_any(queues, None, connection=redis) is None
    assert _intermediate(redis, "default") == []  # not left behind


def test_job_stranded_between_dequeue_and_start_goes_back_to_the_front_and_runs(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    settings = _settings(redis_url, tmp_path)
    stranded = submit("tests.worker.jobs.append", "order", "stranded", queue="low", connection=redis,
                      settings=settings)
    # A dying worker's dequeue: the Lua move, then kill -9 before the started-registry write.
    assert ReliableQueue.move_first(redis, _keys(redis)) == (Queue("low", connection=redis).key, stranded.id)
    later = submit("tests.worker.jobs.append", "order", "later", queue="low", connection=redis, settings=settings)
    assert Queue("low", connection=redis).job_ids == [later.id]
    assert sweep_abandoned(redis, QUEUES, settings) == []  # first sighting only marks it
    assert _intermediate(redis, "low") == [stranded.id]
    recovered = wait_for(lambda: sweep_abandoned(redis, QUEUES, settings), 10, interval=0.2, what="recovery")
    assert recovered == [stranded.id]
    assert Queue("low", connection=redis).job_ids == [stranded.id, later.id]  # at the FRONT
    assert _intermediate(redis, "low") == []
    fresh = Job.fetch(stranded.id, connection=redis)
    assert fresh.get_status() == JobStatus.QUEUED
    assert fresh.retries_left == stranded.retries_left  # it never ran: no retry used up
    env = worker_env(redis_url, tmp_path)
    with start_worker(env, tmp_path, "--burst", name="rescuer") as proc:
        assert proc.wait(30) == 0
    assert [v.decode() for v in redis.lrange("order", 0, -1)] == ["stranded", "later"]
    assert Job.fetch(stranded.id, connection=redis).get_status() == JobStatus.FINISHED


def test_recovery_never_steals_a_job_a_live_worker_registers(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    settings = _settings(redis_url, tmp_path)
    worker = JobfleetWorker(QUEUES, connection=redis, settings=settings, name="live")
    worker.register_birth()  # alive, with a fresh heartbeat
    queues = [ReliableQueue(name, connection=redis) for name in QUEUES]
    registry = StartedJobRegistry("default", connection=redis)

    # 1. Registered in time: the same transaction took it out of the intermediate list, the sweep sees nothing.
    first = submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings)
    job, _ = ReliableQueue.dequeue_any(queues, None, connection=redis) or (None, None)
    assert job is not None and job.id == first.id
    execution = worker.prepare_execution(job)
    assert _intermediate(redis, "default") == [] and registry.get_job_ids() == [first.id]
    time.sleep(1.1)
    assert sweep_abandoned(redis, QUEUES, settings) == []
    assert Queue("default", connection=redis).job_ids == []
    with redis.pipeline() as pipe:
        execution.delete(job=job, pipeline=pipe)
        pipe.execute()
    worker.executions.pop(execution.id)

    # 2. Registered by a stock RQ worker, which leaves the id in the intermediate list: left alone too.
    second = submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings)
    job, _ = ReliableQueue.dequeue_any(queues, None, connection=redis) or (None, None)
    assert job is not None and job.id == second.id
    with redis.pipeline() as pipe:  # what RQ's prepare_execution does: the id stays in the intermediate list
        Execution.create(job, 60, pipeline=pipe, worker_name=worker.name)
        pipe.execute()
    sweep_abandoned(redis, QUEUES, settings)
    time.sleep(1.1)
    assert sweep_abandoned(redis, QUEUES, settings) == []
    assert _intermediate(redis, "default") == [second.id]
    # ... and the move back itself re-checks the registry (a registration that raced the sweep's reading).
    assert return_stranded(redis, Queue("default", connection=redis), second.id) is False
    assert _intermediate(redis, "default") == [second.id] and Queue("default", connection=redis).job_ids == []
    redis.delete(registry.key, IntermediateQueue(Queue("default", connection=redis).key, redis).key)

    # 3. Too slow (paused past the grace): recovery re-queued it, so the worker's claim fails and runs nothing.
    third = submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings)
    job, _ = ReliableQueue.dequeue_any(queues, None, connection=redis) or (None, None)
    assert job is not None and job.id == third.id
    sweep_abandoned(redis, QUEUES, settings)
    wait_for(lambda: sweep_abandoned(redis, QUEUES, settings), 10, interval=0.2, what="recovery")
    with pytest.raises(JobLost):
        worker.prepare_execution(job)
    assert registry.get_job_ids() == [] and worker.executions == {}
    assert Queue("default", connection=redis).job_ids == [third.id]  # exactly once, waiting to run


def test_priority_order_high_then_default_then_low(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    for name in ("low", "default", "high", "low", "high"):
        submit("tests.worker.jobs.append", "order", name, queue=name, connection=redis, settings=settings)
    with start_worker(env, tmp_path, "--burst") as proc:
        assert proc.wait(30) == 0
    assert [v.decode() for v in redis.lrange("order", 0, -1)] == ["high", "high", "default", "low", "low"]
    assert all(_intermediate(redis, name) == [] for name in QUEUES)


def test_idle_worker_picks_up_jobs_quickly_on_every_queue(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    waits: dict[str, list[float]] = {name: [] for name in ("low", "default", "high")}
    with running(["-m", "worker", "--name", "idle"], env, tmp_path / "idle.log"):
        warmup = submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings)
        wait_for(lambda: warmup.get_status(refresh=True) == JobStatus.FINISHED, 20, what="warm-up job")
        for name in ("low", "default", "high") * 3:
            time.sleep(0.3)  # let the worker block in BLMOVE on "high" again
            job = submit("jobfleet.demo.jobs.noop", queue=name, connection=redis, settings=settings)
            wait_for(lambda j=job: j.get_status(refresh=True) == JobStatus.FINISHED, 10, what=f"{name} job")
            fresh = Job.fetch(job.id, connection=redis)
            assert fresh.started_at is not None and fresh.enqueued_at is not None
            waits[name].append((fresh.started_at - fresh.enqueued_at).total_seconds())
    print(f"enqueue-to-start wait of an idle worker: {waits}")
    # A behaviour check, not a benchmark: the poll is 0.25 s, so a low job waits well under 0.5 s (median of 3).
    assert all(sorted(samples)[1] < 0.5 for samples in waits.values()), waits


def _dequeue_in_thread(queues: list[ReliableQueue], redis: Redis, timeout: int) -> dict[str, object]:
    import threading

    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = ReliableQueue.dequeue_any(queues, timeout, connection=redis)
        except DequeueTimeout as exc:
            out["result"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    out["thread"] = thread
    return out


def test_an_idle_dequeue_is_woken_by_a_job_on_a_lower_queue(
    redis_url: str, redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 60 s rescan period and a 30 s timeout, only the tracking push can deliver the low job within 5 s."""
    monkeypatch.setattr(ReliableQueue, "poll_interval", 60.0)
    queues = [ReliableQueue(name, connection=redis) for name in QUEUES]
    pending = _dequeue_in_thread(queues, redis, timeout=30)
    time.sleep(0.5)  # the dequeue is now waiting
    job = submit("jobfleet.demo.jobs.noop", queue="low", connection=Redis.from_url(redis_url),
                 settings=_settings(redis_url, tmp_path))
    pending["thread"].join(5)  # type: ignore[attr-defined]
    assert not pending["thread"].is_alive(), "the waiting dequeue was not woken"  # type: ignore[attr-defined]
    result = pending["result"]
    assert isinstance(result, tuple), f"not woken: {result!r}"
    assert (result[0].id, result[1].name) == (job.id, "low")
    assert _intermediate(redis, "low") == [job.id]


def test_a_server_that_refuses_tracking_falls_back_to_blocking_on_the_first_queue(
    own_redis: EmbeddedRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = Redis.from_url(own_redis.url)
    admin.execute_command("ACL", "SETUSER", "notrack", "on", ">secret-pw", "~*", "&*", "+@all", "-client")
    url = own_redis.url.replace("redis://", "redis://notrack:secret-pw@", 1)
    client = Redis.from_url(url)
    keys = _keys(client)
    assert _waker(client, keys) is None  # NOPERM on CLIENT TRACKING: remembered, no retry per wait
    monkeypatch.setattr(ReliableQueue, "poll_interval", 60.0)
    queues = [ReliableQueue(name, connection=client) for name in QUEUES]
    pending = _dequeue_in_thread(queues, client, timeout=30)
    time.sleep(0.5)
    job = submit("jobfleet.demo.jobs.noop", queue="high", connection=admin,
                 settings=_settings(own_redis.url, tmp_path))
    pending["thread"].join(5)  # type: ignore[attr-defined]
    assert not pending["thread"].is_alive(), "BLMOVE did not wake"  # type: ignore[attr-defined]
    result = pending["result"]
    assert isinstance(result, tuple) and result[0].id == job.id, f"BLMOVE on the first queue did not wake: {result!r}"
