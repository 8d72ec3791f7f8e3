"""`make run` end to end: the fleet processes demo jobs, Ctrl-C leaves no process behind, restarts keep jobs."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from redis import Redis
from rq import Queue

from jobfleet.embedded_redis import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("local_fleet")


def fleet_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBFLEET_", "REDIS_", "OTEL_", "PROMETHEUS_"))}
    env.update(
        {
            "JOBFLEET_DATA_DIR": str(data_dir),
            "JOBFLEET_DASHBOARD_PORT": str(free_port()),
            "JOBFLEET_METRICS_PORT": str(free_port()),
            "JOBFLEET_AUTOSCALER_METRICS_PORT": str(free_port()),
            "JOBFLEET_BOOT_TIME": "2",
            "JOBFLEET_IDLE_HOLD": "3",
            "JOBFLEET_MAX_INSTANCES": "3",
        }
    )
    env.update(extra)
    return env


def start_make_run(env: dict[str, str], log: Path, *extra_args: str) -> subprocess.Popen[bytes]:
    """`make run` in its own process group, as a terminal would start it."""
    cmd = ["make", "--no-print-directory", "run"]
    if extra_args:
        cmd.append(f"RUN_ARGS={' '.join(extra_args)}")
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for(predicate: object, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; output:\n{log.read_text()[-4000:]}")


def ctrl_c(process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Send SIGINT to the whole foreground group (what Ctrl-C does) and wait for `make` to end."""
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout)


def all_pids(root_pid: int) -> set[int]:
    try:
        root = psutil.Process(root_pid)
        return {root_pid} | {p.pid for p in root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_make_run_processes_jobs_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "run.log"
    proc = start_make_run(fleet_env(data, JOBFLEET_DEMO_RATE="8"), log)
    seen: set[int] = set()
    try:
        fleet_file = data / "fleet.json"
        wait_for(fleet_file.exists, 60, "fleet.json", log)

        def done_jobs() -> bool:
            seen.update(all_pids(proc.pid))
            matches = re.findall(r"done=(\d+)", log.read_text())
            return bool(matches) and int(matches[-1]) >= 5

        wait_for(done_jobs, 90, "5 finished demo jobs", log)
        pids = json.loads(fleet_file.read_text())
        assert {"autoscaler", "dashboard", "demo-load", "redis"} <= set(pids["children"])
        seen.update(pids["children"].values())
        workers = [p for p in seen if _is_worker(_cmdline(p))]
        assert workers, "no worker process was seen"
    finally:
        seen.update(all_pids(proc.pid))
        ctrl_c(proc)
    text = log.read_text()
    assert "nothing left running" in text, text[-3000:]
    leftover = alive(seen - {os.getpid()})
    assert not leftover, f"processes left behind: {[(p, _cmdline(p)) for p in leftover]}"


def test_restart_keeps_queued_jobs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = fleet_env(data, JOBFLEET_DEMO_LOAD="0")
    log = tmp_path / "run1.log"
    proc = start_make_run(env, log)
    try:
        wait_for((data / "fleet.json").exists, 60, "fleet.json", log)
        url = json.loads((data / "fleet.json").read_text())["redis_url"]
        client = Redis.from_url(url)
        # A queue no worker listens on: its jobs must simply survive the restart.
        parked = Queue("parked", connection=client)
        ids = [parked.enqueue("jobfleet.demo.jobs.noop").id for _ in range(20)]
        client.close()
    finally:
        ctrl_c(proc)
    (data / "fleet.json").unlink()
    log2 = tmp_path / "run2.log"
    proc = start_make_run(env, log2)
    try:
        wait_for((data / "fleet.json").exists, 60, "fleet.json after restart", log2)
        url = json.loads((data / "fleet.json").read_text())["redis_url"]
        client = Redis.from_url(url)
        assert Queue("parked", connection=client).job_ids == ids
        client.close()
    finally:
        ctrl_c(proc)


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return []


def _is_worker(cmdline: list[str]) -> bool:
    """True for a `python -m worker ...` process (not the fleet or demo-load modules)."""
    return any(a == "-m" and b == "worker" for a, b in itertools.pairwise(cmdline))
