"""Per-queue collector against a real Redis with real RQ queues and registries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from redis import Redis
from rq import Queue, Worker
from rq.registry import DeferredJobRegistry, FailedJobRegistry

from jobfleet.rq_time import parse_rq_time
from observability.queue_collector import QueueCollector, register_queue_collector


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for metric in registry.collect():
        for s in metric.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counts_every_state_and_the_oldest_age(redis: Redis) -> None:
    now = datetime.now(UTC).timestamp()
    q = Queue("alpha", connection=redis)
    first = q.enqueue("tests.observability.jobs.noop")
    q.enqueue("tests.observability.jobs.noop")
    # Make the head job 42 s old without sleeping.
    redis.hset(first.key, "enqueued_at", (datetime.now(UTC) - timedelta(seconds=42)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    q.enqueue_in(timedelta(hours=1), "tests.observability.jobs.noop")
    q.enqueue("tests.observability.jobs.noop", depends_on=first)
    FailedJobRegistry("alpha", connection=redis).add(q.create_job("tests.observability.jobs.boom"), ttl=600)
    Queue("empty", connection=redis)

    registry = CollectorRegistry()
    register_queue_collector(registry, redis, ["alpha", "empty"], target_wait=30)
    values = _samples(registry)
    assert values[("jobfleet_queue_jobs", (("queue", "alpha"), ("state", "queued")))] == 2
    assert values[("jobfleet_queue_jobs", (("queue", "alpha"), ("state", "scheduled")))] == 1
    assert values[("jobfleet_queue_jobs", (("queue", "alpha"), ("state", "deferred")))] == len(
        DeferredJobRegistry("alpha", connection=redis)
    ) == 1
    assert values[("jobfleet_queue_jobs", (("queue", "alpha"), ("state", "failed")))] == 1
    assert values[("jobfleet_queue_jobs", (("queue", "alpha"), ("state", "started")))] == 0
    age = values[("jobfleet_queue_oldest_job_age_seconds", (("queue", "alpha"),))]
    assert 42 <= age < 42 + (datetime.now(UTC).timestamp() - now) + 5
    assert values[("jobfleet_queue_oldest_job_age_seconds", (("queue", "empty"),))] == 0
    assert values[("jobfleet_queue_jobs", (("queue", "empty"), ("state", "queued")))] == 0
    assert values[("jobfleet_target_wait_seconds", ())] == 30
    assert values[("jobfleet_queue_exporter_up", ())] == 1


def test_counts_only_live_workers(redis: Redis) -> None:
    q = Queue("beta", connection=redis)
    alive = Worker([q], connection=redis, name="alive")
    alive.register_birth()
    dead = Worker([q], connection=redis, name="dead")
    dead.register_birth()
    redis.delete(dead.key)  # heartbeat expired, nobody cleaned the registration up
    collector = QueueCollector(redis, ["beta"])
    registry = CollectorRegistry()
    registry.register(collector)
    assert _samples(registry)[("jobfleet_queue_workers", (("queue", "beta"),))] == 1


def test_discovers_queues_when_none_given_and_uses_o_queues_commands(redis: Redis) -> None:
    for name in ("q1", "q2", "q3"):
        Queue(name, connection=redis).enqueue("tests.observability.jobs.noop")
    registry = CollectorRegistry()
    register_queue_collector(registry, redis)
    before = int(redis.info("stats")["total_commands_processed"])
    text = generate_latest(registry).decode()
    commands = int(redis.info("stats")["total_commands_processed"]) - before - 1  # minus our INFO
    for name in ("q1", "q2", "q3"):
        assert f'jobfleet_queue_jobs{{queue="{name}",state="queued"}} 1.0' in text
    # SMEMBERS + 7 per queue + 1 HGET per non-empty head: no per-job scanning.
    assert commands == 1 + 3 * 7 + 3


def test_redis_down_reports_exporter_down_instead_of_failing_the_scrape() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    registry = CollectorRegistry()
    register_queue_collector(registry, dead, ["x"])
    assert _samples(registry) == {("jobfleet_queue_exporter_up", ()): 0.0}


def test_bad_target_wait_is_rejected(redis: Redis) -> None:
    with pytest.raises(ValueError, match="target_wait must be > 0"):
        QueueCollector(redis, ["a"], target_wait=0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"2026-01-02T03:04:05.250000Z", 1767323045.25), ("2026-01-02T03:04:05Z", 1767323045.0), (b"junk", None),
     (None, None)],
)
def test_parse_rq_time(raw: bytes | str | None, expected: float | None) -> None:
    assert parse_rq_time(raw) == expected
