"""Read endpoints against a real Redis with real RQ jobs."""

from __future__ import annotations

import time
from datetime import datetime
from typing import get_args
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from dashboard.app import JobState
from dashboard.queries import STATES
from tests.dashboard import jobs
from tests.dashboard.conftest import Population, run_burst


def test_queue_counts_match_every_state(client: TestClient, population: Population) -> None:
    queues = {q["name"]: q for q in client.get("/api/queues").json()}
    assert list(queues)[:3] == ["high", "default", "low"]  # configured queues first, in priority order
    default = queues["default"]
    assert {k: default[k] for k in ("queued", "started", "scheduled", "deferred", "finished", "failed")} == {
        "queued": 4, "started": 0, "scheduled": 1, "deferred": 1, "finished": 2, "failed": 3,
    }
    assert 0 <= default["oldest_queued_age"] < 60
    assert queues["high"]["queued"] == 0 and queues["high"]["oldest_queued_age"] is None


def test_oldest_queued_age_is_the_head_job_age(client: TestClient, redis: Redis) -> None:
    queue = Queue("low", connection=redis)
    job = queue.enqueue(jobs.add, 1, 1)
    redis.hset(job.key, "enqueued_at", "2000-01-01T00:00:00.000000Z")
    queue.enqueue(jobs.add, 2, 2)
    age = next(q for q in client.get("/api/queues").json() if q["name"] == "low")["oldest_queued_age"]
    assert age > time.time() - 946_684_800 - 60


def test_unconfigured_queue_registered_by_rq_is_listed(client: TestClient, redis: Redis) -> None:
    Queue("reports", connection=redis).enqueue(jobs.add, 1, 2)
    names = [q["name"] for q in client.get("/api/queues").json()]
    assert names[-1] == "reports"


def test_queued_jobs_page_in_fifo_order_with_total(client: TestClient, population: Population) -> None:
    first = client.get("/api/queues/default/jobs", params={"state": "queued", "limit": 3}).json()
    assert first["total"] == 4
    assert [j["id"] for j in first["jobs"]] == [j.id for j in population.queued[:3]]
    second = client.get("/api/queues/default/jobs", params={"state": "queued", "offset": 3, "limit": 3}).json()
    assert [j["id"] for j in second["jobs"]] == [population.queued[3].id]
    assert second["jobs"][0]["func"] == "tests.dashboard.jobs.add"


def test_failed_page_newest_first_with_exception_line(client: TestClient, population: Population) -> None:
    page = client.get("/api/queues/default/jobs", params={"state": "failed"}).json()
    assert page["total"] == 3
    assert {j["id"] for j in page["jobs"]} == {j.id for j in population.failed}
    assert all(j["status"] == "failed" for j in page["jobs"])
    assert all(j["exception"].startswith("RuntimeError: failure") for j in page["jobs"])


def test_every_registry_state_lists_its_jobs(client: TestClient, population: Population) -> None:
    expected = {
        "finished": {j.id for j in population.finished},
        "scheduled": {population.scheduled.id},
        "deferred": {population.deferred.id},
        "started": set(),
        "canceled": set(),
    }
    for state, ids in expected.items():
        page = client.get("/api/queues/default/jobs", params={"state": state}).json()
        assert {j["id"] for j in page["jobs"]} == ids, state
        assert page["total"] == len(ids)


def test_job_detail_of_finished_and_failed_jobs(client: TestClient, population: Population) -> None:
    done = client.get(f"/api/jobs/{population.finished[1].id}").json()
    assert done["status"] == "finished"
    assert done["func"] == "tests.dashboard.jobs.add"
    assert done["args"] == "(1, 1)"
    assert done["result"] == "2"
    assert done["enqueued_at"] and done["started_at"] and done["ended_at"]
    assert done["executions"][0]["type"] == "successful"

    failed = client.get(f"/api/jobs/{population.failed[0].id}").json()
    assert failed["status"] == "failed"
    assert failed["result"] is None
    assert "Traceback" in failed["exception"] and "RuntimeError: failure 0" in failed["exception"]


def test_job_detail_shows_progress_meta_and_retries(client: TestClient, redis: Redis) -> None:
    from rq import Retry

    queue = Queue("default", connection=redis)
    job = queue.enqueue(jobs.half_done, "halfway", retry=Retry(max=2), meta={"owner": "billing"})
    run_burst(redis, queue)
    detail = client.get(f"/api/jobs/{job.id}").json()
    assert detail["progress"]["percent"] == 50.0 and detail["progress"]["message"] == "halfway"
    assert detail["meta"]["owner"] == "billing" and detail["meta"]["progress"] == detail["progress"]
    assert detail["retries_left"] == 2
    assert detail["result"] == "'done'"


