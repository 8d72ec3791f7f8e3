"""Workers (a real RQ worker process running a real job) and autoscaler decisions from the Redis stream."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from redis import Redis

from dashboard.decisions import DECISIONS_STREAM
from tests.dashboard.conftest import BusyWorker


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_running_worker_and_stopping_its_job(client: TestClient, busy_worker: BusyWorker) -> None:
    job = busy_worker.job

    def listed() -> dict[str, Any] | None:
        rows = client.get("/api/workers").json()
        return next((w for w in rows if w["name"] == busy_worker.name and w["current_job"] == job.id), None)

    worker = wait_until(listed, what="the fleet worker to be listed with its job")
    assert worker["state"] == "busy"
    assert worker["queues"] == ["high"]
    assert worker["instance_id"] == busy_worker.instance_id
    assert worker["pid"] and worker["last_heartbeat"] and worker["birth"]

    counts = next(q for q in client.get("/api/queues").json() if q["name"] == "high")
    assert (counts["queued"], counts["started"]) == (0, 1)
    page = client.get("/api/queues/high/jobs", params={"state": "started"}).json()
    assert [j["id"] for j in page["jobs"]] == [job.id]
    wait_until(lambda: (client.get(f"/api/jobs/{job.id}").json()["progress"] or {}).get("percent") == 25,
               what="progress")

    response = client.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "stop requested"
    wait_until(lambda: client.get(f"/api/jobs/{job.id}").json()["status"] == "stopped", what="job stopped")
    busy_worker.proc.wait(timeout=30)
    assert client.get("/api/workers").json() == []


def test_scaling_decisions_newest_first_and_parsed(client: TestClient, redis: Redis) -> None:
    assert client.get("/api/scaling/decisions").json() == []
    for i in range(5):
        redis.xadd(DECISIONS_STREAM, {
            "ts": f"{1_700_000_000 + i}.5", "desired": str(i + 1), "in_service": "1", "booting": "0", "busy": "1",
            "queued": str(10 * i), "started": "1", "reason": f"backlog {10 * i} needs {i + 1}",
            "drained": json.dumps([f"i-{i}"] if i else []), "dry_run": "0",
            "inputs": json.dumps({"arrival_rate": 1.5 * i}),
        })
    rows = client.get("/api/scaling/decisions", params={"limit": 3}).json()
    assert [r["desired"] for r in rows] == [5, 4, 3]
    newest = rows[0]
    assert newest["ts"] == 1_700_000_004.5
    assert newest["drained"] == ["i-4"] and newest["inputs"] == {"arrival_rate": 6.0}
    assert newest["dry_run"] is False and newest["reason"] == "backlog 40 needs 5"


def test_malformed_decision_fields_come_back_as_text(client: TestClient, redis: Redis) -> None:
    redis.xadd(DECISIONS_STREAM, {"desired": "lots", "drained": "{not json", "dry_run": "true", "reason": "odd"})
    row = client.get("/api/scaling/decisions").json()[0]
    assert row["desired"] == "lots" and row["drained"] == "{not json" and row["dry_run"] is True
    assert row["ts"] > 1_600_000_000  # taken from the stream id


def test_decisions_key_of_the_wrong_type_is_reported(client: TestClient, redis: Redis) -> None:
    redis.set(DECISIONS_STREAM, "not a stream")
    response = client.get("/api/scaling/decisions")
    assert response.status_code == 500
    assert "cannot read jobfleet:autoscaler:decisions" in response.json()["error"]
