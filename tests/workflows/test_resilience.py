"""A workflow survives kill -9 of a worker and a Redis crash + restart (AOF), and mixes worker kinds."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from redis import Redis

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import load_settings
from jobfleet.workflows import RetrySpec, Workflow, array, submit_workflow, task
from tests.worker.helpers import kill_tree, running, start_worker, wait_for, worker_env
from tests.workflows.conftest import wait_end
from tests.workflows.test_scale import plain_rq_workers

J = "tests.workflows.jobs"
SWEEP = ["-m", "worker", "sweep", "--loop", "--interval", "1"]


def _entries(redis: Redis, log: str) -> list[str]:
    return [v.decode() for v in redis.lrange(log, 0, -1)]


def test_kill_9_of_a_worker_mid_workflow_ends_succeeded_with_every_task_run(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    log = "log:k9"
    wf = Workflow("k9", [
        # a retry left: the sweep re-queues an abandoned job using one (with none it is dead-lettered)
        array("slow", f"{J}.child", size=4, args=[log], kwargs={"sleep": 1.5}, retry=RetrySpec(max=1)),
        task("join", f"{J}.record", args=[log, "join"], depends_on=["slow"]),
    ])
    wid = submit_workflow(wf, connection=redis, settings=settings).id
    with running(SWEEP, env, tmp_path / "sweep.log"):
        with start_worker(env, tmp_path, name="doomed") as doomed:
            wait_for(lambda: int(redis.hget(f"jobfleet:wf:{wid}", "running") or 0) >= 1, 30, what="a task running")
            kill_tree(doomed, signal.SIGKILL)
        with start_worker(env, tmp_path, name="rescuer"):
            status = wait_end(redis, wid, timeout=60)
    assert status["status"] == "succeeded", status
    assert status["counts"]["succeeded"] == 5
    entries = _entries(redis, log)
    assert set(entries) == {"c:0", "c:1", "c:2", "c:3", "join"}
    assert entries[-1] == "join"


def test_redis_crash_and_restart_mid_workflow_ends_succeeded(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    env = worker_env(own_redis.url, tmp_path)
    settings = load_settings(env)
    redis = Redis.from_url(own_redis.url)
    log = "log:restart"
    wf = Workflow("restart", [
        array("chain", f"{J}.child", size=8, depends="SEQUENTIAL", args=[log], kwargs={"sleep": 0.4},
              retry=RetrySpec(max=2, intervals=(0,))),
        task("join", f"{J}.record", args=[log, "join"], depends_on=["chain"]),
    ])
    wid = submit_workflow(wf, connection=redis, settings=settings).id
    with start_worker(env, tmp_path, name="w1"), start_worker(env, tmp_path, name="w2"), \
            running(SWEEP, env, tmp_path / "sweep.log"):
        wait_for(lambda: redis.llen(log) >= 3, 30, what="three tasks done")
        time.sleep(1.2)  # appendfsync everysec: what happened so far is on disk
        redis.close()
        own_redis.kill()
        time.sleep(1.0)
        own_redis.start()
        redis = Redis.from_url(own_redis.url)
        status = wait_end(redis, wid, timeout=90)
    assert status["status"] == "succeeded", status
    assert status["counts"]["succeeded"] == 9
    entries = _entries(redis, log)
    assert set(entries) == {*(f"c:{i}" for i in range(8)), "join"}
    # SEQUENTIAL holds across the crash: first runs are in index order (a re-run may repeat one)
    firsts = list(dict.fromkeys(e for e in entries if e.startswith("c:")))
    assert firsts == [f"c:{i}" for i in range(8)]
    redis.close()


def test_a_workflow_run_partly_by_plain_rq_workers_completes(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = worker_env(redis_url, tmp_path)
    settings = load_settings(env)
    log = "log:mixed"
    wf = Workflow("mixed", [
        array("a", f"{J}.child", size=12, args=[log], kwargs={"sleep": 0.1}),
        array("b", f"{J}.child", size=12, depends="N_TO_N", depends_on=["a"], args=[log, "b"]),
        task("join", f"{J}.record", args=[log, "join"], depends_on=["b"]),
    ])
    wid = submit_workflow(wf, connection=redis, settings=settings).id
    with start_worker(env, tmp_path, name="jf"), plain_rq_workers(redis_url, env, tmp_path, 1):
        status = wait_end(redis, wid, timeout=90)
    assert status["status"] == "succeeded", status
    workers = {(redis.hget(f"rq:job:{wid}-{n}-{i}", "worker_name") or b"").decode()
               for n, size in ((0, 12), (1, 12)) for i in range(size)}
    assert "jf" in workers and "plain-0" in workers, workers
    assert _entries(redis, log)[-1] == "join"
