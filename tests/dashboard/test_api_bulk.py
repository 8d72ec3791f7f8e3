"""Bulk actions in the background: requeue-failed and empty-queue start a task whose progress can be polled."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from tests.dashboard import jobs
from tests.dashboard.conftest import Population, run_burst


def wait_done(client: TestClient, task: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    """Poll ``/api/tasks/<id>`` until the task leaves ``running``."""
    deadline = time.monotonic() + timeout
    while True:
        state = client.get(f"/api/tasks/{task['id']}").json()
        if state["state"] != "running":
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


def test_requeue_all_failed_runs_in_the_background(client: TestClient, population: Population, redis: Redis) -> None:
    response = client.post("/api/queues/default/requeue-failed")
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["kind"] == "requeue-failed" and started["queue"] == "default"
    done = wait_done(client, started)
    assert (done["state"], done["total"], done["done"], done["requeued"], done["skipped"]) == ("done", 3, 3, 3, [])
    queue = Queue("default", connection=redis)
    assert queue.failed_job_registry.get_job_count(cleanup=False) == 0
    assert {j.id for j in population.failed} <= set(queue.get_job_ids())
    run_burst(redis, queue)  # they fail again: they really were runnable jobs back on the queue
    assert queue.failed_job_registry.get_job_count(cleanup=False) == 3


def test_requeue_all_skips_expired_job_data_without_losing_others(
    client: TestClient, population: Population, redis: Redis
) -> None:
    gone = population.failed[1]
    redis.delete(gone.key)
    done = wait_done(client, client.post("/api/queues/default/requeue-failed").json())
    assert (done["requeued"], done["skipped"]) == (2, [gone.id])


def test_bulk_requeue_of_many_jobs_reports_progress_and_loses_none(client: TestClient, redis: Redis) -> None:
    queue = Queue("low", connection=redis)
    with redis.pipeline() as pipe:
        ids = [queue.enqueue(jobs.add, i, 0, pipeline=pipe).id for i in range(1500)]
        pipe.execute()
    registry = queue.failed_job_registry
    for job_id in ids:  # mark them failed without running 1500 jobs
        job = queue.fetch_job(job_id)
        assert job is not None
        queue.remove(job_id)
        registry.add(job, ttl=3600, exc_string="RuntimeError: synthetic")
    task = client.post("/api/queues/low/requeue-failed").json()
    seen = set()
    deadline = time.monotonic() + 60
    while (state := client.get(f"/api/tasks/{task['id']}").json())["state"] == "running":
        seen.add(state["done"])
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert state["total"] == state["done"] == state["requeued"] == 1500
    assert set(queue.get_job_ids()) == set(ids)
    again = client.post("/api/queues/low/requeue-failed").json()  # a new task, nothing left to do
    assert again["id"] != task["id"] and wait_done(client, again)["total"] == 0


def test_empty_queue_needs_confirmation_and_deletes_queued_jobs(
    client: TestClient, population: Population, redis: Redis
) -> None:
    refused = client.post("/api/queues/default/empty")
    assert refused.status_code == 409 and "confirm=default" in refused.json()["error"]
    assert client.post("/api/queues/default/empty", params={"confirm": "low"}).status_code == 409
    assert Queue("default", connection=redis).count == 4
    done = wait_done(client, client.post("/api/queues/default/empty", params={"confirm": "default"}).json())
    assert (done["state"], done["total"], done["deleted"]) == ("done", 4, 4)
    assert Queue("default", connection=redis).count == 0
    assert not any(redis.exists(j.key) for j in population.queued)
    assert all(redis.exists(j.key) for j in population.failed)  # other states untouched


def test_unknown_task_is_a_404(client: TestClient) -> None:
    response = client.get("/api/tasks/nope")
    assert response.status_code == 404 and "unknown task" in response.json()["error"]
