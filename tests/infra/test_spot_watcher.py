"""Spot interruptions (worker/spot.py): a local IMDSv2 stand-in over HTTP, a real Redis and a real fleet
worker running a job; a job that cannot finish before the notice's deadline goes back on its queue."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from tests.conftest import spawn
from tests.conftest import test_env as child_env
from tests.dashboard import jobs
from worker.spot import Imds, Notice, handle_notice, must_requeue, parse_notice, watch

INSTANCE = "i-0spot0000000000"


class FakeImds:
    """IMDSv2 on a free local port: a token for PUT /latest/api/token (required on every GET), the notices."""

    def __init__(self) -> None:
        self.notices: dict[str, str] = {}
        self.unauthorized = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                self._send(200, "tok-123" if self.path == "/latest/api/token" else "")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != "tok-123":
                    fake.unauthorized += 1
                    self._send(401, "")
                    return
                body = fake.notices.get(self.path.removeprefix("/latest/"))
                self._send(200, body) if body is not None else self._send(404, "")

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    fake = FakeImds()
    yield fake
    fake.server.shutdown()


def test_decision_is_pure() -> None:
    notice = parse_notice("interruption", '{"action": "terminate", "time": "2026-12-02T06:20:00Z"}', now=0)
    assert notice.deadline == datetime(2026, 12, 2, 6, 20, tzinfo=UTC).timestamp() and notice.action == "terminate"
    assert parse_notice("interruption", "garbage", now=1000.0).deadline == 1120.0
    assert parse_notice("rebalance", '{"noticeTime": "x"}', now=0) == Notice("rebalance")
    assert must_requeue(started_at=100, timeout=190, deadline=300)  # may still run at 290 > 300 - margin
    assert not must_requeue(started_at=100, timeout=60, deadline=300)  # done by 160 at the latest
    assert must_requeue(started_at=None, timeout=60, deadline=300)


def test_imds_client_uses_a_session_token_and_reads_notices(imds: FakeImds) -> None:
    client = Imds(imds.url)
    assert client.notice(time.time()) is None
    imds.notices["meta-data/events/recommendations/rebalance"] = '{"noticeTime": "2026-12-02T06:00:00Z"}'
    assert client.notice(time.time()) == Notice("rebalance")
    imds.notices["meta-data/spot/instance-action"] = '{"action": "stop", "time": "2026-12-02T06:20:00Z"}'
    notice = client.notice(time.time())
    assert notice is not None and notice.kind == "interruption" and notice.action == "stop"
    assert imds.unauthorized == 0
    assert Imds("http://127.0.0.1:9").notice(time.time()) is None  # IMDS unreachable: no notice, no crash


def _worker(redis_url: str, tmp_path: Path, name: str) -> tuple[object, Path]:
    env = child_env(redis_url, tmp_path, JOBFLEET_INSTANCE_ID=INSTANCE)
    log = tmp_path / f"{name}.log"
    return spawn(["-m", "worker", "--queues", "high", "--name", name], env, log), log


def _wait(predicate: object, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: {log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_interruption_requeues_a_job_that_cannot_finish_and_stops_taking_jobs(
    imds: FakeImds, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    queue = Queue("high", connection=redis)
    long_job = queue.enqueue(jobs.wait_for_key, "spot-test:never", 120, job_timeout=600)
    proc, log = _worker(redis_url, tmp_path, "spot-w1")
    try:
        _wait(lambda: Job.fetch(long_job.id, connection=redis).get_status() == "started", "job started", log)
        later = queue.enqueue(jobs.add, 1, 2)  # must not be taken by this host any more
        deadline = datetime.fromtimestamp(time.time() + 60, tz=UTC).isoformat().replace("+00:00", "Z")
        imds.notices["meta-data/spot/instance-action"] = json.dumps({"action": "terminate", "time": deadline})
        stopped: list[str] = []

        def stop_workers() -> None:  # what `systemctl stop` does to each slot: one SIGTERM
            stopped.append("stop")
            os.kill(proc.pid, signal.SIGTERM)  # type: ignore[attr-defined]

        notice = watch(redis, Imds(imds.url), INSTANCE, poll=0.1, stop_workers=stop_workers, max_polls=50)
        assert notice is not None and notice.kind == "interruption" and stopped == ["stop"]
        _wait(lambda: proc.poll() is not None, "worker exits", log)  # type: ignore[attr-defined]
        assert proc.returncode == 0  # type: ignore[attr-defined]
        fresh = Job.fetch(long_job.id, connection=redis)
        assert fresh.get_status() == "queued"  # back on its queue for another host, not failed
        assert queue.get_job_ids() == [long_job.id, later.id]  # at the front; the new job was never taken
        assert "spot_requeue" in log.read_text() or "job_requeued" in log.read_text()
    finally:
        if proc.poll() is None:  # type: ignore[attr-defined]
            proc.kill()  # type: ignore[attr-defined]
            proc.wait(timeout=10)  # type: ignore[attr-defined]


def test_a_job_that_can_finish_in_time_is_left_to_finish(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    queue = Queue("high", connection=redis)
    job = queue.enqueue(jobs.wait_for_key, "spot-test:release", 30, job_timeout=5)
    proc, log = _worker(redis_url, tmp_path, "spot-w2")
    try:
        _wait(lambda: Job.fetch(job.id, connection=redis).get_status() == "started", "job started", log)
        signals: list[int] = []
        requeued = handle_notice(
            redis, Notice("interruption", time.time() + 120), INSTANCE,
            stop_workers=lambda: os.kill(proc.pid, signal.SIGTERM),  # type: ignore[attr-defined]
            signal_worker=signals.append,
        )
        assert requeued == [] and signals == []  # its timeout ends before the deadline
        redis.set("spot-test:release", 1)
        assert proc.wait(timeout=30) == 0  # type: ignore[attr-defined]
        assert Job.fetch(job.id, connection=redis).get_status() == "finished"
    finally:
        if proc.poll() is None:  # type: ignore[attr-defined]
            proc.kill()  # type: ignore[attr-defined]
            proc.wait(timeout=10)  # type: ignore[attr-defined]
