"""Autoscaling benchmark (`make bench-autoscale`): our policy vs four baselines on the shipped traces.

``python -m bench.autoscale [TRACE.csv ...] [--out bench/results] [--boot 45:120] [--warm 10:25] [--slots 1]
[--target-wait 30|high=5,default=30,low=300] [--instance-price 0.0208] [--ebs-price 0.08] [--volume-gb 20]
[--no-plots] [--no-frontier]`` writes ``autoscale.json``: per trace, a row per policy (ours, ours+warm-pool,
ours-no-forecast, the four baselines) with p50/p95/p99 wait, ``p95_wait_by_queue``, instance-hours (running
plus the warm pool's stopped instances at their EBS cost), scaling actions and busy workers killed; the
frontier of ours (and ours+warm-pool) over target waits including 0; the per-queue-target pair of goal (d);
and prints a PASS/FAIL line per trace for each goal (a)-(d) of issue 14 with the figures behind it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autoscaler.policy import PolicyConfig
from autoscaler.warm_pool import WarmPoolConfig
from autoscaler.window import BurstRecurrence
from bench.sim import Action, FleetView, Job, SimConfig, SimPolicy, SimResult, load_trace, run_policy
from bench.sim_policies import AwsTargetTracking, BuildkiteStyle, KedaHpa, OursPolicy, SeedThreshold
from jobfleet.target_wait import TargetWaits

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces"
DEFAULT_TRACES = ("steady", "diurnal", "burst", "heavy_tail", "daily", "priority")
BASELINES = ("seed-threshold", "keda-hpa", "aws-target-tracking", "buildkite-style")
GOAL_A_BASELINES = ("seed-threshold", "keda-hpa", "aws-target-tracking")
FRONTIER_TARGETS = (0.0, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LONG_TRACE_TARGETS = (0.0,)  # frontier on traces longer than a day (keeps the bench short)
WARM_FRONTIER_TARGETS = (0.0, 30.0)
SPLIT_TARGETS = (5.0, 300.0)  # goal (d): the first queue at 5 s, the others at 300 s


@dataclass(frozen=True)
class Task:
    """One simulation: a policy (ours with options, or a baseline) on one trace."""

    trace: str
    policy: str  # "ours" or a baseline name
    ours: PolicyConfig
    warm_pool: WarmPoolConfig | None = None
    forecast: bool = True


def policy_factories(
    jobs: Sequence[Job], sim: SimConfig, ours: PolicyConfig
) -> dict[str, Callable[[], SimPolicy]]:
    """Fresh-policy factories for ours and the four baselines on this trace."""
    mean_service = statistics.fmean(j.service_s for j in jobs)
    # AWS guidance: target backlog per instance = acceptable latency / mean processing time (x slots)
    aws_target = max(1.0, max(ours.target_wait_s, 1.0) / mean_service * sim.slots_per_instance)
    return {
        "ours": lambda: OursPolicy(ours),
        "seed-threshold": lambda: SeedThreshold(sim.min_instances, sim.max_instances),
        "keda-hpa": lambda: KedaHpa(sim.slots_per_instance),
        "aws-target-tracking": lambda: AwsTargetTracking(aws_target, sim.min_instances),
        "buildkite-style": lambda: BuildkiteStyle(sim.slots_per_instance),
    }


def _run_task(args: tuple[Task, SimConfig]) -> SimResult:
    task, sim = args
    jobs = load_trace(Path(task.trace))
    if task.policy == "ours":
        return run_policy(jobs, lambda: OursPolicy(task.ours, warm_pool=task.warm_pool, forecast=task.forecast), sim)
    return run_policy(jobs, policy_factories(jobs, sim, task.ours)[task.policy], sim)


def run_tasks(tasks: Sequence[Task], sim: SimConfig, workers: int = 2) -> dict[Task, SimResult]:
    """Every distinct task once (in ``workers`` processes, longest traces first)."""
    unique = sorted(set(tasks), key=lambda t: -Path(t.trace).stat().st_size)
    if workers <= 1:
        outcomes = [_run_task((t, sim)) for t in unique]
    else:
        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(pool.map(_run_task, [(t, sim) for t in unique]))
    return dict(zip(unique, outcomes, strict=True))


def _stem(path: str) -> str:
    return Path(path).stem


def _queues(path: Path) -> list[str]:
    names = list(dict.fromkeys(j.queue for j in load_trace(path)))
    order = SimConfig().queue_order
    return [q for q in order if q in names] + [q for q in names if q not in order]


def plan(
    trace_paths: Sequence[Path], ours: PolicyConfig, warm: WarmPoolConfig, frontier: bool = True
) -> dict[str, dict[str, Any]]:
    """The tasks of every trace, by role: rows (policy name -> task), frontier points, the goal (d) pair."""
    out: dict[str, dict[str, Any]] = {}
    for path in trace_paths:
        trace = str(path)
        rows: dict[str, Task] = {"ours": Task(trace, "ours", ours)}
        rows["ours+warm-pool"] = Task(trace, "ours", ours, warm_pool=warm)
        rows["ours-no-forecast"] = Task(trace, "ours", ours, forecast=False)
        rows.update({name: Task(trace, name, ours) for name in BASELINES})
        long = load_trace(path)[-1].arrival_s > 86400
        targets = LONG_TRACE_TARGETS if long else FRONTIER_TARGETS
        flat = replace(ours, queue_targets=())
        points = [Task(trace, "ours", replace(flat, target_wait_s=t)) for t in targets] if frontier else []
        warm_points = [Task(trace, "ours", replace(flat, target_wait_s=t), warm_pool=warm)
                       for t in WARM_FRONTIER_TARGETS] if frontier and not long else []
        split = None
        queues = _queues(path)
        if len(queues) == 2:  # goal (d): a trace with two queues
            tight, loose = SPLIT_TARGETS
            per_queue = ((queues[0], tight), *((q, loose) for q in queues[1:]))
            split = {"split": Task(trace, "ours", replace(ours, queue_targets=per_queue, target_wait_s=loose)),
                     "single": Task(trace, "ours", replace(flat, target_wait_s=tight)), "targets": dict(per_queue)}
        out[_stem(trace)] = {"rows": rows, "frontier": points, "frontier_warm_pool": warm_points, "split": split}
    return out


def all_tasks(planned: dict[str, dict[str, Any]]) -> list[Task]:
    """Every task of a plan."""
    tasks: list[Task] = []
    for p in planned.values():
        tasks += [*p["rows"].values(), *p["frontier"], *p["frontier_warm_pool"]]
        if p["split"]:
            tasks += [p["split"]["split"], p["split"]["single"]]
    return tasks


def run_benchmark(
    trace_paths: Sequence[Path], sim: SimConfig, ours: PolicyConfig, workers: int = 2,
    warm: WarmPoolConfig | None = None, frontier: bool = False,
) -> dict[str, dict[str, SimResult]]:
    """Every trace x policy row (ours, ours+warm-pool, ours-no-forecast, baselines), keyed by trace stem."""
    planned = plan(trace_paths, ours, warm or WarmPoolConfig(), frontier=frontier)
    done = run_tasks(all_tasks(planned), sim, workers)
    return {trace: {name: done[t] for name, t in p["rows"].items()} for trace, p in planned.items()}


def format_frontier(curve: dict[str, list[dict[str, Any]]]) -> str:
    """One line per trace: p95 wait / instance-hours of ours at each target."""
    lines = []
    for trace, points in curve.items():
        cells = " | ".join(f"T={p['target_wait_s']:g}s: {p['p95_wait_s']:.1f}s / {p['instance_hours']:.2f}h"
                           for p in points)
        lines.append(f"| {trace} | {cells} |")
    return "\n".join(lines)


@dataclass
class InstantPool:
    """The most a warm pool can do: all ``n`` instances started the moment a job is queued, idle ones gone at once.

    Run with every boot at the *shortest* warm start: no pool policy (one that does not keep idle instances
    running, which costs full instance-hours) can start jobs sooner, so its p95 bounds theirs from below.
    """

    n: int
    name: str = "instant-pool"
    interval_s: float = 1.0

    def tick(self, view: FleetView) -> Action:
        if view.queued > 0:
            return Action(self.n)
        idle = tuple(i.id for i in view.instances if i.ready(view.now) and not i.running)
        return Action(len(view.instances) - len(idle), remove=idle)

    def self_terminating(self, view: FleetView) -> list[str]:
        return []


def burst_starts(jobs: Sequence[Job], within_s: float) -> list[float]:
    """Start times of the trace's arrival bursts, found by the daemon's own detector at 3 s ticks."""
    detector = BurstRecurrence(within_s=within_s, max_period_s=float("inf"))
    starts: list[float] = []
    t, k = 0.0, 0
    while t <= jobs[-1].arrival_s:
        while k < len(jobs) and jobs[k].arrival_s <= t:
            k += 1
        detector.add(t, float(k), 0)
        starts += [b.start for b in detector.bursts if b.start not in starts]
        t += 3.0
    return starts


def warm_pool_floor(jobs: Sequence[Job], sim: SimConfig, target: float, within_s: float) -> dict[str, Any]:
    """A lower bound on the instance-hours of any warm-pool policy whose p95 meets ``target`` (goal (c)).

    ``pool``: the fewest instances an :class:`InstantPool` needs (bisection; None when not even
    ``max_instances`` meets the target). A policy that does not know when the next burst comes must hold
    that many stopped from the first burst to the last one, and each entered the pool by a cold boot and
    leaves it with a warm start (both billed, at least the shortest of each); the jobs' own service time is
    billed too. Floor = work + pool · (shortest boot + shortest warm start) + pool · (last - first burst) ·
    ``stopped_cost_ratio``. It leaves out the first burst (a pool before it only adds).
    """
    quickest = replace(sim, boot_min_s=sim.warm_min_s, boot_max_s=sim.warm_min_s, tail_s=0.0)

    def p95(n: int) -> float:
        return float(run_policy(jobs, lambda: InstantPool(n), quickest).summary()["p95_wait_s"])

    work_h = sum(j.service_s for j in jobs) / 3600 / sim.slots_per_instance
    starts = burst_starts(jobs, within_s)
    # the same, with the configured warm-start range: the best p95 any pool can give (ignoring cost)
    warm = replace(sim, boot_min_s=sim.warm_min_s, boot_max_s=sim.warm_max_s, tail_s=0.0)
    best = round(float(run_policy(jobs, lambda: InstantPool(sim.max_instances), warm).summary()["p95_wait_s"]), 2)
    if len(starts) < 2 or p95(sim.max_instances) > target:
        return {"pool": None, "bursts": len(starts), "work_hours": round(work_h, 2), "hours_floor": None,
                "best_p95_s": best}
    lo, hi = 1, sim.max_instances
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if p95(mid) <= target else (mid + 1, hi)
    held_h = (starts[-1] - starts[0]) / 3600
    floor = work_h + lo * (sim.boot_min_s + sim.warm_min_s) / 3600 + lo * held_h * sim.stopped_cost_ratio
    return {"pool": lo, "bursts": len(starts), "held_hours": round(held_h, 2), "work_hours": round(work_h, 2),
            "hours_floor": round(floor, 2), "best_p95_s": best}


def goal_met(per_policy: dict[str, SimResult]) -> dict[str, bool]:
    """Whether ours has p95 wait and instance-hours both <= each baseline's, and busy_killed = 0."""
    ours = per_policy["ours"].summary()
    verdict = {"busy_killed_zero": ours["busy_killed"] == 0}
    for name in BASELINES:
        if name in per_policy:
            other = per_policy[name].summary()
            verdict[f"p95_le_{name}"] = ours["p95_wait_s"] <= other["p95_wait_s"]
            verdict[f"hours_le_{name}"] = ours["instance_hours"] <= other["instance_hours"]
    return verdict


