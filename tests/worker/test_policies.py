"""Retry policy, instance id (IMDSv2 over real HTTP), JSON logs and progress validation."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from jobfleet.errors import PermanentError
from jobfleet.logs import JsonFormatter, log_event
from jobfleet.progress import get_progress, report_progress
from jobfleet.retry import backoff_intervals, default_retry
from jobfleet.settings import Settings
from worker.instance_id import ec2_instance_id, resolve_instance_id
from worker.retry_policy import is_permanent, resolve_exception_types


def test_backoff_is_exponential_capped_and_jittered(settings: Settings) -> None:
    s = settings.replace(retry_max=6, retry_base=1.0, retry_cap=10.0, retry_jitter=0.5)
    ceilings = [1, 2, 4, 8, 10, 10]
    for seed in range(20):
        got = backoff_intervals(s, random.Random(seed))
        assert len(got) == 6
        for value, ceiling in zip(got, ceilings, strict=True):
            assert 0.5 * ceiling <= value <= ceiling
    assert backoff_intervals(s.replace(retry_jitter=0.0), random.Random(1)) == [1, 2, 4, 8, 10, 10]
    assert default_retry(s.replace(retry_max=0)) is None
    retry = default_retry(s)
    assert retry is not None and retry.max == 6


def test_permanent_error_names(settings: Settings) -> None:
    types = resolve_exception_types(("ValueError", "json.JSONDecodeError"))
    assert is_permanent(PermanentError, types) and is_permanent(json.JSONDecodeError, types)
    assert is_permanent(UnicodeDecodeError, types)  # a ValueError subclass
    assert not is_permanent(RuntimeError, types) and not is_permanent(None, types)
    with pytest.raises(ValueError, match=r"cannot import 'nosuch\.Error'"):
        resolve_exception_types(("nosuch.Error",))
    with pytest.raises(ValueError, match="'len' is not an exception class"):
        resolve_exception_types(("len",))


class _Imds(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        assert self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
        self._reply(b"tok")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "tok":
            self.send_response(401)
            self.end_headers()
            return
        self._reply(b"i-0abc123")

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_instance_id_order(settings: Settings, imds: str) -> None:
    assert ec2_instance_id(imds) == "i-0abc123"
    assert resolve_instance_id(settings.replace(instance_id=None), imds) == "i-0abc123"
    assert resolve_instance_id(settings.replace(instance_id="pinned"), imds) == "pinned"
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    assert ec2_instance_id(dead) is None
    assert resolve_instance_id(settings.replace(instance_id=None), dead) == socket.gethostname()


def test_json_log_line_has_the_job_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("jobfleet.worker")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log_event("job_finished", job_id="j1", queue="default", function="f", attempt=2, duration_s=0.5,
                  outcome="finished", trace_id=None)
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().strip())
    assert line["event"] == "job_finished" and line["level"] == "info" and line["attempt"] == 2
    assert {"ts", "job_id", "queue", "function", "duration_s", "outcome"} <= set(line)
    assert "trace_id" not in line  # absent values are left out


def test_progress_validation_and_storage(redis: Redis, tmp_path: Path) -> None:
    job = Queue("default", connection=redis).enqueue("jobfleet.demo.jobs.noop")
    report_progress(40, "reading", job=job)
    assert get_progress(job) == {"percent": 40.0, "message": "reading", "at": pytest.approx(job.meta["progress"]["at"])}
    for bad in (-1, 101, float("nan"), "50", True):
        with pytest.raises(ValueError, match="progress percent must be"):
            report_progress(bad, job=job)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="inside a running job"):
        report_progress(10)
    assert get_progress(Queue("default", connection=redis).enqueue("jobfleet.demo.jobs.noop")) is None
