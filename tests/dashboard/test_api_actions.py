"""Write actions (requeue, requeue all, cancel) and their authorization, on real RQ jobs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from rq.job import Job

from dashboard.app import create_app
from jobfleet.settings import Settings
from tests.dashboard.conftest import Population, run_burst

TOKEN = "s3cret-token"


@pytest.fixture
def secured(settings: Settings) -> Iterator[TestClient]:
    """A client on an app that requires the bearer token for write actions."""
    with TestClient(create_app(settings.replace(dashboard_token=TOKEN))) as test_client:
        yield test_client


def test_requeue_moves_a_failed_job_back_to_its_queue(client: TestClient, population: Population, redis: Redis) -> None:
    job = population.failed[0]
    response = client.post(f"/api/jobs/{job.id}/requeue")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": job.id, "queue": "default", "status": "queued"}
    queue = Queue("default", connection=redis)
    assert job.id in queue.get_job_ids()
    assert job.id not in queue.failed_job_registry
    assert client.post(f"/api/jobs/{job.id}/requeue").status_code == 409  # not failed any more


def test_requeue_all_failed_of_a_queue(client: TestClient, population: Population, redis: Redis) -> None:
    response = client.post("/api/queues/default/requeue-failed")
    assert response.status_code == 200, response.text
    assert response.json() == {"queue": "default", "requeued": 3, "skipped": []}
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
    body = client.post("/api/queues/default/requeue-failed").json()
    assert body == {"queue": "default", "requeued": 2, "skipped": [gone.id]}


def test_cancel_queued_and_scheduled_jobs(client: TestClient, population: Population, redis: Redis) -> None:
    queued = population.queued[2]
    response = client.post(f"/api/jobs/{queued.id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert queued.id not in Queue("default", connection=redis).get_job_ids()
    scheduled = population.scheduled
    assert client.post(f"/api/jobs/{scheduled.id}/cancel").json()["status"] == "canceled"
    counts = next(q for q in client.get("/api/queues").json() if q["name"] == "default")
    assert (counts["queued"], counts["scheduled"], counts["canceled"]) == (3, 0, 2)
    assert client.post(f"/api/jobs/{queued.id}/cancel").status_code == 409
    assert Job.fetch(queued.id, connection=redis).get_status() == "canceled"


def test_write_actions_need_the_token_when_set(secured: TestClient, population: Population) -> None:
    job_id = population.failed[0].id
    cases = {
        None: 401,
        "Bearer wrong": 401,
        f"Basic {TOKEN}": 401,
        "Bearer": 401,
    }
    for header, status in cases.items():
        headers = {"Authorization": header} if header else {}
        for path in (f"/api/jobs/{job_id}/requeue", f"/api/jobs/{job_id}/cancel", "/api/queues/default/requeue-failed"):
            response = secured.post(path, headers=headers)
            assert response.status_code == status, (header, path)
            assert "token" in response.json()["error"].lower()
    assert secured.get(f"/api/jobs/{job_id}").json()["status"] == "failed"  # nothing happened
    assert secured.get("/api/queues").status_code == 200  # reads stay open
    ok = secured.post(f"/api/jobs/{job_id}/requeue", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["status"] == "queued"


def test_cross_origin_posts_are_refused(client: TestClient, population: Population) -> None:
    job_id = population.failed[0].id
    response = client.post(f"/api/jobs/{job_id}/requeue", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert "cross-origin" in response.json()["error"]
    same = client.post(f"/api/jobs/{job_id}/requeue", headers={"Origin": "http://testserver"})
    assert same.status_code == 200
