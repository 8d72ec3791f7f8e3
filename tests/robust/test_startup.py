"""Started while Redis is away: long-running processes wait and retry; commands print one line and exit 3."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from redis import Redis
from rq import Worker
from rq.job import JobStatus

from jobfleet.connection import REDIS_UNREACHABLE_EXIT, redacted_url
from jobfleet.embedded_redis import EmbeddedRedis, free_port
from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.conftest import ROOT, spawn
from tests.worker.helpers import stop, wait_for, worker_env


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _lines(log: Path, needle: str) -> int:
    return sum(needle in line for line in log.read_text(errors="replace").splitlines()) if log.exists() else 0


def test_redacted_url_drops_the_password() -> None:
    assert redacted_url("redis://:s3cret@cache:6379/0") == "redis://cache:6379/0"
    assert redacted_url("rediss://app:s3cret@cache:6379/0") == "rediss://app@cache:6379/0"
    assert redacted_url("redis://cache:6379/0") == "redis://cache:6379/0"


def test_every_long_running_process_waits_for_redis_then_works(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    dash_port, exporter_port = free_port(), free_port()
    env = worker_env(url, tmp_path, JOBFLEET_DASHBOARD_PORT=str(dash_port), JOBFLEET_REDIS_BACKOFF_CAP="1")
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "autoscaler", "dashboard", "exporter")}
    procs = {
        "worker": spawn(["-m", "worker", "--name", "patient"], env, logs["worker"]),
        "autoscaler": spawn(["-m", "autoscaler", "--backend", "local", "--dry-run"], env, logs["autoscaler"]),
        "dashboard": spawn(["-m", "dashboard"], env, logs["dashboard"]),
        "exporter": spawn(["-m", "observability.exporter", "--redis-url", url, "--port", str(exporter_port)], env,
                          logs["exporter"]),
    }
    server = EmbeddedRedis(tmp_path / "redis", port=port)
    try:
        for name in ("worker", "autoscaler", "dashboard"):
            wait_for(lambda n=name: _lines(logs[n], "redis_waiting") >= 2, 30, what=f"{name} retries")  # type: ignore[misc]
        wait_for(lambda: _lines(logs["exporter"], "cannot reach Redis at") >= 2, 30, what="exporter retries")
        assert all(proc.poll() is None for proc in procs.values()), {n: p.poll() for n, p in procs.items()}
        for log in logs.values():
            assert "Traceback" not in log.read_text(errors="replace")
        server.start()
        redis = Redis.from_url(url)
        wait_for(lambda: [w.name for w in Worker.all(connection=redis)] == ["patient"], 30, what="worker registers")
        job = submit("jobfleet.demo.jobs.noop", connection=redis, settings=load_settings(env))
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 30, what="job runs")
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{dash_port}/healthz"), 30, what="dashboard serves")
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{exporter_port}/metrics"), 30, what="exporter serves")
        wait_for(lambda: redis.xlen("jobfleet:autoscaler:decisions") >= 1, 30, what="autoscaler decides")
    finally:
        for proc in procs.values():
            stop(proc)
        server.stop()
    assert all(proc.returncode is not None for proc in procs.values())


COMMANDS = [
    ["-m", "worker", "dlq", "list"],
    ["-m", "worker", "sweep"],
    ["-m", "worker", "submit", "jobfleet.demo.jobs.noop"],
    ["-m", "jobfleet", "dlq", "list"],
    ["-m", "jobfleet", "submit", "jobfleet.demo.jobs.noop"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[1:]))
def test_commands_on_unreachable_redis_print_one_line_and_exit_3(args: list[str], tmp_path: Path) -> None:
    port = free_port()
    env = worker_env(f"redis://:hunter2@127.0.0.1:{port}/0", tmp_path, REDIS_RETRIES="1")
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == REDIS_UNREACHABLE_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"jobfleet: cannot reach Redis at redis://127.0.0.1:{port}/0: "), lines[0]
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(("extra", "args", "needle"), [
    ({"JOBFLEET_PERMANENT_ERRORS": "no.such.Error"}, [], "JOBFLEET_PERMANENT_ERRORS='no.such.Error'"),
    ({"JOBFLEET_PERMANENT_ERRORS": "NoSuchError"}, [], "JOBFLEET_PERMANENT_ERRORS='NoSuchError'"),
    ({"JOBFLEET_WORKER_CLASS": "no.such.Worker"}, [], "JOBFLEET_WORKER_CLASS='no.such.Worker'"),
    ({"JOBFLEET_WORKER_CLASS": "jobfleet.settings.Settings"}, [], "not an rq.Worker subclass"),
    ({}, ["--queues", "bad name!"], "--queues='bad name!'"),
    ({}, ["sweep", "--queues", "ok,bad name!"], "--queues='ok,bad name!'"),
])
def test_bad_worker_settings_and_queues_get_one_line_and_exit_2(
    extra: dict[str, str], args: list[str], needle: str, tmp_path: Path
) -> None:
    env = worker_env(f"redis://127.0.0.1:{free_port()}/0", tmp_path, **extra)
    result = subprocess.run([sys.executable, "-m", "worker", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobfleet: ") and needle in lines[0], result.stderr
