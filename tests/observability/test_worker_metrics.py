"""Worker metrics in multiprocess mode with real processes: no lost counts, no stale live gauges."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability import metrics
from observability.multiprocess_files import parse_db_name, pid_alive
from tests.conftest import ROOT


def _env(directory: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBFLEET_", "PROMETHEUS_"))}
    env.update({"PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)})
    return env


def _run(directory: Path, jobs: int) -> None:
    subprocess.run([sys.executable, "-m", "tests.observability.metrics_process", str(jobs)], cwd=ROOT,
                   env=_env(directory), check=True, timeout=60, capture_output=True)


def _start(directory: Path, jobs: int, serve: int = 0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.observability.metrics_process", str(jobs), "--stay", "--serve", str(serve)],
        cwd=ROOT, env=_env(directory), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _values(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def _scrape_dir(directory: Path) -> dict[str, float]:
    from prometheus_client import generate_latest

    return _values(generate_latest(metrics.worker_registry(directory)).decode())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_exited_processes_keep_their_counts_and_lose_their_live_gauges(tmp_path: Path) -> None:
    directory = tmp_path / "mp"
    directory.mkdir()
    for jobs in (1, 2, 3):
        _run(directory, jobs)
    alive = _start(directory, 4)
    try:
        values = _scrape_dir(directory)
        assert values["jobfleet_jobs_finished_total{outcome=finished,queue=a}"] == 10
        assert values["jobfleet_job_retries_total{queue=a}"] == 4
        assert values["jobfleet_job_run_seconds_count{queue=a}"] == 10
        assert values["jobfleet_job_run_seconds_bucket{le=0.25,queue=a}"] == 10
        assert values["jobfleet_job_run_seconds_bucket{le=0.1,queue=a}"] == 0
        assert values["jobfleet_job_wait_seconds_sum{queue=a}"] == pytest.approx(15.0)
        assert values["jobfleet_worker_busy_slots{}"] == 1  # only the live process
        assert values["jobfleet_worker_slots{}"] == 1
        # Dead processes' files were folded into the archive: one file per type, plus the live process's.
        idents = {parse_db_name(str(p))[2] for p in directory.glob("*.db")}
        assert idents == {"archive", str(alive.pid)}
        # Folding twice must not double count.
        _run(directory, 5)
        values = _scrape_dir(directory)
        assert values["jobfleet_jobs_finished_total{outcome=finished,queue=a}"] == 15
        assert values["jobfleet_job_run_seconds_bucket{le=+Inf,queue=a}"] == 15
    finally:
        _stop(alive)
    values = _scrape_dir(directory)
    assert "jobfleet_worker_busy_slots{}" not in values or values["jobfleet_worker_busy_slots{}"] == 0
    assert values["jobfleet_jobs_finished_total{outcome=finished,queue=a}"] == 15  # kill -9 lost nothing


@pytest.mark.slow
def test_host_endpoint_survives_the_exit_of_the_serving_process(tmp_path: Path) -> None:
    directory = tmp_path / "mp"
    directory.mkdir()
    port = _free_port()
    first = _start(directory, 2, serve=port)
    second = _start(directory, 3, serve=port)  # port taken: stands by
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        values = _values(httpx.get(url, timeout=5).text)
        assert values["jobfleet_jobs_finished_total{outcome=finished,queue=a}"] == 5
        assert values["jobfleet_worker_slots{}"] == 2
        _stop(first)
        deadline = time.monotonic() + 15
        while True:
            try:
                values = _values(httpx.get(url, timeout=2).text)
                if values.get("jobfleet_worker_slots{}") == 1:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no process took over the metrics port"
            time.sleep(0.1)
        assert values["jobfleet_jobs_finished_total{outcome=finished,queue=a}"] == 5
    finally:
        _stop(first)
        _stop(second)


def test_pid_alive() -> None:
    import os

    assert pid_alive(str(os.getpid()))
    assert pid_alive("archive")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(str(proc.pid))


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="queue and an outcome"):
        metrics.record_job_finished("", "finished", 1.0, None)
    with pytest.raises(ValueError, match="count must be >= 0"):
        metrics.record_recovered("a", -1)
