"""Proof against a real Prometheus: it scrapes real worker processes, the queue exporter and the autoscaler
while jobs run; then every dashboard and alert expression is evaluated over its HTTP API and must return data.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from redis import Redis
from rq import Queue

from jobfleet.embedded_redis import free_port
from tests.conftest import ROOT, spawn
from tests.conftest import test_env as make_env
from tests.observability.artefacts import ALERTS, all_exprs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prometheus")]
QUEUES = ("high", "default")
AUTOSCALER_MAIN = ROOT / "autoscaler" / "__main__.py"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package `prometheus`; `make test` installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _wait(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Prom:
    """A Prometheus server of this test."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql} | ({"time": str(at)} if at else {})
        body = self.client.get("/api/v1/query", params=params).json()
        assert body["status"] == "success", f"{promql}: {body}"
        return body["data"]["result"]  # type: ignore[no-any-return]

    def query_range(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        params = {"query": promql, "start": str(start), "end": str(end), "step": "1"}
        body = self.client.get("/api/v1/query_range", params=params).json()
        assert body["status"] == "success", f"{promql}: {body}"
        return body["data"]["result"]  # type: ignore[no-any-return]


def _has_numbers(result: list[dict[str, Any]]) -> bool:
    for series in result:
        values = series.get("values") or [series["value"]]
        if any(not math.isnan(float(v)) for _, v in values):
            return True
    return False


@pytest.fixture
def fleet(redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Prometheus + 2 worker processes (one host endpoint) + queue exporter + autoscaler (when it exists)."""
    prometheus = _binary("prometheus")
    ports = {name: free_port() for name in ("prometheus", "workers", "queues", "autoscaler")}
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = make_env(
        redis_url, tmp_path,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), JOBFLEET_METRICS_PORT=str(ports["workers"]),
        JOBFLEET_AUTOSCALER_METRICS_PORT=str(ports["autoscaler"]), JOBFLEET_QUEUES=",".join(QUEUES),
        JOBFLEET_RETRY_MAX="1", JOBFLEET_RETRY_BASE="0", JOBFLEET_TARGET_WAIT="1", JOBFLEET_LOG_LEVEL="warning",
        JOBFLEET_AUTOSCALER_INTERVAL="2",
    )
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": f"jobfleet-{name}", "static_configs": [{"targets": [f"127.0.0.1:{ports[name]}"]}]}
            for name in ("workers", "queues", "autoscaler")
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["prometheus"] = subprocess.Popen(
            [prometheus, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--log.level=warn"],
            stdout=(logs / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
        )
        for i in range(2):
            procs[f"worker{i}"] = spawn(["-m", "worker", "--queues", ",".join(QUEUES)], env, logs / f"worker{i}.log")
        procs["exporter"] = spawn(
            ["-m", "observability.exporter", "--redis-url", redis_url, "--port", str(ports["queues"]),
             "--target-wait", "1"], env, logs / "exporter.log",
        )
        if AUTOSCALER_MAIN.exists():
            procs["autoscaler"] = spawn(["-m", "autoscaler", "--backend", "local", "--dry-run"], env,
                                        logs / "autoscaler.log")
        prom = Prom(ports["prometheus"])
        _wait("prometheus ready", lambda: prom.client.get("/-/ready").status_code == 200)
        yield {"prom": prom, "procs": procs, "logs": logs, "redis_url": redis_url}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _logs(fleet: dict[str, Any]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(fleet["logs"].iterdir()))


def test_every_dashboard_and_alert_expression_returns_data(fleet: dict[str, Any]) -> None:
    prom: Prom = fleet["prom"]
    procs: dict[str, subprocess.Popen[bytes]] = fleet["procs"]
    autoscaler = "autoscaler" in procs
    expected_up = 3 if autoscaler else 2
    _wait("targets up", lambda: len(prom.query('up{job=~"jobfleet-.*"} == 1')) == expected_up,
          timeout=30)
    connection = Redis.from_url(fleet["redis_url"])
    queues = {name: Queue(name, connection=connection) for name in QUEUES}
    Queue("orphan", connection=connection).enqueue("tests.observability.jobs.noop")  # nobody listens: alerts
    start = time.time()
    for _ in range(12):  # ~6 s of mixed load: fast, slower, failing (retried once, then DLQ)
        queues["high"].enqueue("tests.observability.jobs.nap", 0.05)
        queues["default"].enqueue("tests.observability.jobs.nap", 0.2)
        queues["default"].enqueue("tests.observability.jobs.noop")
        queues["default"].enqueue("tests.observability.jobs.boom")
        time.sleep(0.5)
    connection.close()
    _wait("failed jobs scraped", lambda: _has_numbers(
        prom.query('max by (queue) (jobfleet_queue_jobs{state="failed"}) >= 6')), timeout=40)
    _wait("finished jobs scraped", lambda: _has_numbers(
        prom.query('sum(jobfleet_jobs_finished_total{outcome="finished"}) >= 30')), timeout=40)
    time.sleep(2)  # two more scrapes so every rate window holds the last jobs
    end = time.time()

    exprs = all_exprs()
    assert len(exprs) >= 20
    empty, unchecked = [], []
    for expr in exprs:
        if expr.kind == "alert":
            continue
        if "jobfleet_autoscaler_" in expr.promql and not autoscaler:
            unchecked.append(expr.where)
            continue
        if not _has_numbers(prom.query_range(expr.promql, start, end)):
            empty.append(f"{expr.where}: {expr.promql}")
    assert not empty, "expressions without data:\n" + "\n".join(empty) + "\n" + _logs(fleet)

    # Alerts: make the autoscaler silent (stop it), then every alert expression must return data now.
    if autoscaler:
        procs["autoscaler"].send_signal(signal.SIGTERM)
        procs["autoscaler"].wait(timeout=30)
    _wait("autoscaler target down", lambda: prom.query('up{job="jobfleet-autoscaler"} == 0'), timeout=15)
    time.sleep(1.5)
    silent = [f"{e.where}: {e.promql}" for e in exprs if e.kind == "alert" and not _has_numbers(prom.query(e.promql))]
    assert not silent, "alert expressions without data:\n" + "\n".join(silent) + "\n" + _logs(fleet)

    # Prometheus itself evaluates the rule file without errors, and every alert is pending or firing.
    rules = prom.client.get("/api/v1/rules").json()["data"]["groups"]
    evaluated = {rule["name"]: rule for group in rules for rule in group["rules"]}
    assert {name for name, rule in evaluated.items() if rule["health"] != "ok"} == set()

    def all_active() -> bool:
        active = {a["labels"]["alertname"] for a in prom.client.get("/api/v1/alerts").json()["data"]["alerts"]}
        return active >= set(evaluated)

    _wait("every alert pending or firing", all_active, timeout=10)
    if not autoscaler and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"autoscaler/__main__.py is missing: not checked: {unchecked}")
    if unchecked:
        warnings.warn(f"autoscaler not available yet; unchecked: {unchecked}", stacklevel=1)


def test_promtool_accepts_the_rules_and_configs(tmp_path: Path) -> None:
    promtool = _binary("promtool")
    out = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout
    tests = ROOT / "observability" / "prometheus" / "alerts_test.yml"
    out = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    for config in ("prometheus-local.yml", "prometheus-aws.yml"):
        path = ROOT / "observability" / "prometheus" / config
        out = subprocess.run([promtool, "check", "config", "--syntax-only", str(path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{config}: {out.stdout}{out.stderr}"
