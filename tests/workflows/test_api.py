"""REST API v1 on the dashboard app: contract, pagination, idempotency (under concurrency), retry, cancel."""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import Redis
from rq import Queue, SimpleWorker

from dashboard.app import create_app
from jobfleet.settings import Settings
from tests.dashboard.conftest import dashboard_server  # noqa: F401  (fixture)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

J = "tests.workflows.jobs"
DIAMOND = {"name": "diamond", "tenant": "team-a", "tasks": [
    {"id": "a", "func": f"{J}.record", "args": ["log:api", "a"]},
    {"id": "b", "func": f"{J}.record", "args": ["log:api", "b"], "depends_on": ["a"]},
    {"id": "c", "func": f"{J}.child", "args": ["log:api"], "depends_on": ["a"], "array": {"size": 3}},
    {"id": "d", "func": f"{J}.record", "args": ["log:api", "d"], "depends_on": ["b", "c"]},
]}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        yield client


def burst(redis: Redis) -> None:
    """Run every queued job in this process (RQ's SimpleWorker)."""
    SimpleWorker([Queue(q, connection=redis) for q in ("high", "default", "low")], connection=redis).work(burst=True)


def test_submit_follow_and_list(api: TestClient, redis: Redis) -> None:
    created = api.post("/api/v1/jobs", json=DIAMOND)
    assert created.status_code == 201, created.text
    body = created.json()
    wid = body["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", wid) and body["status"] == "queued" and body["tenant"] == "team-a"
    assert body["counts"] == {"queued": 6, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
    detail = api.get(f"/api/v1/jobs/{wid}").json()
    assert [n["id"] for n in detail["nodes"]] == ["a", "b", "c", "d"]
    assert [n["layer"] for n in detail["nodes"]] == [0, 1, 1, 2]
    assert detail["nodes"][2]["size"] == 3 and detail["nodes"][2]["status"] == "queued"
    assert redis.hget(f"rq:job:{wid}-0-0", "meta") is not None
    from rq.job import Job

    assert Job.fetch(f"{wid}-0-0", connection=redis).meta["tenant"] == "team-a"
    burst(redis)
    done = api.get(f"/api/v1/jobs/{wid}").json()
    assert done["status"] == "succeeded" and done["counts"]["succeeded"] == 6 and done["ended_at"]
    assert {n["status"] for n in done["nodes"]} == {"succeeded"}
    page = api.get(f"/api/v1/jobs/{wid}/tasks", params={"offset": 2, "limit": 3}).json()
    assert page["total"] == 6
    assert [(t["node"], t["array_index"]) for t in page["tasks"]] == [("c", 0), ("c", 1), ("c", 2)]
    task = api.get(f"/api/v1/tasks/{wid}-2-1").json()
    assert task["status"] == "succeeded" and task["array_index"] == 1 and task["job"]["status"] == "finished"
    assert task["job"]["result"] == "1"

    later = [api.post("/api/v1/jobs", json={"name": f"n{i}", "tasks": [{"id": "x", "func": f"{J}.noop"}]}).json()["id"]
             for i in range(3)]
    listing = api.get("/api/v1/jobs", params={"limit": 2}).json()
    assert listing["total"] == 4 and [j["id"] for j in listing["jobs"]] == [later[2], later[1]]
    second = api.get("/api/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in second["jobs"]] == [later[0], wid]
    only_done = api.get("/api/v1/jobs", params={"status": "succeeded"}).json()
    assert [j["id"] for j in only_done["jobs"]] == [wid]


def test_errors_are_clear(api: TestClient, redis: Redis) -> None:
    assert api.get("/api/v1/jobs/" + "0" * 32).status_code == 404
    assert api.get("/api/v1/jobs/not-an-id").status_code == 422
    assert api.get("/api/v1/jobs", params={"status": "weird"}).status_code == 422
    assert api.get(f"/api/v1/tasks/{'0' * 32}-0-0").status_code == 404
    cyclic = {"tasks": [{"id": "a", "func": f"{J}.noop", "depends_on": ["b"]},
                        {"id": "b", "func": f"{J}.noop", "depends_on": ["a"]}]}
    response = api.post("/api/v1/jobs", json=cyclic)
    assert response.status_code == 422 and "dependency cycle" in response.json()["error"]
    too_big = {"tasks": [{"id": "a", "func": f"{J}.noop", "array": {"size": 10_001}}]}
    assert api.post("/api/v1/jobs", json=too_big).status_code == 422
    unimportable = api.post("/api/v1/jobs", json={"tasks": [{"id": "a", "func": "nope.nothing"}]})
    assert unimportable.status_code == 422 and "task 'a': cannot import" in unimportable.json()["error"]
    assert redis.keys("jobfleet:wf:*") == [] and redis.keys("rq:job:*") == []
    schema = api.get("/openapi.json").json()
    params = {p["name"]: p for p in schema["paths"]["/api/v1/jobs/{workflow_id}"]["get"]["parameters"]}
    assert params["workflow_id"]["schema"]["pattern"] == "^[0-9a-f]{32}$"
    assert "pattern" in schema["components"]["schemas"]["TaskIn"]["properties"]["id"]


def test_retry_and_cancel(api: TestClient, redis: Redis) -> None:
    body = {"tasks": [{"id": "a", "func": f"{J}.record", "args": ["log:r", "a"]},
                      {"id": "b", "func": f"{J}.fail_unless_flag", "args": ["log:r", "b"], "depends_on": ["a"],
                       "retry": 0},
                      {"id": "c", "func": f"{J}.record", "args": ["log:r", "c"], "depends_on": ["b"]}]}
    wid = api.post("/api/v1/jobs", json=body).json()["id"]
    burst(redis)
    failed = api.get(f"/api/v1/jobs/{wid}").json()
    assert failed["status"] == "failed"
    assert failed["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "canceled": 1}
    assert 0 < redis.ttl(f"jobfleet:wf:{wid}") <= 604800  # ended: kept for JOBFLEET_WORKFLOW_TTL
    redis.set("log:r:fixed", 1)
    retried = api.post(f"/api/v1/jobs/{wid}/retry").json()
    assert retried == {"id": wid, "status": "running", "requeued": 2}
    assert redis.ttl(f"jobfleet:wf:{wid}") == -1 and redis.ttl(f"jobfleet:wf:{wid}:n:1") == -1
    burst(redis)
    assert api.get(f"/api/v1/jobs/{wid}").json()["status"] == "succeeded"
    assert [v.decode() for v in redis.lrange("log:r", 0, -1)] == ["a", "b", "b", "c"]  # a is not re-run

    many = {"tasks": [{"id": "x", "func": f"{J}.noop", "array": {"size": 50}}]}
    wid2 = api.post("/api/v1/jobs", json=many).json()["id"]
    canceled = api.post(f"/api/v1/jobs/{wid2}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert api.get(f"/api/v1/jobs/{wid2}").json()["counts"]["canceled"] == 50
    assert api.post(f"/api/v1/jobs/{wid2}/cancel").status_code == 409
    burst(redis)  # the canceled children still in the queue are dropped when reached
    assert api.get(f"/api/v1/jobs/{wid2}").json()["counts"] == {
        "queued": 0, "running": 0, "succeeded": 0, "failed": 0, "canceled": 50}


def test_write_endpoints_need_the_token(settings: Settings) -> None:
    guarded = Settings(**{**settings.__dict__, "dashboard_token": "s3cret"})
    with TestClient(create_app(guarded), base_url="http://localhost") as client:
        body = {"tasks": [{"id": "a", "func": f"{J}.noop"}]}
        assert client.post("/api/v1/jobs", json=body).status_code == 401
        ok = client.post("/api/v1/jobs", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 201
        # with a token, reads need it too (job arguments are data) unless JOBFLEET_DASHBOARD_OPEN_READS=1
        assert client.get(f"/api/v1/jobs/{ok.json()['id']}").status_code == 401
        assert client.get(f"/api/v1/jobs/{ok.json()['id']}",
                          headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_readyz_needs_a_fresh_worker_heartbeat(api: TestClient, redis: Redis) -> None:
    not_ready = api.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["fresh_workers"] == 0
    worker = SimpleWorker([Queue("default", connection=redis)], connection=redis)
    worker.register_birth()
    worker.heartbeat()
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "redis": "ok", "fresh_workers": 1,
                                                         "reason": None}


def test_concurrent_posts_with_one_idempotency_key_make_one_workflow(
    dashboard_server: Any, redis: Redis  # noqa: F811
) -> None:
    url = dashboard_server()
    results: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        results.append(httpx.post(f"{url}/api/v1/jobs", json=DIAMOND, headers={"Idempotency-Key": "same"}, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in results}) == 1
    assert redis.zcard("jobfleet:wf:index") == 1
    assert redis.llen("rq:queue:default") == 1  # one root task queued, not eight
    other = {**DIAMOND, "name": "something else"}
    conflict = httpx.post(f"{url}/api/v1/jobs", json=other, headers={"Idempotency-Key": "same"}, timeout=30)
    assert conflict.status_code == 422 and "different request body" in conflict.json()["error"]


def test_ended_workflows_expire_and_leave_the_listing(settings: Settings, redis: Redis) -> None:
    import time

    short = Settings(**{**settings.__dict__, "workflow_ttl": 1})
    with TestClient(create_app(short), base_url="http://localhost") as client:
        body = {"tasks": [{"id": "a", "func": f"{J}.noop"}]}
        ended = client.post("/api/v1/jobs", json=body).json()["id"]
        burst(redis)
        waiting = client.post("/api/v1/jobs", json=body).json()["id"]
        assert redis.ttl(f"jobfleet:wf:{waiting}") == -1  # a workflow that has not ended is kept
        deadline = time.monotonic() + 15
        while redis.exists(f"jobfleet:wf:{ended}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert redis.zcard("jobfleet:wf:index") == 2  # the index entry goes on the next read of its page
        listing = client.get("/api/v1/jobs").json()
        assert [j["id"] for j in listing["jobs"]] == [waiting] and listing["total"] == 1
        assert client.get(f"/api/v1/jobs/{ended}").status_code == 404
        assert redis.zcard("jobfleet:wf:index") == 1 and redis.zcard("jobfleet:wf:index:succeeded") == 0
        assert not redis.keys(f"jobfleet:wf:{ended}*")
