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
from tests.dashboard.conftest import BusyWorker, Population

TOKEN = "s3cret-token"


@pytest.fixture
def secured(settings: Settings) -> Iterator[TestClient]:
    """A client on an app that requires the bearer token for write actions."""
    with TestClient(create_app(settings.replace(dashboard_token=TOKEN)), base_url="http://localhost") as test_client:
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


def test_every_api_request_needs_the_token_when_set(secured: TestClient, population: Population) -> None:
    job_id = population.failed[0].id
    cases = [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"]
    paths = [("POST", f"/api/jobs/{job_id}/requeue"), ("POST", f"/api/jobs/{job_id}/cancel"),
             ("DELETE", f"/api/jobs/{job_id}"), ("POST", "/api/queues/default/requeue-failed"),
             ("POST", "/api/queues/default/empty?confirm=default"), ("GET", "/api/queues"),
             ("GET", f"/api/jobs/{job_id}"), ("GET", "/api/queues/default/jobs?state=failed"), ("GET", "/api/workers")]
    for header in cases:
        headers = {"Authorization": header} if header else {}
        for method, path in paths:
            response = secured.request(method, path, headers=headers)
            assert response.status_code == 401, (header, method, path)
            assert "token" in response.json()["error"].lower()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.get(f"/api/jobs/{job_id}", headers=auth).json()["status"] == "failed"  # nothing happened
    assert secured.get("/healthz").status_code == 200 and secured.get("/").status_code == 200  # page loads
    ok = secured.post(f"/api/jobs/{job_id}/requeue", headers=auth)
    assert ok.status_code == 200 and ok.json()["status"] == "queued"


def test_open_reads_setting_lets_reads_through_but_not_writes(settings: Settings, population: Population) -> None:
    app = create_app(settings.replace(dashboard_token=TOKEN, dashboard_open_reads=True))
    with TestClient(app, base_url="http://localhost") as open_reads:
        assert open_reads.get("/api/queues").status_code == 200
        assert open_reads.post(f"/api/jobs/{population.failed[0].id}/requeue").status_code == 401


def test_delete_job_removes_it_from_queue_and_registries(
    client: TestClient, population: Population, redis: Redis
) -> None:
    queued, failed = population.queued[1], population.failed[2]
    for job in (queued, failed):
        response = client.delete(f"/api/jobs/{job.id}")
        assert response.status_code == 200, response.text
        assert response.json() == {"id": job.id, "queue": "default", "status": "deleted", "action": "deleted"}
        assert not redis.exists(job.key)
        assert client.get(f"/api/jobs/{job.id}").status_code == 404
    queue = Queue("default", connection=redis)
    assert queued.id not in queue.get_job_ids() and failed.id not in queue.failed_job_registry
    assert client.delete(f"/api/jobs/{queued.id}").status_code == 404


def test_delete_refuses_a_running_job(client: TestClient, busy_worker: BusyWorker) -> None:
    response = client.delete(f"/api/jobs/{busy_worker.job.id}")
    assert response.status_code == 409 and "stop it first" in response.json()["error"]
