"""`make perf` on a local fleet with a small N: history, table and PNG; bad input is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bench.perf import parse_shape, percentile, table
from tests.conftest import ROOT


def _make_perf(tmp_path: Path, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "JOBFLEET_"))}
    args = f"--history {tmp_path / 'history.jsonl'} --png {tmp_path / 'runs.png'} --workers 2 {' '.join(extra)}"
    return subprocess.run(["make", "-s", "-o", ".venv/.installed", "perf", "MESSAGES=60", f"RUN_ID={run_id}",
                           f"PERF_ARGS={args}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_make_perf_records_runs_prints_them_side_by_side_and_draws_them(tmp_path: Path) -> None:
    first = _make_perf(tmp_path, "noop-a")
    assert first.returncode == 0, first.stderr[-2000:]
    second = _make_perf(tmp_path, "sleep-b", "--shape", "sleep:uniform:0.001:0.02")
    assert second.returncode == 0, second.stderr[-2000:]
    runs = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["run_id"] for r in runs] == ["noop-a", "sleep-b"]
    for run in runs:
        assert run["finished"] == 60 and run["failed"] == 0 and run["target"] == "local"
        assert run["throughput_jobs_per_s"] > 0 and run["instance_seconds"] > 0 and run["cost_usd"] > 0
        assert 0 <= run["wait_p50_s"] <= run["wait_p95_s"] <= run["wait_p99_s"]
        assert 0 <= run["run_p50_s"] <= run["run_p95_s"] <= run["run_p99_s"]
        assert run["instance_type"] == "t3.small" and run["instance_usd_per_h"] == 0.0208
    assert runs[1]["run_p50_s"] > runs[0]["run_p50_s"]  # the sleeping jobs really ran longer
    lines = second.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "shape", "jobs", "jobs/s"]
    assert lines[1].startswith("noop-a") and lines[2].startswith("sleep-b")  # the recent runs side by side
    png = (tmp_path / "runs.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    bad = _make_perf(tmp_path, "bad", "--shape", "sleep:forever")
    assert bad.returncode != 0 and "unknown job shape 'sleep:forever'" in bad.stderr
    assert "Traceback" not in bad.stderr
    unpriced = _make_perf(tmp_path, "bad", "--instance-type", "x9.huge")
    assert "no price for instance type 'x9.huge'" in unpriced.stderr
    assert not (tmp_path / "history.jsonl").exists()


def test_shapes_percentiles_and_table() -> None:
    assert parse_shape("cpu:1000").args(__import__("random").Random(1)) == (1000,)
    assert 0.01 <= parse_shape("sleep:uniform:0.01:0.02").args(__import__("random").Random(1))[0] <= 0.02
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and percentile([1.0] * 99 + [9.0], 99) == 1.0
    assert percentile([], 95) == 0.0
    text = table([{"run_id": "a", "shape": "noop", "messages": 1, "throughput_jobs_per_s": 2.0}])
    assert text.splitlines()[1].startswith("a ") and " - " in text
