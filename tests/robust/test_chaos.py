"""Bounded chaos in `make test`: kill -9 of busy workers every 3 s, one Redis kill -9 + AOF restart.

Asserts no accepted job is lost, no job is taken from a live worker, and kill→restart within 10 s at the
median and 20 s at worst with default settings. `make chaos` runs the long version (bench/chaos.py).
"""

from __future__ import annotations

import json
import sys

from bench.chaos import run_chaos


def test_chaos_loses_nothing_and_recovers_within_seconds() -> None:
    result = run_chaos(jobs=150, workers=3, duration=24, kill_every=3, job_seconds=0.3, redis_kill_at=10,
                       drain_timeout=60)
    summary = result.summary()
    print("chaos:", json.dumps(summary), file=sys.stderr)
    print(f"chaos: duplicated={result.duplicated} restart min/median/max={summary['restart_min_s']}/"
          f"{summary['restart_median_s']}/{summary['restart_max_s']} s", file=sys.stderr)
    assert result.lost == 0, summary
    assert result.dead_lettered == 0, summary
    assert result.false_recoveries == 0, summary
    assert result.kills >= 5 and len(result.restart_s) >= 4, summary
    assert summary["restart_median_s"] <= 10, summary
    assert summary["restart_max_s"] <= 20, summary
