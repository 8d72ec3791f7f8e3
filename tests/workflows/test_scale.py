"""Scale: fan-out to 1,000 then fan-in, run by plain `rq worker` processes; a 10,000-child array's status in O(1)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from redis import Redis

from jobfleet.settings import Settings
from jobfleet.workflows import Workflow, array, cancel_workflow, get_workflow, submit_workflow, task
from jobfleet.workflows.store import read_status
from tests.worker.helpers import running, wait_for
from tests.workflows.conftest import wait_end

J = "tests.workflows.jobs"


def plain_rq_workers(url: str, env: dict[str, str], tmp_path: Path, count: int) -> contextlib.ExitStack:
    """``count`` plain RQ worker processes (RQ's own CLI, non-forking SimpleWorker) on every queue."""
    stack = contextlib.ExitStack()
    for k in range(count):
        stack.enter_context(running(
            ["-m", "rq.cli", "worker", "-u", url, "-w", "rq.worker.SimpleWorker", "-n", f"plain-{k}",
             "--logging_level", "WARNING", "high", "default", "low"],
            env, tmp_path / f"plain-{k}.log"))
    return stack


def test_fan_out_to_1000_then_fan_in_on_plain_rq_workers(redis: Redis, settings: Settings, tmp_path: Path) -> None:
    from tests.conftest import test_env

    log = "log:fan"
    wf = Workflow("fan", [
        task("start", f"{J}.record", args=[log, "start"]),
        array("many", f"{J}.child", size=1000, args=[log], depends_on=["start"]),
        task("join", f"{J}.record", args=[log, "join"], depends_on=["many"]),
    ])
    wid = submit_workflow(wf, connection=redis, settings=settings).id
    url = settings.redis_url or ""
    with plain_rq_workers(url, test_env(url, tmp_path), tmp_path, 2):
        status = wait_end(redis, wid, timeout=120)
    assert status["status"] == "succeeded", status
    assert status["counts"]["succeeded"] == 1002
    order = [v.decode() for v in redis.lrange(log, 0, -1)]
    assert order[0] == "start" and order[-1] == "join"
    assert sorted(order[1:-1]) == sorted(f"c:{i}" for i in range(1000))


def _commands(redis: Redis) -> dict[str, int]:
    stats = redis.info("commandstats")
    return {k: int(v["calls"]) for k, v in stats.items()}


def test_array_of_10000_submits_at_once_and_its_status_is_one_command(redis: Redis, settings: Settings) -> None:
    wf = Workflow("big", [array("x", f"{J}.noop", size=10_000), task("after", f"{J}.noop", depends_on=["x"])])
    wid = submit_workflow(wf, connection=redis, settings=settings).id
    assert redis.llen("rq:queue:default") == 10_000  # every child queued, the dependent is not
    assert redis.hget(f"rq:job:{wid}-1-0", "status") == b"deferred"
    before = _commands(redis)
    status = read_status(redis, wid)
    after = _commands(redis)
    changed = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    # the status read is ONE HMGET whatever the size (INFO itself is the other command counted)
    assert changed == {"cmdstat_hmget": 1, "cmdstat_info": 1}, changed
    assert status is not None and status["total"] == 10_001
    assert status["counts"] == {"queued": 10_001, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
    result = cancel_workflow(redis, wid)
    assert result["status"] == "canceled"
    assert get_workflow(wid, connection=redis)["counts"]["canceled"] == 10_001


def test_children_get_their_index_from_plain_rq(redis: Redis, settings: Settings, tmp_path: Path) -> None:
    """A plain RQ worker (forking, RQ's CLI) runs array children: index as argument and via the helper."""
    from tests.conftest import test_env

    log = "log:idx"
    wid = submit_workflow(Workflow("idx", [array("x", f"{J}.child", size=3, args=[log])]),
                          connection=redis, settings=settings).id
    url = settings.redis_url or ""
    with running(["-m", "rq.cli", "worker", "-u", url, "--burst", "default"], test_env(url, tmp_path),
                 tmp_path / "rq.log") as proc:
        wait_for(lambda: proc.poll() is not None, 60, what="burst worker exit")
    assert wait_end(redis, wid, 5)["status"] == "succeeded"
    assert sorted(v.decode() for v in redis.lrange(log, 0, -1)) == ["c:0", "c:1", "c:2"]
    assert sys.executable
