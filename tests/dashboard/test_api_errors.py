"""Bad input gets a 4xx with a clear JSON error, never a 500 or a stack trace."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dashboard.app import create_app
from jobfleet.embedded_redis import free_port
from jobfleet.settings import Settings
from tests.dashboard.conftest import Population


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "words"),
    [
        ("get", "/api/queues/nope/jobs", {}, 404, "unknown queue 'nope'"),
        ("get", "/api/queues/bad%20name!/jobs", {}, 404, "unknown queue 'bad name!'"),  # a valid RQ name
        ("get", "/api/queues/bad%01name/jobs", {}, 422, "path parameter 'queue': String should match pattern"),
        ("get", "/api/queues/" + "q" * 600 + "/jobs", {}, 422, "at most 512 characters"),
        ("post", "/api/queues/default/empty", {}, 409, "?confirm=default"),
        ("delete", "/api/jobs/no-such-job", {}, 404, "unknown job"),
        ("get", "/api/tasks/no-such-task", {}, 404, "unknown task"),
        ("get", "/api/queues/default/jobs", {"state": "exploded"}, 422, "parameter 'state': Input should be 'queued'"),
        ("get", "/api/queues/default/jobs", {"limit": 0}, 422, "limit"),
        ("get", "/api/queues/default/jobs", {"limit": 501}, 422, "less than or equal to 500"),
        ("get", "/api/queues/default/jobs", {"offset": -1}, 422, "offset"),
        ("get", "/api/queues/default/jobs", {"limit": "ten"}, 422, "valid integer"),
        ("get", "/api/jobs/no-such-job", {}, 404, "unknown job 'no-such-job'"),
        ("get", "/api/jobs/bad$id", {}, 422, "path parameter 'job_id': String should match pattern"),
        ("post", "/api/jobs/no-such-job/requeue", {}, 404, "unknown job"),
        ("post", "/api/jobs/no-such-job/cancel", {}, 404, "unknown job"),
        ("post", "/api/queues/nope/requeue-failed", {}, 404, "unknown queue"),
        ("get", "/api/scaling/decisions", {"limit": 100000}, 422, "limit"),
        ("get", "/api/nothing-here", {}, 404, "no such endpoint"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    client: TestClient, population: Population, method: str, path: str, params: dict[str, object], status: int,
    words: str,
) -> None:
    response = client.request(method.upper(), path, params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert words in body["error"]
    assert "Traceback" not in body["error"]


def test_actions_are_post_only(client: TestClient, population: Population) -> None:
    job_id = population.failed[0].id
    assert client.get(f"/api/jobs/{job_id}/requeue").status_code == 405
    assert client.get(f"/api/jobs/{job_id}/cancel").status_code == 405
    assert client.get("/api/queues/default/requeue-failed").status_code == 405
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "failed"


def test_requeue_of_a_job_that_is_not_failed_is_a_conflict(client: TestClient, population: Population) -> None:
    response = client.post(f"/api/jobs/{population.finished[0].id}/requeue")
    assert response.status_code == 409
    assert "is not failed (status: finished)" in response.json()["error"]


def test_cancel_of_a_finished_job_is_a_conflict(client: TestClient, population: Population) -> None:
    response = client.post(f"/api/jobs/{population.finished[0].id}/cancel")
    assert response.status_code == 409
    assert "is finished" in response.json()["error"]


def test_redis_down_is_a_503_with_a_message(settings: Settings) -> None:
    dead = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_retries=0, redis_connect_timeout=0.5)
    with TestClient(create_app(dead), base_url="http://localhost", raise_server_exceptions=False) as client:
        response = client.get("/api/queues")
        assert response.status_code == 503
        assert response.json() == {"error": "Redis is unavailable, try again shortly"}
        assert client.get("/healthz").status_code == 503