def test_missing_job_data_is_reported_not_crashed(client: TestClient, population: Population, redis: Redis) -> None:
    redis.delete(population.queued[1].key)
    page = client.get("/api/queues/default/jobs", params={"state": "queued"}).json()
    assert page["jobs"][1] == {"id": population.queued[1].id, "status": "missing", "queue": "default",
                               "func": None, "enqueued_at": None, "started_at": None, "ended_at": None,
                               "progress": None, "exception": None, "scheduled_for": None}


def test_scheduled_jobs_show_when_they_run(client: TestClient, population: Population) -> None:
    page = client.get("/api/queues/default/jobs", params={"state": "scheduled"}).json()
    due = page["jobs"][0]["scheduled_for"]
    assert page["jobs"][0]["id"] == population.scheduled.id
    assert 3500 < datetime.fromisoformat(due).timestamp() - time.time() < 3700  # enqueued in 1 hour
    assert client.get(f"/api/jobs/{population.scheduled.id}").json()["scheduled_for"] == due


@pytest.mark.parametrize("name", ["my queue", "reports/eu", "очередь-ü", "a?b#c%d"])
def test_any_queue_name_rq_accepts_works(client: TestClient, redis: Redis, name: str) -> None:
    queue = Queue(name, connection=redis)
    queue.enqueue(jobs.boom, "in an odd queue")
    run_burst(redis, queue)
    queued = queue.enqueue(jobs.add, 1, 2)
    assert name in [q["name"] for q in client.get("/api/queues").json()]
    path = f"/api/queues/{quote(name, safe='')}"
    failed = client.get(f"{path}/jobs", params={"state": "failed"})
    assert failed.status_code == 200, failed.text
    assert failed.json()["queue"] == name and failed.json()["jobs"][0]["exception"] == "RuntimeError: in an odd queue"
    assert [j["id"] for j in client.get(f"{path}/jobs").json()["jobs"]] == [queued.id]
    task = client.post(f"{path}/requeue-failed")
    assert task.status_code == 202, task.text
    deadline = time.monotonic() + 20
    while client.get(f"/api/tasks/{task.json()['id']}").json()["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert queue.count == 2 and queue.failed_job_registry.count == 0


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok"}


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/queues", "/api/queues/{queue}/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/requeue",
                 "/api/jobs/{job_id}/cancel", "/api/queues/{queue}/requeue-failed", "/api/workers",
                 "/api/scaling/decisions", "/healthz"):
        assert path in paths, path
    assert "post" in paths["/api/jobs/{job_id}/requeue"] and "get" not in paths["/api/jobs/{job_id}/requeue"]


def test_undecodable_job_data_does_not_break_pages(client: TestClient, population: Population, redis: Redis) -> None:
    job = population.queued[0]
    redis.hset(job.key, mapping={"data": b"\x80not a pickle", "meta": b"\x80neither"})
    page = client.get("/api/queues/default/jobs", params={"state": "queued"})
    assert page.status_code == 200
    assert page.json()["jobs"][0]["func"].startswith("<undecodable job data")
    detail = client.get(f"/api/jobs/{job.id}")
    assert detail.status_code == 200
    assert detail.json()["args"].startswith("<undecodable job data")


def _commands(redis: Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in redis.info("commandstats").items()}


def test_queue_counts_cost_a_few_commands_per_queue_whatever_the_job_count(client: TestClient, redis: Redis) -> None:
    queue = Queue("default", connection=redis)
    costs = []
    for batch in (10, 500):
        queue.enqueue_many([Queue.prepare_data(jobs.add, (i, i)) for i in range(batch)])
        client.get("/api/queues")  # warm up the client's connection
        redis.config_resetstat()
        assert client.get("/api/queues").status_code == 200
        calls = _commands(redis)
        calls.pop("config|resetstat", None)
        calls.pop("info", None)
        assert not {"keys", "scan", "lrange", "zrange"} & set(calls), calls
        costs.append(sum(calls.values()))
    assert costs[0] == costs[1], costs
    assert costs[1] <= 3 * 9 + 5  # 3 queues: llen, lindex, 6 zcard, hget each; smembers of the queue set


def test_documented_states_are_the_states_listed() -> None:
    assert get_args(JobState) == STATES
