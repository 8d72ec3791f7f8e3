"""The daemon with real Redis: dry run, the decision stream, metrics, holding when Redis is gone, bad config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from autoscaler import metrics
from autoscaler.backends.local import LocalBackend
from autoscaler.daemon import DECISIONS_STREAM, Daemon
from jobfleet.connection import redis_connection
from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import load_settings
from tests.conftest import ROOT
from tests.conftest import test_env as child_env

FIELDS = {"ts", "desired", "in_service", "booting", "busy", "queued", "started", "reason", "drained", "dry_run",
          "inputs"}


def test_dry_run_decides_records_and_does_not_act(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    settings = load_settings(child_env(redis_url, tmp_path, JOBFLEET_QUEUES="default,low"))
    for _ in range(3):
        Queue("low", connection=redis).enqueue("jobfleet.demo.jobs.sleep", 1)
    backend = LocalBackend(settings, redis)
    try:
        decision = Daemon(settings, backend, redis, dry_run=True).step()
        assert decision.code == "scale_out" and decision.desired >= 1
        assert backend.instances == {}, "dry run started workers"
    finally:
        backend.close()
    ((_, raw),) = redis.xrange(DECISIONS_STREAM)
    entry = {k.decode(): v.decode() for k, v in raw.items()}
    assert set(entry) >= FIELDS
    assert entry["dry_run"] == "1" and entry["queued"] == "3" and json.loads(entry["drained"]) == []
    assert json.loads(entry["inputs"])["queued"] == 3
    assert metrics.DESIRED._value.get() == decision.desired
    assert metrics.DECISIONS.labels(reason="scale_out")._value.get() >= 1


def test_redis_unreachable_holds_and_says_why(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    settings = load_settings(child_env(own_redis.url, tmp_path, JOBFLEET_QUEUES="default", REDIS_RETRIES="0",
                                       REDIS_SOCKET_TIMEOUT="1", REDIS_CONNECT_TIMEOUT="1"))
    connection = redis_connection(settings)
    backend = LocalBackend(settings, connection)
    daemon = Daemon(settings, backend, connection)
    assert daemon.step().code == "steady"
    own_redis.kill()
    decision = daemon.step()
    assert decision.code == "stale" and decision.hold and "redis" in decision.reason and decision.drain == ()
    assert backend.instances == {}


def test_bad_config_exits_2_with_a_clear_message(redis_url: str, tmp_path: Path) -> None:
    env = child_env(redis_url, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "autoscaler", "--backend", "aws", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "JOBFLEET_ASG_NAME is required" in proc.stderr
    env["JOBFLEET_MIN_INSTANCES"] = "5"
    env["JOBFLEET_MAX_INSTANCES"] = "2"
    proc = subprocess.run([sys.executable, "-m", "autoscaler", "--once"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and "JOBFLEET_MIN_INSTANCES=5 is above JOBFLEET_MAX_INSTANCES=2" in proc.stderr


def test_daemon_learns_a_recurring_batch_and_pre_scales_before_the_next(
    redis: Redis, redis_url: str, tmp_path: Path,
) -> None:
    settings = load_settings(child_env(redis_url, tmp_path, JOBFLEET_QUEUES="batch", JOBFLEET_BOOT_TIME="60",
                                       JOBFLEET_AUTOSCALER_INTERVAL="3", JOBFLEET_MAX_INSTANCES="50"))
    q = Queue("batch", connection=redis)
    backend = LocalBackend(settings, redis)
    try:
        daemon = Daemon(settings, backend, redis, dry_run=True)
        t0, seen_expected = 2_000_000.0, []
        for step in range(0, 2400, 3):
            if step in (300, 900, 1500):
                q.enqueue_many([Queue.prepare_data("jobfleet.demo.jobs.sleep", (0,)) for _ in range(60)])
            decision = daemon.step(t0 + step)
            seen_expected.append((step, decision.inputs.get("burst_expected", 0.0)))
            if step in (320, 920):
                redis.delete(q.key)  # the batch was served (no workers here): only arrivals matter
        assert daemon.recurrence.period(t0 + 1600) == pytest.approx(600, abs=6)
        due = [s for s, e in seen_expected if e > 0]
        assert due and 2100 - 150 <= due[0] < 2100, due[:3]  # launched one lead before the 4th batch
    finally:
        backend.close()
