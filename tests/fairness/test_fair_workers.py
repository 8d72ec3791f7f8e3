"""Fair share with real `python -m worker` processes on a real Redis: shares follow weights while a capped
tenant never exceeds its cap, a late tenant starts before a flooding tenant's backlog drains, kill -9 of a
worker loses nothing, and a plain `rq worker` / `rq info` see and run tenant queues."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from jobfleet.settings import load_settings
from jobfleet.submit import submit, submit_many
from jobfleet.tenant_admin import set_cap, set_weight
from tests.fairness.helpers import enqueue, max_concurrency, runs, window_shares
from tests.worker.helpers import kill_tree, running, start_worker, wait_for, worker_env

JOB = "tests.fairness.helpers.record"
DURATION = 0.2


def test_shares_follow_weights_while_a_capped_tenant_stays_capped(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    set_weight(redis, "C", 2)
    set_weight(redis, "D", 100)  # D would take every slot...
    set_cap(redis, "D", 1)  # ...but may run one job at a time
    for tenant, count in (("A", 14), ("B", 14), ("C", 28), ("D", 30)):
        enqueue(redis, JOB, tenant, DURATION, tenant=tenant, count=count)
    # per-job shares are the fork mode's exact script (pool mode is fair per claim batch; caps: see below)
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="fork")
    with start_worker(env, tmp_path, name="w1"), start_worker(env, tmp_path, name="w2"), \
            start_worker(env, tmp_path, name="w3"):
        wait_for(lambda: redis.llen("rq:queue:default~C") == 0, 60, interval=0.2, what="C's backlog to drain")
    done = runs(redis)
    d_runs = [(r.start, r.end) for r in done if r.tenant == "D"]
    assert d_runs and max_concurrency(d_runs) == 1
    last_start = {t: max(r.start for r in done if r.tenant == t) for t in "ABC"}
    start = min(r.start for r in done)
    end = min(last_start.values())  # until the first of A, B, C has no job left to start
    shares = window_shares(done, ["A", "B", "C"], start, end)
    assert end - start > 2.0, shares
    for tenant, entitled in (("A", 0.25), ("B", 0.25), ("C", 0.5)):
        assert abs(shares[tenant] - entitled) < 0.1, shares


def test_pool_mode_keeps_a_capped_tenant_capped(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    set_weight(redis, "D", 100)  # D would take every slot (and whole claim batches)...
    set_cap(redis, "D", 1)  # ...but may run one job at a time
    for tenant, count in (("A", 12), ("D", 12)):
        enqueue(redis, JOB, tenant, 0.1, tenant=tenant, count=count)
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="pool")
    with start_worker(env, tmp_path, name="w1"), start_worker(env, tmp_path, name="w2"), \
            start_worker(env, tmp_path, name="w3"):
        wait_for(lambda: len(runs(redis)) == 24, 60, interval=0.2, what="every job to run")
    done = runs(redis)
    assert max_concurrency([(r.start, r.end) for r in done if r.tenant == "D"]) == 1
    assert max_concurrency([(r.start, r.end) for r in done]) >= 2  # the others used the free slots


def test_pool_mode_weighted_priority_does_not_starve_low(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    high = [Queue("high", connection=redis).enqueue(JOB, "H", 0.02) for _ in range(60)]
    low = [Queue("low", connection=redis).enqueue(JOB, "L", 0.02) for _ in range(20)]
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="pool", JOBFLEET_QUEUES="high,low",
                     JOBFLEET_PRIORITY_MODE="weighted", JOBFLEET_PRIORITY_WEIGHTS="high=3,low=1")
    with start_worker(env, tmp_path, "--queues", "high,low", name="w1"):
        wait_for(lambda: len(runs(redis)) == len(high) + len(low), 60, interval=0.2, what="every job to run")
    done = runs(redis)
    last_high = max(r.start for r in done if r.tenant == "H")
    assert sum(r.tenant == "L" and r.start < last_high for r in done) >= 3  # strict order would run none


def test_pool_mode_aging_serves_an_old_low_job_before_the_high_flood_drains(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    old = Queue("low", connection=redis).enqueue(JOB, "L", 0.01)
    Queue("high", connection=redis).enqueue_many(
        [Queue.prepare_data(JOB, ("H", 0.03)) for _ in range(300)])  # ~9 s of work, strictly first
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION="pool", JOBFLEET_QUEUES="high,low",
                     JOBFLEET_PRIORITY_AGING="1")
    with start_worker(env, tmp_path, "--queues", "high,low", name="w1"):
        wait_for(lambda: any(r.tenant == "L" for r in runs(redis)), 30, interval=0.1, what="the low job")
        assert redis.llen("rq:queue:high") > 50  # the flood is far from drained
    low_run = next(r for r in runs(redis) if r.tenant == "L")
    assert low_run.job_id == old.id


@pytest.mark.parametrize("execution", ["pool", "fork"])
def test_late_tenant_starts_before_the_flood_drains(
    redis_url: str, redis: Redis, tmp_path: Path, execution: str
) -> None:
    settings = load_settings(worker_env(redis_url, tmp_path))
    # the real client (fast enqueue script): submit_many for the flood, submit for the late tenant
    submit_many([{"func": JOB, "args": ["A", DURATION], "tenant": "A"}] * 80, connection=redis, settings=settings)
    env = worker_env(redis_url, tmp_path, JOBFLEET_EXECUTION=execution)
    with start_worker(env, tmp_path, name="w1"), start_worker(env, tmp_path, name="w2"):
        wait_for(lambda: len(runs(redis)) >= 4, 30, what="the flood to be under way")
        submitted = time.time()
        for _ in range(3):
            submit(JOB, "B", DURATION, tenant="B", connection=redis, settings=settings)
        wait_for(lambda: sum(r.tenant == "B" for r in runs(redis)) == 3, 30, what="B's jobs")
    done = runs(redis)
    first_b = min(r.start for r in done if r.tenant == "B")
    a_after = [r for r in done if r.tenant == "A" and submitted < r.start < first_b]
    assert len(a_after) <= 2, "B waited behind the flood"  # at most one A dequeue per worker already under way
    assert redis.llen("rq:queue:default~A") > 40  # A's backlog was far from drained
    assert first_b - submitted < 5.0


def test_kill_9_of_a_fair_worker_loses_nothing(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    jobs = [*enqueue(redis, JOB, "A", 0.3, tenant="A", count=10), *enqueue(redis, JOB, "B", 0.3, tenant="B", count=10)]
    env = worker_env(redis_url, tmp_path, JOBFLEET_STRANDED_AFTER="1")
    with start_worker(env, tmp_path, name="w1") as victim, start_worker(env, tmp_path, name="w2"):
        wait_for(lambda: len(runs(redis)) >= 3 and redis.hget("rq:worker:w1", "state") == b"busy", 30,
                 interval=0.02, what="w1 busy mid-flight")
        kill_tree(victim)

        def all_finished() -> bool:  # w2's own sweeps recover w1's job from its tenant queue
            return all(Job.fetch(j.id, connection=redis).get_status() == JobStatus.FINISHED for j in jobs)

        wait_for(all_finished, 60, interval=0.5, what="every job to finish after the kill")
    counts = Counter(r.job_id for r in runs(redis))
    assert set(counts) == {j.id for j in jobs}  # nothing lost
    assert sum(n - 1 for n in counts.values()) <= 1  # at most the job in flight on w1 ran twice (at least once)


def test_plain_rq_worker_and_rq_info_see_tenant_queues(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    (job,) = enqueue(redis, JOB, "acme", 0, tenant="acme")
    rq = str(Path(sys.executable).with_name("rq"))
    info = subprocess.run([rq, "info", "--url", redis_url, "--only-queues"], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "default~acme" in info.stdout
    env = worker_env(redis_url, tmp_path)
    with running([rq, "worker", "--burst", "--url", redis_url, "default~acme"], env,
                 tmp_path / "rq.log") as proc:
        proc.wait(60)
    assert Job.fetch(job.id, connection=redis).get_status() == JobStatus.FINISHED
    assert Queue("default~acme", connection=redis).count == 0
