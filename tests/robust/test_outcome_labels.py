"""Every `outcome` label that a PromQL expression, the Grafana dashboard or the README's metric table uses
is emitted by some code path; and `timeout` really is, by a real worker."""

from __future__ import annotations

import ast
import json
import re
import urllib.request
from pathlib import Path

from redis import Redis
from rq.job import JobStatus

from jobfleet.embedded_redis import free_port
from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.conftest import ROOT
from tests.worker.helpers import start_worker, wait_for, worker_env

METRIC = "jobfleet_jobs_finished"
MATCHER = re.compile(r'outcome\s*(=~|!~|=|!=)\s*"([^"]*)"')


def _promql_outcomes(text: str) -> set[str]:
    found: set[str] = set()
    for _op, value in MATCHER.findall(text):
        found |= {part for part in value.split("|") if part and re.fullmatch(r"[a-z_]+", part)}
    return found


def used_outcomes() -> dict[str, set[str]]:
    """Outcome labels per place that uses them: Prometheus rules and tests, Grafana, README table."""
    used: dict[str, set[str]] = {}
    for path in sorted((ROOT / "observability" / "prometheus").glob("*.yml")):
        used[str(path.relative_to(ROOT))] = _promql_outcomes(path.read_text())
    for path in sorted((ROOT / "observability" / "grafana" / "dashboards").glob("*.json")):
        exprs = re.findall(r'"expr":\s*("(?:[^"\\]|\\.)*")', path.read_text())
        used[str(path.relative_to(ROOT))] = set().union(*(_promql_outcomes(json.loads(e)) for e in exprs))
    readme = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("|") and f"`{METRIC}_total`" in line and "outcome" in line:
            readme |= set(re.findall(r"`([a-z_]+)`", line.split("|")[-2])) - {"queue", "outcome"}
    used["README.md"] = readme
    return used


def emitted_outcomes() -> set[str]:
    """String literals the worker code can pass as an outcome: arguments of ``record_job_finished`` and
    values assigned to anything named ``*outcome*``."""
    found: set[str] = set()
    for path in (ROOT / "worker").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) \
                    == "record_job_finished" and len(node.args) > 1:
                found |= {c.value for c in ast.walk(node.args[1]) if isinstance(c, ast.Constant)}
            if isinstance(node, ast.Assign) and any("outcome" in ast.unparse(t) for t in node.targets):
                found |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
    return {v for v in found if isinstance(v, str) and re.fullmatch(r"[a-z_]+", v)}


def test_every_used_outcome_label_is_emitted() -> None:
    used = used_outcomes()
    assert used["README.md"], "the README's metric table lists no outcomes: parser out of date?"
    assert any("timeout" in labels for labels in used.values())  # the case is really checked
    emitted = emitted_outcomes()
    assert {"finished", "failed", "retried"} <= emitted  # the scan finds the obvious ones
    missing = {place: sorted(labels - emitted) for place, labels in used.items() if labels - emitted}
    assert not missing, f"outcome labels used but never emitted: {missing}"


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_a_job_that_times_out_is_counted_as_timeout(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    port = free_port()
    env = worker_env(redis_url, tmp_path, JOBFLEET_METRICS_PORT=str(port), TMPDIR=str(tmp_path))
    settings = load_settings(env)
    job = submit("jobfleet.demo.jobs.sleep", 30, timeout=1, retry=None, connection=redis, settings=settings)
    with start_worker(env, tmp_path, name="t"):
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FAILED, 30, what="timeout")
        wait_for(lambda: 'jobfleet_jobs_finished_total{outcome="timeout",queue="default"} 1.0' in _scrape(port),
                 20, interval=0.3, what="timeout counted")
    log = (tmp_path / "t.log").read_text()
    assert '"outcome": "timeout"' in log
