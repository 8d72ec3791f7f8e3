"""Autoscaling benchmark (`make bench-autoscale`): our policy vs four baselines on the shipped traces.

``python -m bench.autoscale [TRACE.csv ...] [--out bench/results] [--boot 45:120] [--slots 1] [--no-plots]``
writes ``autoscale.json`` (every trace x policy: p50/p95/p99 wait, instance-hours, scaling actions,
busy workers killed), prints a table, and draws one PNG per trace.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from autoscaler.policy import PolicyConfig
from bench.sim import Job, SimConfig, SimPolicy, SimResult, load_trace, run_policy
from bench.sim_policies import AwsTargetTracking, BuildkiteStyle, KedaHpa, OursPolicy, SeedThreshold

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces"
DEFAULT_TRACES = ("steady", "diurnal", "burst", "heavy_tail")
BASELINES = ("seed-threshold", "keda-hpa", "aws-target-tracking", "buildkite-style")


def policy_factories(
    jobs: Sequence[Job], sim: SimConfig, ours: PolicyConfig
) -> dict[str, Callable[[], SimPolicy]]:
    """Fresh-policy factories for ours and the four baselines on this trace."""
    mean_service = statistics.fmean(j.service_s for j in jobs)
    # AWS guidance: target backlog per instance = acceptable latency / mean processing time (x slots)
    aws_target = max(1.0, ours.target_wait_s / mean_service * sim.slots_per_instance)
    return {
        "ours": lambda: OursPolicy(ours),
        "seed-threshold": lambda: SeedThreshold(sim.min_instances, sim.max_instances),
        "keda-hpa": lambda: KedaHpa(sim.slots_per_instance),
        "aws-target-tracking": lambda: AwsTargetTracking(aws_target, sim.min_instances),
        "buildkite-style": lambda: BuildkiteStyle(sim.slots_per_instance),
    }


def _run_one(args: tuple[str, str, SimConfig, PolicyConfig]) -> tuple[str, str, SimResult]:
    trace_path, policy, sim, ours = args
    jobs = load_trace(Path(trace_path))
    result = run_policy(jobs, policy_factories(jobs, sim, ours)[policy], sim)
    return Path(trace_path).stem, policy, result


def run_benchmark(
    trace_paths: Sequence[Path], sim: SimConfig, ours: PolicyConfig, workers: int = 2
) -> dict[str, dict[str, SimResult]]:
    """Every trace x policy (in ``workers`` processes); results keyed by trace stem then policy."""
    tasks = [(str(p), name, sim, ours) for p in trace_paths for name in ("ours", *BASELINES)]
    results: dict[str, dict[str, SimResult]] = {}
    if workers <= 1:
        outcomes = [_run_one(t) for t in tasks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(pool.map(_run_one, tasks))
    for trace, policy, result in outcomes:
        results.setdefault(trace, {})[policy] = result
    return results


FRONTIER_TARGETS = (0.01, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def run_frontier(
    trace_paths: Sequence[Path], sim: SimConfig, ours: PolicyConfig, targets: Sequence[float], workers: int = 2
) -> dict[str, list[dict[str, float | int]]]:
    """Ours at each target p95 wait: the wait/cost trade-off curve, per trace."""
    tasks = [(str(p), "ours", sim, replace(ours, target_wait_s=t)) for p in trace_paths for t in targets]
    if workers <= 1:
        outcomes = [_run_one(t) for t in tasks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(pool.map(_run_one, tasks))
    curve: dict[str, list[dict[str, float | int]]] = {}
    for (_, _, _, cfg), (trace, _, result) in zip(tasks, outcomes, strict=True):
        curve.setdefault(trace, []).append({"target_wait_s": cfg.target_wait_s, **result.summary()})
    return curve


def format_frontier(curve: dict[str, list[dict[str, float | int]]]) -> str:
    """One line per trace: p95 wait / instance-hours of ours at each target."""
    lines = ["| trace | " + " | ".join(f"target {p['target_wait_s']:g}s" for p in next(iter(curve.values()))) + " |"]
    lines.append("|---|" + "---:|" * len(next(iter(curve.values()))))
    for trace, points in curve.items():
        cells = " | ".join(f"{p['p95_wait_s']:.1f}s / {p['instance_hours']:.2f}h" for p in points)
        lines.append(f"| {trace} | {cells} |")
    return "\n".join(lines)


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


def _boot(raw: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in raw.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--boot expects MIN:MAX seconds, got {raw!r}") from None
    if not 0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"--boot needs 0 <= MIN <= MAX, got {raw!r}")
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write results, table and plots."""
    parser = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__)
    parser.add_argument("traces", nargs="*", type=Path, help="trace CSVs (default: the four shipped traces)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--boot", type=_boot, default=(45.0, 120.0), help="boot delay range MIN:MAX s")
    parser.add_argument("--slots", type=int, default=1, help="worker slots per instance")
    parser.add_argument("--max-instances", type=int, default=100)
    parser.add_argument("--target-wait", type=float, default=30.0)
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
    sim = SimConfig(slots_per_instance=args.slots, boot_min_s=args.boot[0], boot_max_s=args.boot[1],
                    max_instances=args.max_instances, seed=args.seed)
    boot_mean = (args.boot[0] + args.boot[1]) / 2
    ours = PolicyConfig(min_instances=0, max_instances=args.max_instances, slots_per_instance=args.slots,
                        target_wait_s=args.target_wait, boot_time_s=boot_mean, idle_hold_s=boot_mean)
    started = time.monotonic()
    try:
        results = run_benchmark(paths, sim, ours, workers=args.workers)
        frontier = {} if args.no_frontier else run_frontier(paths, sim, ours, FRONTIER_TARGETS, args.workers)
    except ValueError as exc:
        print(f"bench.autoscale: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    goals: dict[str, dict[str, bool]] = {trace: goal_met(per) for trace, per in results.items()}
    payload = {
        "config": {
            "boot_delay_s": list(args.boot), "slots_per_instance": args.slots, "max_instances": args.max_instances,
            "min_instances": 0, "target_wait_s": args.target_wait, "seed": args.seed,
            "ours": {"interval_s": 3.0, "boot_time_s": boot_mean, "idle_hold_s": boot_mean,
                     "fast_drain_s": ours.fast_drain_s, "noise_band": ours.noise_band},
        },
        "results": {trace: {p: r.summary() for p, r in per.items()} for trace, per in results.items()},
        "goal": goals,
        "frontier": frontier,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    (args.out / "autoscale.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(format_table(results))
    if frontier:
        print("\nours at other target waits (p95 wait / instance-hours):")
        print(format_frontier(frontier))
    for trace, verdict in goals.items():
        missed = [k for k, ok in verdict.items() if not ok]
        print(f"{trace}: goal {'MET' if not missed else 'NOT met: ' + ', '.join(missed)}")
    if not args.no_plots:
        for trace, per in results.items():
            print(f"plot: {plot_trace(trace, per, args.out)}")
    print(f"results: {args.out / 'autoscale.json'} ({payload['elapsed_s']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
