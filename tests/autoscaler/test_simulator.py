"""The simulator on a short trace: invariants of the run (not the benchmark goal), and trace validation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from autoscaler.policy import PolicyConfig
from bench.autoscale import BASELINES, InstantPool, burst_starts, main, run_benchmark, warm_pool_floor
from bench.sim import Action, FleetView, Job, SimConfig, Simulator, load_trace


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


class _Fixed:
    """A policy that asks for a fixed size (and optionally a warm pool) and never removes anything itself."""

    name = "fixed"
    interval_s = 5.0

    def __init__(self, size: int, pool: int | None = None) -> None:
        self.size, self.pool = size, pool

    def tick(self, view: FleetView) -> Action:
        return Action(self.size, warm_pool=self.pool)

    def self_terminating(self, view: FleetView) -> list[str]:
        return []


def test_queues_are_served_in_strict_priority_and_reported_per_queue() -> None:
    # one slot, all jobs queued at once: every high job starts before any low job, whatever the arrival order
    jobs = [Job(0.1 * k, "low" if k % 2 else "high", 10.0) for k in range(10)]
    result = Simulator(jobs, _Fixed(1), SimConfig(boot_min_s=5, boot_max_s=5, tail_s=0)).run()
    high = result.waits_by_queue["high"]
    low = result.waits_by_queue["low"]
    assert max(high) < min(low)
    s = result.summary()
    assert set(s["p95_wait_by_queue"]) == {"high", "low"}
    assert s["p95_wait_by_queue"]["high"] < s["p95_wait_by_queue"]["low"]
    with pytest.raises(ValueError, match="serve mode 'fair'"):
        Simulator(jobs, _Fixed(1), SimConfig(serve_mode="fair"))


def test_warm_pool_starts_fast_and_bills_its_stopped_instances_at_the_ebs_ratio() -> None:
    cfg = SimConfig(boot_min_s=100, boot_max_s=100, warm_min_s=10, warm_max_s=10, tail_s=0)

    class Later(_Fixed):
        def tick(self, view: FleetView) -> Action:  # prepare 3 for 10 minutes, then need 2 at once
            return Action(2 if view.now >= 600 else 0, warm_pool=3)

    jobs = [Job(600.0, "default", 5.0), Job(600.0, "default", 5.0)]
    result = Simulator(jobs, Later(0), cfg).run()
    s = result.summary()
    assert result.warm_starts == 2 and max(result.waits) == pytest.approx(10.0, abs=5.01)  # tick + warm start
    assert s["stopped_hours"] > 0 and cfg.stopped_cost_ratio == pytest.approx(20 * 0.08 / 730 / 0.0208)
    expected = (result.instance_seconds + result.stopped_seconds * cfg.stopped_cost_ratio) / 3600
    assert s["instance_hours"] == pytest.approx(expected, abs=1e-3)
    cold = Simulator(jobs, _Fixed(0), cfg).run()  # no pool asked for: nothing stopped, nothing warm
    assert cold.stopped_seconds == 0 and cold.warm_starts == 0


def test_cli_writes_the_v2_fields_and_goal_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _short_trace(tmp_path / "two.csv")
    out = tmp_path / "out"
    assert main([str(trace), "--out", str(out), "--no-plots", "--workers", "1", "--boot", "10:20",
                 "--target-wait", "high=5,300"]) == 0
    data = json.loads((out / "autoscale.json").read_text())
    rows = data["results"]["two"]
    assert set(rows["ours"]["p95_wait_by_queue"]) == {"high", "default"}
    assert set(rows["ours+warm-pool"]) >= set(rows["keda-hpa"])
    assert data["frontier"]["two"][0]["target_wait_s"] == 0
    assert data["per_queue_targets"]["two"]["targets"] == {"high": 5.0, "default": 300.0}
    printed = capsys.readouterr().out
    for goal in ("a", "b", "d"):
        assert f"goal ({goal}) " in printed
    with pytest.raises(SystemExit) as exit_:
        main([str(trace), "--target-wait", "high=oops", "--out", str(out)])
    assert exit_.value.code == 2 and "queue 'high': expected a number" in capsys.readouterr().err


def _two_bursts(path: Path, seed: int = 4) -> Path:
    rng = random.Random(seed)
    rows = []
    t = 0.0
    while t < 3000:
        t += rng.expovariate(0.1)
        rows.append((t, rng.expovariate(1 / 10)))
    rows += [(600 + rng.uniform(0, 10), rng.expovariate(1 / 10)) for _ in range(60)]
    rows += [(2400 + rng.uniform(0, 10), rng.expovariate(1 / 10)) for _ in range(60)]
    path.write_text("arrival_s,queue,service_s\n" + "".join(f"{a:.3f},default,{s:.3f}\n" for a, s in sorted(rows)))
    return path


def test_warm_pool_floor_finds_both_bursts_and_bounds_the_hours(tmp_path: Path) -> None:
    jobs = load_trace(_two_bursts(tmp_path / "b.csv"))
    sim = SimConfig(max_instances=40, warm_min_s=10, warm_max_s=20, boot_min_s=45, boot_max_s=90)
    starts = burst_starts(jobs, 60)
    assert len(starts) == 2 and 600 <= starts[0] < 615 and 2400 <= starts[1] < 2415
    floor = warm_pool_floor(jobs, sim, 30.0, 60)
    assert floor["pool"] is not None and 1 <= floor["pool"] <= 40
    work = sum(j.service_s for j in jobs) / 3600
    assert floor["work_hours"] == pytest.approx(work, abs=0.01)
    held = (starts[1] - starts[0]) / 3600
    expected = work + floor["pool"] * 55 / 3600 + floor["pool"] * held * sim.stopped_cost_ratio
    assert floor["hours_floor"] == pytest.approx(expected, abs=0.01)
    # the fewest instances: one fewer misses the target even when all start the moment a job queues
    fewer = Simulator(jobs, InstantPool(floor["pool"] - 1),
                      SimConfig(max_instances=40, boot_min_s=10, boot_max_s=10, tail_s=0)).run().summary()
    assert fewer["p95_wait_s"] > 30
    quickest = Simulator(jobs, InstantPool(40), SimConfig(max_instances=40, boot_min_s=10, boot_max_s=10,
                                                          tail_s=0)).run().summary()
    assert floor["best_p95_s"] >= quickest["p95_wait_s"]  # slower warm starts (10-20 s) can only add waiting
    assert warm_pool_floor(jobs, SimConfig(max_instances=2), 1.0, 60)["pool"] is None
