"""The batched claim, success and release scripts against a real Redis, read back through RQ's own API."""

from __future__ import annotations

import time

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from jobfleet.settings import Settings
from worker.pool import bookkeeping, prefetch
from worker.recovery import RQ_MARGIN_S, sweep_abandoned, vouched_since
from worker.reliable_queue import ClaimDefaults, claim_batch, decode_fields

DEFAULTS = ClaimDefaults(timeout=180, retries_left=3, retry_intervals="[1, 2, 4]")


def _claim(redis: Redis, queues: list[str], limit: int, worker: str = "w") -> list:  # type: ignore[type-arg]
    return claim_batch(redis, queues, worker, limit, 90, DEFAULTS, 500)


def test_claim_takes_up_to_k_in_priority_order_and_registers_them_as_started(redis: Redis) -> None:
    high, low = Queue("high", connection=redis), Queue("low", connection=redis)
    lows = [low.enqueue("jobfleet.demo.jobs.noop") for _ in range(3)]
    highs = [high.enqueue("jobfleet.demo.jobs.noop", job_timeout=7, result_ttl=0) for _ in range(2)]
    gone = low.enqueue("jobfleet.demo.jobs.noop")
    redis.delete(gone.key)  # a job whose hash vanished is dropped, not claimed
    claimed = _claim(redis, ["high", "low"], 4)
    assert [c.job_id for c in claimed] == [j.id for j in highs] + [j.id for j in lows[:2]]
    assert low.job_ids == [lows[2].id, gone.id]
    first = claimed[0]
    assert (first.queue, first.timeout, first.result_ttl, first.attempt, first.full_path) == ("high", 7, 0, 1, True)
    assert claimed[2].full_path is False and claimed[2].timeout == 180 and claimed[2].result_ttl == 500
    fields = decode_fields(claimed[2].blob)
    assert fields[b"status"] == b"started" and fields[b"worker_name"] == b"w" and fields[b"data"]
    for c in claimed:
        job = Job.fetch(c.job_id, connection=redis)
        assert job.get_status(refresh=False) == JobStatus.STARTED and job.worker_name == "w"
        assert job.retries_left == 3 and job.timeout == (7 if c.queue == "high" else 180)
        registry = StartedJobRegistry(c.queue, connection=redis)
        assert c.job_id in registry.get_job_ids()
        assert redis.hget(f"rq:execution:{c.composite_key}", "worker_name") == b"w"
    assert redis.scard("rq:worker:w:executions") == 4
    assert _claim(redis, ["high", "low"], 10)[0].job_id == lows[2].id  # the dropped id is gone from the queue


def test_successes_are_recorded_in_rqs_data_model(redis: Redis) -> None:
    queue = Queue("default", connection=redis)
    parent = queue.enqueue("jobfleet.demo.jobs.noop")
    child = queue.enqueue("jobfleet.demo.jobs.noop", depends_on=parent)
    other = queue.enqueue("jobfleet.demo.jobs.noop")
    claimed = _claim(redis, ["default"], 5)
    assert [c.job_id for c in claimed] == [parent.id, other.id]
    now = time.time()
    import pickle
    from base64 import b64encode

    successes = [bookkeeping.Success(c, b64encode(pickle.dumps({"n": i})).decode(), now - 0.5, now, 60, False)
                 for i, c in enumerate(claimed)]
    redis.hset("rq:worker:w", "name", "w")
    lost, with_dependents = bookkeeping.record_successes(redis, "w", "rq:worker:w", "rq:worker:w:executions",
                                                         successes, now)
    assert lost == [] and with_dependents == [parent.id]
    for i, c in enumerate(claimed):
        job = Job.fetch(c.job_id, connection=redis)
        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value() == {"n": i}
        result = job.latest_result()
        assert result is not None and result.type == result.Type.SUCCESSFUL and result.worker_name == "w"
        assert result.execution_id == c.execution_id
        assert job.ended_at is not None and job.started_at is not None and job.ended_at > job.started_at
        assert 0 < redis.ttl(job.key) <= 60
    assert set(FinishedJobRegistry("default", connection=redis).get_job_ids()) == {parent.id, other.id}
    assert StartedJobRegistry("default", connection=redis).get_job_ids() == []
    assert redis.keys("rq:execution:*") == [] and redis.scard("rq:worker:w:executions") == 0
    assert redis.hget("rq:worker:w", "successful_job_count") == b"2"
    # recording again finds nothing registered as started: reported as lost, nothing written twice
    lost, _ = bookkeeping.record_successes(redis, "w", "rq:worker:w", "rq:worker:w:executions", successes, now)
    assert lost == [parent.id, other.id] and len(Job.fetch(other.id, connection=redis).results()) == 1
    assert child.get_status(refresh=True) == JobStatus.DEFERRED  # dependents are the worker's next step