def _fig(s: dict[str, Any]) -> str:
    return f"p95 {s['p95_wait_s']:.1f}s/{s['instance_hours']:.2f}h"


def goals(
    results: dict[str, dict[str, dict[str, Any]]], frontier: dict[str, list[dict[str, Any]]],
    warm_frontier: dict[str, list[dict[str, Any]]], split: dict[str, dict[str, Any]], target: float,
    burst_trace: str = "burst", floors: dict[str, dict[str, Any]] | None = None, sim_max: int = 100,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The issue's goals (a)-(d) per trace: {"a": {trace: {"ok": bool, "detail": str}}, ...}."""
    out: dict[str, dict[str, dict[str, Any]]] = {"a": {}, "b": {}, "c": {}, "d": {}}
    for trace, rows in results.items():
        ours = rows["ours"]
        fails = [n for n in GOAL_A_BASELINES if not (ours["p95_wait_s"] <= rows[n]["p95_wait_s"]
                                                      and ours["instance_hours"] <= rows[n]["instance_hours"])]
        ok = not fails and ours["busy_killed"] == 0
        detail = f"ours {_fig(ours)} killed {ours['busy_killed']}; " + "; ".join(
            f"{n} {_fig(rows[n])}" for n in GOAL_A_BASELINES)
        out["a"][trace] = {"ok": ok, "detail": detail + (f" (beaten by {', '.join(fails)})" if fails else "")}
        bk = rows["buildkite-style"]
        points = [("ours", p) for p in frontier.get(trace, [])]
        points += [("ours+warm-pool", p) for p in warm_frontier.get(trace, [])]
        hits = [(k, p) for k, p in points if p["p95_wait_s"] <= bk["p95_wait_s"]
                and p["instance_hours"] <= bk["instance_hours"]]
        best = min(hits, key=lambda kp: kp[1]["instance_hours"]) if hits else None
        if points:
            what = (f"{best[0]} at T={best[1]['target_wait_s']:g}s {_fig(best[1])}" if best else
                    "no point; closest " + ", ".join(f"{k} T={p['target_wait_s']:g}s {_fig(p)}" for k, p in points
                                                    if p["target_wait_s"] == 0))
            out["b"][trace] = {"ok": best is not None, "detail": f"buildkite {_fig(bk)}; {what}"}
        if trace == burst_trace:
            warm = rows["ours+warm-pool"]
            budget = 1.2 * ours["instance_hours"]
            ok = warm["p95_wait_s"] <= target and warm["instance_hours"] <= budget
            detail = (f"ours+warm-pool {_fig(warm)} (running {warm['running_hours']:.2f}h + stopped "
                      f"{warm['stopped_hours']:.1f}h, {warm['warm_starts']} warm starts) vs target {target:g}s and "
                      f"1.2 x ours = {budget:.2f}h")
            floor = (floors or {}).get(trace)
            if floor is not None and floor["pool"] is None:
                detail += f"; no pool of at most the max instances can reach {target:g}s"
            elif floor is not None:
                verdict = "above" if floor["hours_floor"] > budget else "within"
                detail += (f"; floor for any pool: {floor['pool']} pooled instances (the fewest that meet {target:g}s "
                           f"started the moment a job queues) held {floor['held_hours']:.2f}h between bursts, plus "
                           f"{floor['work_hours']:.2f}h of work and their boots = {floor['hours_floor']:.2f}h, "
                           f"{verdict} the budget")
            if floor is not None:
                detail += (f"; and all {sim_max} instances started the moment a job queues, with the configured warm "
                           f"starts, give p95 {floor['best_p95_s']:.1f}s at best")
            out["c"][trace] = {"ok": ok, "detail": detail, **({"floor": floor} if floor is not None else {})}
    for trace, pair in split.items():
        per_q, targets, single = pair["split"], pair["targets"], pair["single"]
        met = all(per_q["p95_wait_by_queue"].get(q, 0.0) <= t for q, t in targets.items())
        ok = met and per_q["instance_hours"] < single["instance_hours"]
        waits = ", ".join(f"{q} {per_q['p95_wait_by_queue'].get(q, 0.0):.1f}s<= {t:g}s" for q, t in targets.items())
        out["d"][trace] = {"ok": ok, "detail": (
            f"per-queue targets: {waits} at {per_q['instance_hours']:.2f}h; single 5 s target: "
            f"{single['p95_wait_by_queue']} at {single['instance_hours']:.2f}h")}
    return out


def format_table(results: dict[str, dict[str, SimResult]]) -> str:
    """A Markdown table of every trace x policy."""
    lines = [
        "| trace | policy | p50 wait s | p95 wait s | p99 wait s | instance-hours | scaling actions | busy killed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for trace, per_policy in results.items():
        for policy, result in per_policy.items():
            s = result.summary()
            lines.append(
                f"| {trace} | {policy} | {s['p50_wait_s']:.1f} | {s['p95_wait_s']:.1f} | {s['p99_wait_s']:.1f} | "
                f"{s['instance_hours']:.2f} | {s['scaling_actions']} | {s['busy_killed']} |"
            )
    return "\n".join(lines)


def plot_trace(trace: str, per_policy: dict[str, SimResult], out: Path) -> Path:
    """One PNG: queue depth and desired / in-service capacity over time, one panel per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(per_policy), 1, figsize=(11, 2.2 * len(per_policy)), sharex=True)
    for ax, (policy, result) in zip(axes, per_policy.items(), strict=True):
        t = [row[0] / 60 for row in result.series]
        ax.fill_between(t, [row[1] for row in result.series], color="tab:gray", alpha=0.35, label="queued")
        ax.set_ylabel("queued", fontsize=8)
        twin = ax.twinx()
        twin.step(t, [row[2] for row in result.series], where="post", color="tab:blue", lw=1, label="desired")
        twin.step(t, [row[3] for row in result.series], where="post", color="tab:green", lw=1, label="in service")
        twin.set_ylabel("instances", fontsize=8)
        s = result.summary()
        ax.set_title(
            f"{policy}: p95 wait {s['p95_wait_s']:.0f}s, {s['instance_hours']:.2f} instance-h, "
            f"busy killed {s['busy_killed']}", fontsize=9, loc="left",
        )
        if ax is axes[0]:
            handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
            ax.legend(handles, ["queued", "desired", "in service"], fontsize=7, loc="upper right")
    axes[-1].set_xlabel("minutes")
    fig.suptitle(f"trace {trace}", fontsize=11)
    fig.tight_layout()
    path = out / f"autoscale-{trace}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _range(flag: str) -> Callable[[str], tuple[float, float]]:
    def parse(raw: str) -> tuple[float, float]:
        try:
            lo, hi = (float(x) for x in raw.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects MIN:MAX seconds, got {raw!r}") from None
        if not 0 <= lo <= hi:
            raise argparse.ArgumentTypeError(f"{flag} needs 0 <= MIN <= MAX, got {raw!r}")
        return lo, hi

    return parse


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write results, table, goal lines and plots."""
    parser = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__)
    parser.add_argument("traces", nargs="*", type=Path, help="trace CSVs (default: the shipped traces)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--boot", type=_range("--boot"), default=(45.0, 120.0), help="boot delay range MIN:MAX s")
    parser.add_argument("--warm", type=_range("--warm"), default=(10.0, 25.0),
                        help="warm-pool start delay range MIN:MAX s")
    parser.add_argument("--slots", type=int, default=1, help="worker slots per instance")
    parser.add_argument("--max-instances", type=int, default=100)
    parser.add_argument("--target-wait", default="30",
                        help="our target p95 wait: seconds, or per queue like high=5,default=30,low=300")
    parser.add_argument("--instance-price", type=float, default=0.0208, help="$/h of a running instance")
    parser.add_argument("--ebs-price", type=float, default=0.08, help="$/GB-month of the root volume")
    parser.add_argument("--volume-gb", type=float, default=20.0, help="root volume size (GB)")
    parser.add_argument("--wait-cost", type=float, default=WarmPoolConfig().wait_cost,
                        help="instance-hours one job-hour of waiting is worth (warm-pool sizing)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="processes to run simulations in")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-frontier", action="store_true", help="skip ours at other target waits")
    args = parser.parse_args(argv)
    paths = list(args.traces) or [TRACES / f"{name}.csv" for name in DEFAULT_TRACES]
    for path in paths:
        if not path.is_file():
            parser.error(f"trace file not found: {path}")
    if args.slots < 1 or args.max_instances < 1:
        parser.error("--slots and --max-instances must be >= 1")
    if min(args.instance_price, args.ebs_price, args.volume_gb) <= 0 or args.wait_cost < 0:
        parser.error("--instance-price, --ebs-price and --volume-gb must be > 0, --wait-cost >= 0")
    try:
        spec = TargetWaits.parse(args.target_wait)
    except ValueError as exc:
        parser.error(f"--target-wait {args.target_wait!r}: {exc}")
    sim = SimConfig(slots_per_instance=args.slots, boot_min_s=args.boot[0], boot_max_s=args.boot[1],
                    max_instances=args.max_instances, seed=args.seed, warm_min_s=args.warm[0],
                    warm_max_s=args.warm[1], instance_price_h=args.instance_price, ebs_price_gb_month=args.ebs_price,
                    volume_gb=args.volume_gb)
    boot_mean = (args.boot[0] + args.boot[1]) / 2
    fallback = spec.fallback if spec.fallback is not None else spec.loosest()
    ours = PolicyConfig(min_instances=0, max_instances=args.max_instances, slots_per_instance=args.slots,
                        target_wait_s=fallback, queue_targets=spec.per_queue, boot_time_s=boot_mean,
                        idle_hold_s=boot_mean, warm_boot_time_s=(args.warm[0] + args.warm[1]) / 2)
    warm = WarmPoolConfig(max_size=args.max_instances, stopped_cost_ratio=sim.stopped_cost_ratio,
                          wait_cost=args.wait_cost, learn_s=0.0)
    started = time.monotonic()
    try:
        planned = plan(paths, ours, warm, frontier=not args.no_frontier)
        done = run_tasks(all_tasks(planned), sim, args.workers)
    except ValueError as exc:
        print(f"bench.autoscale: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = {trace: {name: done[t] for name, t in p["rows"].items()} for trace, p in planned.items()}
    summaries = {trace: {name: r.summary() for name, r in per.items()} for trace, per in results.items()}

    def curve(key: str) -> dict[str, list[dict[str, Any]]]:
        return {trace: [{"target_wait_s": t.ours.target_wait_s, **done[t].summary()} for t in p[key]]
                for trace, p in planned.items() if p[key]}

    frontier, warm_frontier = curve("frontier"), curve("frontier_warm_pool")
    split = {trace: {"split": done[p["split"]["split"]].summary(), "single": done[p["split"]["single"]].summary(),
                     "targets": p["split"]["targets"]} for trace, p in planned.items() if p["split"]}
    floors = {trace: warm_pool_floor(load_trace(Path(p["rows"]["ours"].trace)), sim, ours.target_wait_s,
                                     ours.boot_time_s) for trace, p in planned.items() if trace == "burst"}
    verdicts = goals(summaries, frontier, warm_frontier, split, ours.target_wait_s, floors=floors,
                     sim_max=sim.max_instances)
    payload = {
        "config": {
            "boot_delay_s": list(args.boot), "warm_start_s": list(args.warm), "slots_per_instance": args.slots,
            "max_instances": args.max_instances, "min_instances": 0, "target_wait": str(spec), "seed": args.seed,
            "prices": {"instance_per_h": args.instance_price, "ebs_per_gb_month": args.ebs_price,
                       "volume_gb": args.volume_gb, "stopped_cost_ratio": round(sim.stopped_cost_ratio, 4)},
            "ours": {"interval_s": 3.0, "boot_time_s": boot_mean, "idle_hold_s": boot_mean,
                     "fast_drain_s": ours.fast_drain_s, "noise_band": ours.noise_band,
                     "warm_pool": {"wait_cost": warm.wait_cost, "max_size": warm.max_size}},
        },
        "results": summaries,
        "goal": {trace: goal_met(per) for trace, per in results.items()},
        "goals": verdicts,
        "frontier": frontier,
        "frontier_warm_pool": warm_frontier,
        "per_queue_targets": split,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    (args.out / "autoscale.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(format_table(results))
    if frontier:
        print("\nours at other target waits (p95 wait / instance-hours):")
        print(format_frontier(frontier))
        print("ours+warm-pool:")
        print(format_frontier(warm_frontier))
    labels = {"a": "default beats seed/KEDA/AWS-TT on p95 and hours, 0 busy killed",
              "b": "a target setting of ours (frontier incl. 0) has p95 and hours <= buildkite-style",
              "c": "with the warm pool, p95 <= target on burst at <= 1.2 x hours of ours without",
              "d": "two queues at 5 s / 300 s each meet their target at fewer hours than 5 s for both"}
    for goal, per_trace in verdicts.items():
        for trace, v in per_trace.items():
            print(f"goal ({goal}) {'PASS' if v['ok'] else 'FAIL'} {trace}: {labels[goal]} -- {v['detail']}")
    if not args.no_plots:
        for trace, per in results.items():
            print(f"plot: {plot_trace(trace, per, args.out)}")
    print(f"results: {args.out / 'autoscale.json'} ({payload['elapsed_s']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
