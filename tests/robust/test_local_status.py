"""`make run` status line and banner: no stale decision from a previous run, the instance cap is named,
and the demo jobs that fail on purpose are listed."""

from __future__ import annotations

import time

from redis import Redis

from jobfleet.local.fleet import demo_failure_lines, format_status
from jobfleet.local.status import DECISIONS_STREAM, read_status
from jobfleet.settings import load_settings


def _decision(redis: Redis, ts: float, reason: str, desired: int = 4) -> None:
    redis.xadd(DECISIONS_STREAM, {"ts": f"{ts:.3f}", "desired": desired, "in_service": desired, "reason": reason})


def test_a_previous_runs_decision_is_not_shown_as_current(redis: Redis) -> None:
    settings = load_settings({"JOBFLEET_MAX_INSTANCES": "4"})
    _decision(redis, time.time() - 3600, "steady at 4: need 2-2 slots (old run)")
    run_began = time.time()
    status = read_status(redis, settings.queues, since=run_began)
    assert status.decision is None
    line = format_status(status, settings)
    assert "old run" not in line and "no decision yet in this run" in line
    _decision(redis, time.time(), "steady at 1: need 1-1 slots (this run)", desired=1)
    line = format_status(read_status(redis, settings.queues, since=run_began), settings)
    assert "this run" in line and "capped" not in line


def test_the_status_line_says_when_max_instances_caps_the_need(redis: Redis) -> None:
    settings = load_settings({"JOBFLEET_MAX_INSTANCES": "4"})
    _decision(redis, time.time(), "scale out 2->4: need 9-11 slots (steady 9 for λ=9.00/s±10% S=1.0s, ...)")
    line = format_status(read_status(redis, settings.queues, since=time.time() - 10), settings)
    assert "capped by JOBFLEET_MAX_INSTANCES=4 (need 9)" in line


def test_the_banner_lists_the_demo_jobs_that_fail_on_purpose() -> None:
    text = "\n".join(demo_failure_lines())
    assert "always_fails" in text and "dead-lettered" in text
    assert "flaky" in text and "retry" in text
