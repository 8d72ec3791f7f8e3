"""Several `python -m worker` on one host: one metrics endpoint for all of them, no port clash."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from redis import Redis
from rq.job import JobStatus

from jobfleet.embedded_redis import free_port
from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.worker.helpers import start_worker, wait_for, worker_env


def _scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _finished(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("jobfleet_jobs_finished_total{")
               and 'outcome="finished"' in k)


def test_three_workers_on_one_host_share_one_metrics_endpoint(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    port = free_port()
    env = worker_env(redis_url, tmp_path, JOBFLEET_METRICS_PORT=str(port), TMPDIR=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    settings = load_settings(env)
    with start_worker(env, tmp_path, name="a") as a, start_worker(env, tmp_path, name="b") as b, \
            start_worker(env, tmp_path, name="c") as c:
        wait_for(lambda: _scrape(port).get("jobfleet_worker_slots") == 3, 40, interval=0.3, what="3 slots")
        jobs = [submit("jobfleet.demo.jobs.sleep", 0.2, connection=redis, settings=settings) for _ in range(9)]
        wait_for(lambda: all(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs), 40, what="jobs")
        wait_for(lambda: _finished(_scrape(port)) == 9, 20, interval=0.3, what="9 finished in the host's metrics")
        assert all(p.poll() is None for p in (a, b, c))
    assert list(tmp_path.glob(f"jobfleet-worker-metrics-*-{port}/*.db"))
    for name in "abc":
        assert "in use" not in (tmp_path / f"{name}.log").read_text()
