"""The simulator on a short trace: invariants of the run (not the benchmark goal), and trace validation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from autoscaler.policy import PolicyConfig
from bench.autoscale import BASELINES, main, run_benchmark
from bench.sim import SimConfig, load_trace


def _short_trace(path: Path, seed: int = 3) -> Path:
    rng = random.Random(seed)
    rows, t = [], 0.0
    for k in range(120):  # a quiet start, then a burst of 80 jobs, then a trickle
        t += rng.expovariate(0.2 if k < 20 or k >= 100 else 4.0)
        rows.append(f"{t:.3f},{rng.choice(['high', 'default'])},{rng.uniform(2, 20):.3f}")
    path.write_text("arrival_s,queue,service_s\n" + "\n".join(rows) + "\n")
    return path


def test_every_policy_runs_every_job_and_ours_never_kills_a_busy_worker(tmp_path: Path) -> None:
    trace = _short_trace(tmp_path / "short.csv")
    sim = SimConfig(boot_min_s=20, boot_max_s=40, max_instances=20, tail_s=600)
    ours = PolicyConfig(max_instances=20, target_wait_s=30, boot_time_s=30, idle_hold_s=30)
    results = run_benchmark([trace], sim, ours, workers=1)["short"]
    assert set(results) == {"ours", "ours+warm-pool", "ours-no-forecast", *BASELINES}
    for name, result in results.items():
        s = result.summary()
        assert result.jobs_done == result.jobs_total == 120, name
        assert 0 <= s["p50_wait_s"] <= s["p95_wait_s"] <= s["p99_wait_s"], name
        assert s["instance_hours"] > sum(j.service_s for j in load_trace(trace)) / 3600 / 20, name
        assert all(0 <= row[2] <= sim.max_instances for row in result.series), name
    assert results["ours"].busy_killed == 0
    assert results["ours"].scaling_actions > 0


def test_cli_writes_json_for_a_trace_given_by_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _short_trace(tmp_path / "mine.csv")
    assert main([str(trace), "--out", str(tmp_path / "out"), "--no-plots", "--workers", "1", "--boot", "10:20"]) == 0
    data = json.loads((tmp_path / "out" / "autoscale.json").read_text())
    row = data["results"]["mine"]["ours"]
    assert set(row) >= {"p50_wait_s", "p95_wait_s", "p99_wait_s", "instance_hours", "scaling_actions", "busy_killed"}
    assert "| mine | ours |" in capsys.readouterr().out


@pytest.mark.parametrize("text,error", [
    ("arrival,queue,service\n1,a,2\n", "header must be exactly"),
    ("arrival_s,queue,service_s\n1,a,zero\n", "expected numbers"),
    ("arrival_s,queue,service_s\n1,a,-2\n", "service_s > 0"),
    ("arrival_s,queue,service_s\n", "no jobs"),
])
def test_bad_trace_gets_a_clear_error(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_trace(path)
