"""The daemon with real Redis: dry run, the decision stream, metrics, holding when Redis is gone, bad config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
