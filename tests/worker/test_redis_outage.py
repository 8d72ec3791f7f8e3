"""A Redis outage longer than the client's retries: real workers keep running, log, and resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

from redis import Redis
from rq.job import Job, JobStatus

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import load_settings
from jobfleet.submit import submit
from tests.worker.helpers import start_worker, wait_for, worker_env

OUTAGE_S = 9.0


def _events(log: Path, name: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == name:
            found.append(record)
    return found


def _status(url: str, job_id: str) -> str | None:
    client = Redis.from_url(url)
    try:
        return Job.fetch(job_id, connection=client).get_status(refresh=False)
    finally:
        client.close()


def test_workers_survive_a_redis_outage_longer_than_the_client_retries(
    own_redis: EmbeddedRedis, tmp_path: Path, execution_mode: str
) -> None:
    env = worker_env(own_redis.url, tmp_path, REDIS_RETRIES="2", JOBFLEET_REDIS_BACKOFF_CAP="2")
    settings = load_settings(env)
    redis = Redis.from_url(own_redis.url)
    names = ("w1", "w2", "w3")
    with start_worker(env, tmp_path, name="w1") as w1, start_worker(env, tmp_path, name="w2") as w2, \
            start_worker(env, tmp_path, name="w3") as w3:
        procs = (w1, w2, w3)
        wait_for(lambda: redis.scard("rq:workers") == 3, 20, what="all workers registered")
        # One job runs across the whole outage; one ends early in it (its outcome cannot be recorded);
        # the third worker sits idle in its dequeue.
        long_job = submit("tests.worker.jobs.mark_and_sleep", "long", OUTAGE_S + 5, connection=redis,
                          settings=settings)
        wait_for(lambda: int(redis.get("long") or 0) == 1, 20, what="long job start")
        short_job = submit("tests.worker.jobs.mark_and_sleep", "short", 2.0, connection=redis, settings=settings)
        wait_for(lambda: int(redis.get("short") or 0) == 1, 20, what="short job start")
        time.sleep(1.2)  # AOF appendfsync everysec: both jobs' STARTED state is on disk
        redis.close()
        own_redis.kill()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        assert all(p.poll() is None for p in procs), "a worker exited during the outage"
        own_redis.start()  # same port and data dir: the AOF is reloaded
        redis = Redis.from_url(own_redis.url)
        try:
            wait_for(lambda: _status(own_redis.url, long_job.id) == JobStatus.FINISHED, 30, interval=0.2,
                     what="the job that ran through the outage to finish")
            assert int(redis.get("long") or 0) == 1  # it ran once, not re-run
            wait_for(lambda: _status(own_redis.url, short_job.id) == JobStatus.FINISHED, 30, interval=0.2,
                     what="the job that ended in the outage to finish")
            if execution_mode == "fork":
                assert int(redis.get("short") or 0) == 2  # put back by its worker once Redis returned, ran again
            else:
                assert int(redis.get("short") or 0) == 1  # its result waited in the worker and was written later
            fresh = [submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings) for _ in range(6)]
            wait_for(lambda: all(_status(own_redis.url, j.id) == JobStatus.FINISHED for j in fresh), 20,
                     what="new jobs after the outage")
            assert all(p.poll() is None for p in procs)
            assert {Job.fetch(j.id, connection=redis).worker_name for j in fresh} <= set(names)
        finally:
            redis.close()
    logs = {name: tmp_path / f"{name}.log" for name in names}
    idle = max(names, key=lambda n: len(_events(logs[n], "redis_unavailable")))  # the one idle in its dequeue
    failures = _events(logs[idle], "redis_unavailable")
    assert len(failures) >= 3, logs[idle].read_text()[-3000:]  # one line per attempt, backing off
    waits = [float(str(f["retry_in_s"])) for f in failures]
    assert waits[0] < waits[1] and max(waits) <= 2.0
    assert len(failures) <= OUTAGE_S + 2  # backed off: not a tight loop
    assert _events(logs[idle], "redis_reconnected")
    requeued = [e for log in logs.values() for e in _events(log, "job_requeued")]
    if execution_mode == "fork":
        assert any(_events(log, "heartbeat_failed") for log in logs.values())  # kept watching its horse
        assert [(e["job_id"], e["reason"]) for e in requeued] == [(short_job.id, "redis outage")]
    else:
        assert requeued == []
    assert time.monotonic() - down_at < 60
