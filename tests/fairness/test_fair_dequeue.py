"""The fair dequeue script on a real Redis, in-process: it agrees with the pure policy, finds new and
re-queued tenants, applies weights, caps and the reservation at once, decays usage, keeps the reliable move,
and orders queues by priority mode and aging."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.intermediate_queue import IntermediateQueue

from jobfleet.settings import Settings, load_settings
from jobfleet.tenant_admin import set_cap, set_weight, tenant_rows
from jobfleet.tenants import fair_key, tenant_queue_name
from tests.fairness.helpers import enqueue
from tests.worker.helpers import worker_env
from worker.fair_policy import TenantState, choose_tenant, decayed, inflation, reservation_applies
from worker.fair_queue import FairQueue, fair_queue_class
from worker.priority import aged_first, weighted_order
from worker.recovery import sweep_abandoned

JOB = "tests.fairness.helpers.record"
QUEUES = ["high", "default", "low"]


def _settings(redis_url: str, tmp_path: Path, **extra: str) -> Settings:
    return load_settings(worker_env(redis_url, tmp_path, JOBFLEET_STRANDED_AFTER="1", **extra))


def _fq(settings: Settings, worker: str = "w") -> type[FairQueue]:
    fq = fair_queue_class(settings)
    fq.worker_name = worker
    return fq


def _take(redis: Redis, fq: type[FairQueue], queues: list[str] = QUEUES) -> tuple[str, str] | None:
    """One dequeue (moved into the intermediate list); ``(rq queue name, job id)``."""
    result = fq.dequeue_any([fq(q, connection=redis) for q in queues], None, connection=redis)
    if result is None:
        return None
    job, queue = result
    return queue.name, job.id


def _finish(redis: Redis, fq: type[FairQueue], name: str, job_id: str, run_s: float) -> None:
    """What the worker does when the job ends: take it out of the intermediate list, account it."""
    queue = Queue(name, connection=redis)
    redis.lrem(IntermediateQueue(queue.key, redis).key, 1, job_id)
    fq.job_ended(redis, queue.fetch_job(job_id), queue, run_s)  # type: ignore[arg-type]


def test_script_picks_what_the_pure_policy_picks(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    settings = _settings(redis_url, tmp_path, JOBFLEET_FAIR_HALF_LIFE="0")
    fq = _fq(settings)
    rng = random.Random(12)
    for case in range(25):
        redis.flushall()
        states = []
        for i in range(rng.randint(1, 6)):
            name = f"t{i}"
            queued, running = rng.randint(0, 2), rng.randint(0, 2)
            usage, weight = float(rng.randint(0, 20)), float(rng.choice([1, 2, 3]))
            cap = rng.choice([None, 1, 2])
            states.append(TenantState(name, queued, running, usage, weight, cap))
            if queued:
                enqueue(redis, JOB, name, 0, tenant=name, count=queued)
            for r in range(running):
                redis.zadd(f"rq:wip:default~{name}", {f"job{r}:exec": 1e12})
            redis.hset(fair_key("default", "usage"), name, usage)
            redis.hset("jobfleet:fair:weights", name, weight)
            if cap is not None:
                redis.hset("jobfleet:fair:caps", name, cap)
        expected = choose_tenant(states)
        taken = _take(redis, fq, ["default"])
        got = taken[0].split("~")[1] if taken else None
        assert got == expected, (case, states)


def test_new_tenant_is_served_next_and_shares_follow_weights(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    fq = _fq(_settings(redis_url, tmp_path))
    enqueue(redis, JOB, "A", 0, tenant="A", count=30)
    for _ in range(10):  # A alone builds up usage
        name, job_id = _take(redis, fq) or ("", "")
        _finish(redis, fq, name, job_id, 1.0)
    enqueue(redis, JOB, "B", 0, tenant="B", count=30)
    enqueue(redis, JOB, "C", 0, tenant="C", count=30)
    set_weight(redis, "C", 2)
    assert (_take(redis, fq) or ("",))[0] in ("default~B", "default~C")  # a late tenant first
    served: Counter[str] = Counter()
    for _ in range(40):
        name, job_id = _take(redis, fq) or ("", "")
        _finish(redis, fq, name, job_id, 1.0)
        served[name.split("~")[1]] += 1
    # B and C catch up on A's 10 s first; from then on run-seconds go 1:1:2
    usage = {r.tenant: r.usage_s for r in tenant_rows(redis, ["default"], 300.0)}
    assert abs(usage["C"] / usage["B"] - 2) < 0.25 and abs(usage["A"] / usage["B"] - 1) < 0.25


def test_weight_change_applies_to_the_next_dequeue(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    fq = _fq(_settings(redis_url, tmp_path))
    enqueue(redis, JOB, "A", 0, tenant="A", count=5)
    enqueue(redis, JOB, "B", 0, tenant="B", count=5)
    for _ in range(2):
        name, job_id = _take(redis, fq) or ("", "")
        _finish(redis, fq, name, job_id, 10.0 if name.endswith("A") else 1.0)
    ready = fair_key("default", "ready")
    assert redis.zscore(ready, "A") == pytest.approx(10, rel=1e-3)
    assert redis.zscore(ready, "B") == pytest.approx(1, rel=1e-3)
    set_weight(redis, "A", 100)  # A's score 0.1 now beats B's 1
    assert redis.zscore(ready, "A") == pytest.approx(0.1, rel=1e-3)
    assert (_take(redis, fq) or ("",))[0] == "default~A"
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        set_weight(redis, "A", 0)
    with pytest.raises(ValueError, match="must be a number > 0"):
        set_weight(redis, "A", "heavy")
    with pytest.raises(ValueError, match="must be >= 1"):
        set_cap(redis, "A", 0)
    with pytest.raises(ValueError, match="tenant 'a~b' must be"):
        set_weight(redis, "a~b", 1)


def test_cap_and_reservation_hold_back_tenants(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    fq = _fq(_settings(redis_url, tmp_path))
    enqueue(redis, JOB, "A", 0, tenant="A", count=5)
    set_cap(redis, "A", 2)
    assert [(_take(redis, fq) or ("",))[0] for _ in range(3)] == ["default~A", "default~A", ""]
    enqueue(redis, JOB, "B", 0, tenant="B", count=1)
    assert (_take(redis, fq) or ("",))[0] == "default~B"  # A stays capped, B is not
    set_cap(redis, "A", "none")
    assert (_take(redis, fq) or ("",))[0] == "default~A"

    redis.flushall()
    reserve = _fq(_settings(redis_url, tmp_path, JOBFLEET_FAIR_RESERVATION="0.25"), worker="w0")
    for i in range(4):  # 4 slots on the queue, 1 reserved; w0 (this one) idle, the 3 others busy
        redis.sadd("rq:workers:default", f"rq:worker:w{i}")
        redis.hset(f"rq:worker:w{i}", "state", "idle" if i == 0 else "busy")
    enqueue(redis, JOB, "A", 0, tenant="A", count=3)
    assert (_take(redis, reserve) or ("",))[0] == "default~A"  # A runs nothing yet: it may take the reserved slot
    enqueue(redis, JOB, "B", 0, tenant="B", count=1)
    redis.hset(fair_key("default", "usage"), "B", 1e9)
    redis.zadd(fair_key("default", "ready"), {"B": 1e9})  # B loses on usage...
    assert (_take(redis, reserve) or ("",))[0] == "default~B"  # ...but A (running one) may not take it
    assert _take(redis, reserve) is None  # the reserved slot stays free for a tenant without a running job
    redis.hset("rq:worker:w3", "state", "idle")
    assert (_take(redis, reserve) or ("",))[0] == "default~A"  # an unreserved slot is free again
    assert reservation_applies(4, 3, 0.25) and not reservation_applies(4, 1, 0.25)


def test_tenant_requeued_without_submit_is_found_and_recovered(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    settings = _settings(redis_url, tmp_path)
    fq = _fq(settings)
    (job,) = enqueue(redis, JOB, "A", 0, tenant="A")
    assert _take(redis, fq) == ("default~A", job.id)  # the worker dies before registering it (kill -9 window)
    assert redis.zscore(fair_key("default", "ready"), "A") is None  # A's queue is empty: not backlogged
    assert sweep_abandoned(redis, None, settings) == []  # first sighting of the stranded job
    recovered = []
    deadline = time.monotonic() + 10
    while not recovered and time.monotonic() < deadline:
        time.sleep(0.2)
        recovered = sweep_abandoned(redis, None, settings)  # every queue in rq:queues, tenant queues included
    assert recovered == [job.id]
    assert Queue("default~A", connection=redis).job_ids == [job.id]
    assert _take(redis, fq) == ("default~A", job.id)  # found again by the index scan, no submit needed


def test_usage_decays_with_the_half_life_and_rebases(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    fq = _fq(_settings(redis_url, tmp_path, JOBFLEET_FAIR_HALF_LIFE="10"))
    enqueue(redis, JOB, "A", 0, tenant="A", count=2)
    name, job_id = _take(redis, fq) or ("", "")
    _finish(redis, fq, name, job_id, 8.0)
    meta = fair_key("default", "meta")
    t0 = float(redis.hget(meta, "t0") or 0)
    redis.hset(meta, "t0", t0 - 20)  # as if charged 20 s (two half-lives) later than it was
    (row,) = [r for r in tenant_rows(redis, ["default"], 10.0) if r.tenant == "A"]
    assert row.usage_s == pytest.approx(8.0 / 4, rel=0.05)
    redis.hset(meta, "t0", t0 - 10 * 40)  # 40 half-lives: the next dequeue rebases
    assert _take(redis, fq) is not None
    assert float(redis.hget(meta, "t0") or 0) > t0
    # the old 8 s are gone (scaled by 2**-40); what is left is the new provisional charge (the mean run, 8 s)
    assert float(redis.hget(fair_key("default", "usage"), "A") or 0) == pytest.approx(8.0, rel=1e-3)
    assert decayed(8 * inflation(20, 0, 10), 20, 0, 10) == pytest.approx(8)


def test_weighted_priority_serves_low_and_aging_promotes_old_jobs(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    fq = _fq(_settings(redis_url, tmp_path, JOBFLEET_PRIORITY_MODE="weighted",
                       JOBFLEET_PRIORITY_WEIGHTS="high=6,default=3,low=1"))
    fq.rng = random.Random(3)
    for q in QUEUES:
        enqueue(redis, JOB, q, 0, queue=q, count=200)
    got = Counter((_take(redis, fq) or ("",))[0] for _ in range(200))
    assert got["low"] > 5 and got["high"] > got["default"] > got["low"]  # nobody starves, roughly 6:3:1
    assert abs(got["high"] / 200 - 0.6) < 0.12
    first = Counter(weighted_order(["a", "b"], {"a": 3, "b": 1}, random.Random(i))[0] for i in range(4000))
    assert abs(first["a"] / 4000 - 0.75) < 0.03

    redis.flushall()
    strict_aging = _fq(_settings(redis_url, tmp_path, JOBFLEET_PRIORITY_AGING="5"))
    (old,) = enqueue(redis, JOB, "old", 0, queue="low")
    enqueue(redis, JOB, "new", 0, queue="high", count=3)
    assert (_take(redis, strict_aging) or ("",))[0] == "high"
    redis.hset(old.key, "enqueued_at", "2020-01-01T00:00:00.000000Z")  # it has waited for years
    assert _take(redis, strict_aging) == ("low", old.id)


def test_default_tenant_and_plain_queue_keep_working(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    fq = _fq(_settings(redis_url, tmp_path))
    plain = Queue("default", connection=redis).enqueue(JOB, "x", 0)  # plain RQ enqueue, no tenant
    assert tenant_queue_name("default", "default") == "default"
    assert _take(redis, fq) == ("default", plain.id)
    assert IntermediateQueue(Queue("default", connection=redis).key, redis).get_job_ids() == [plain.id]
    assert _take(redis, fq) is None


def test_worker_maintenance_returns_jobs_stranded_in_tenant_queues(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    from worker.worker import JobfleetWorker

    settings = _settings(redis_url, tmp_path)
    worker = JobfleetWorker(["default"], connection=redis, settings=settings)
    assert worker.fair_queue is not None and worker.fair_queue.worker_name == worker.name
    (job,) = enqueue(redis, JOB, "A", 0, tenant="A")
    assert _take(redis, worker.fair_queue) == ("default~A", job.id)  # dequeued, then the worker "dies"
    deadline = time.monotonic() + 10
    while Queue("default~A", connection=redis).job_ids != [job.id]:
        assert time.monotonic() < deadline, "maintenance did not return the stranded job"
        worker.clean_registries()  # the first pass marks it, a later one (after 1 s) returns it
        time.sleep(0.3)


def test_the_client_registers_tenants_for_fair_workers(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    from jobfleet.submit import submit, submit_many

    settings = _settings(redis_url, tmp_path)
    fq = _fq(settings)
    submit_many([{"func": JOB, "args": ["A", 0], "tenant": "A"}] * 5, connection=redis, settings=settings)
    for _ in range(3):
        name, job_id = _take(redis, fq) or ("", "")
        _finish(redis, fq, name, job_id, 1.0)
    late = submit(JOB, "B", 0, tenant="B", connection=redis, settings=settings)
    assert late.origin == "default~B"
    assert redis.zscore(fair_key("default", "ready"), "B") == float("-inf")  # registered by the enqueue script
    fq.scan_every = 0.0  # no index scan: the ready set alone must bring B in
    assert _take(redis, fq) == ("default~B", late.id)


def test_aged_first_promotes_only_the_oldest_queue_past_the_limit() -> None:
    order = ["high", "default", "low"]
    assert aged_first(order, {"high": 0.5, "low": 9.0, "default": 6.0}, 5.0) == ["low", "high", "default"]
    assert aged_first(order, {"high": 0.5, "low": 4.0}, 5.0) == order  # none past the limit
    assert aged_first(order, {"low": 100.0}, 0.0) == order  # aging off
    assert aged_first(order, {}, 5.0) == order