def test_release_puts_unstarted_jobs_back_in_front_in_order(redis: Redis) -> None:
    queue = Queue("default", connection=redis)
    jobs = [queue.enqueue("jobfleet.demo.jobs.noop") for _ in range(4)]
    claimed = _claim(redis, ["default"], 3)
    assert bookkeeping.release(redis, "rq:worker:w:executions", claimed) == 3
    assert queue.job_ids == [j.id for j in jobs]
    job = Job.fetch(jobs[0].id, connection=redis)
    assert job.get_status() == JobStatus.QUEUED and redis.hget(job.key, "jf_attempt") == b"0"
    assert StartedJobRegistry("default", connection=redis).get_job_ids() == []
    assert bookkeeping.release(redis, "rq:worker:w:executions", claimed) == 0  # already back: skipped


def test_jobs_claimed_by_a_worker_that_died_are_recovered_like_started_ones(redis: Redis, settings: Settings) -> None:
    queue = Queue("default", connection=redis)
    jobs = [queue.enqueue("jobfleet.demo.jobs.noop") for _ in range(3)]
    _claim(redis, ["default"], 3, worker="ghost")  # no such worker is alive: its claims are abandoned
    # ages count only from when Redis is known to have been reachable throughout (its start, or the end of an
    # outage some sweeper saw): before RQ's margin has passed since then, nothing is judged
    time.sleep(max(0.0, RQ_MARGIN_S + 2 - (time.time() - vouched_since(redis))))  # uptime is in whole seconds
    recovered = sweep_abandoned(redis, ["default"], settings)
    assert sorted(recovered) == sorted(j.id for j in jobs)
    assert sorted(queue.job_ids) == sorted(j.id for j in jobs)
    assert all(Job.fetch(j.id, connection=redis).retries_left == 2 for j in jobs)  # one retry used, as started


def test_prefetch_policy() -> None:
    assert prefetch.batch_size(None, False, 50, 64) == 1  # nothing known: one job, one round trip
    assert prefetch.batch_size(0.0001, False, 50, 64) == 64  # no-op jobs: up to the prefetch limit
    assert prefetch.batch_size(2.0, False, 50, 64) == 1  # long jobs: one at a time, no hoarding
    assert prefetch.batch_size(2.0, True, 50, 64) == 58  # async jobs: enough to keep the event loop full
    assert prefetch.batch_size(2.0, True, 100, 64) == 108 and prefetch.should_claim(50, 58, True)
    assert prefetch.window(2.0, False, 50, 64) == 2 and prefetch.window(0.0001, False, 50, 64) == 64
    assert prefetch.should_claim(0, 1) and not prefetch.should_claim(1, 1) and prefetch.should_claim(32, 64)
    assert prefetch.ewma(None, 1.0) == 1.0 and prefetch.ewma(1.0, 2.0) == 1.2


def test_a_capped_queue_gives_at_most_cap_minus_running(redis: Redis) -> None:
    capped, other = Queue("cap~acme", connection=redis), Queue("cap~zeta", connection=redis)
    acme = [capped.enqueue("jobfleet.demo.jobs.noop") for _ in range(5)]
    zeta = [other.enqueue("jobfleet.demo.jobs.noop") for _ in range(3)]
    first = claim_batch(redis, ["cap~acme", "cap~zeta"], "w", 10, 90, DEFAULTS, 500, caps=[2, None])
    assert [c.job_id for c in first] == [j.id for j in acme[:2]] + [j.id for j in zeta]
    assert claim_batch(redis, ["cap~acme"], "w", 10, 90, DEFAULTS, 500, caps=[2]) == []  # 2 running
    redis.rpush("rq:queue:cap~acme:intermediate", "x")  # a fork worker's job in flight counts too
    redis.zrem("rq:wip:cap~acme", first[0].composite_key)
    assert claim_batch(redis, ["cap~acme"], "w", 10, 90, DEFAULTS, 500, caps=[2]) == []  # 1 started + 1 in flight
    again = claim_batch(redis, ["cap~acme"], "w", 10, 90, DEFAULTS, 500, caps=[3])
    assert [c.job_id for c in again] == [acme[2].id]
    assert len(claim_batch(redis, ["cap~acme"], "w", 10, 90, DEFAULTS, 500, caps=[None])) == 2  # no cap
