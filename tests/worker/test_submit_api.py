"""The submit API against a real Redis: validation, idempotency under concurrency, defaults, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.job import JobStatus

from jobfleet.errors import SubmitError
from jobfleet.settings import Settings, load_settings
from jobfleet.submit import IDEMPOTENCY_PREFIX, get_job, submit
from tests.conftest import ROOT
from tests.conftest import test_env as child_env


def _make_nested() -> object:
    def nested() -> None:
        pass

    return nested


@pytest.mark.parametrize(
    ("func", "kwargs", "message"),
    [
        ("jobfleet.demo.jobs.nope", {}, "cannot import job function 'jobfleet.demo.jobs.nope'"),
        ("no_dots", {}, "must be a dotted path"),
        ("nosuchpkg.mod.f", {}, "cannot import job function"),
        ("jobfleet.demo.jobs.FLAKY_KEY", {}, "is not callable"),
        (lambda: None, {}, "module-level function"),
        ("jobfleet.demo.jobs.noop", {"queue": "urgent"}, "unknown queue 'urgent'"),
        ("jobfleet.demo.jobs.noop", {"idempotency_key": ""}, "idempotency key must be a non-empty string"),
        ("jobfleet.demo.jobs.noop", {"idempotency_key": "k" * 201}, "201 characters long; at most 200"),
        ("jobfleet.demo.jobs.noop", {"timeout": 0}, "timeout must be > 0"),
        ("jobfleet.demo.jobs.noop", {"timeout": -5}, "timeout must be > 0"),
        ("jobfleet.demo.jobs.noop", {"timeout": "10"}, "timeout must be a whole number"),
        ("jobfleet.demo.jobs.noop", {"retry": 3}, "retry must be an rq.Retry"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(
    redis: Redis, settings: Settings, func: object, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SubmitError, match=message.replace("(", r"\(").replace(".", r"\.")):
        submit(func, connection=redis, settings=settings, **kwargs)  # type: ignore[arg-type]
    assert Queue("default", connection=redis).count == 0


def test_nested_function_and_unserialisable_args_are_rejected(redis: Redis, settings: Settings) -> None:
    with pytest.raises(SubmitError, match="module-level function"):
        submit(_make_nested(), connection=redis, settings=settings)
    with pytest.raises(SubmitError, match="cannot be serialised"):
        submit("jobfleet.demo.jobs.sleep", threading.Lock(), connection=redis, settings=settings)


def test_submit_stores_defaults_and_tracing_carrier(redis: Redis, settings: Settings) -> None:
    job = submit("jobfleet.demo.jobs.sleep", 1, queue="high", connection=redis, settings=settings)
    fetched = get_job(job.id, connection=redis)
    assert fetched.origin == "high"
    assert fetched.timeout == settings.job_timeout
    assert fetched.retries_left == settings.retry_max
    assert len(fetched.retry_intervals or []) == settings.retry_max
    assert "otel" in fetched.meta
    assert Queue("high", connection=redis).job_ids == [job.id]
    no_retry = submit("jobfleet.demo.jobs.noop", retry=None, timeout=5, connection=redis, settings=settings)
    assert get_job(no_retry.id, connection=redis).retries_left == 0
    custom = submit("jobfleet.demo.jobs.noop", retry=Retry(max=7, interval=1), connection=redis, settings=settings)
    assert get_job(custom.id, connection=redis).retries_left == 7
    with pytest.raises(SubmitError, match="no job with id 'missing'"):
        get_job("missing", connection=redis)


def test_dependent_job_waits_in_deferred_registry(redis: Redis, settings: Settings) -> None:
    first = submit("jobfleet.demo.jobs.noop", connection=redis, settings=settings)
    second = submit("jobfleet.demo.jobs.noop", depends_on=first, connection=redis, settings=settings)
    assert second.get_status(refresh=True) == JobStatus.DEFERRED
    assert Queue("default", connection=redis).job_ids == [first.id]


def test_same_key_returns_same_job(redis: Redis, settings: Settings) -> None:
    a = submit("jobfleet.demo.jobs.noop", idempotency_key="order-1", connection=redis, settings=settings)
    b = submit("jobfleet.demo.jobs.noop", idempotency_key="order-1", connection=redis, settings=settings)
    assert a.id == b.id
    assert Queue("default", connection=redis).count == 1
    ttl = redis.ttl(IDEMPOTENCY_PREFIX + "order-1")
    assert 0 < ttl <= settings.idempotency_ttl


def test_key_whose_job_expired_is_reused(redis: Redis, settings: Settings) -> None:
    a = submit("jobfleet.demo.jobs.noop", idempotency_key="k", connection=redis, settings=settings)
    a.delete()
    b = submit("jobfleet.demo.jobs.noop", idempotency_key="k", connection=redis, settings=settings)
    assert b.id != a.id and get_job(b.id, connection=redis).id == b.id


def test_concurrent_threads_with_one_key_create_one_job(redis_url: str, redis: Redis, settings: Settings) -> None:
    ids: list[str] = []
    barrier = threading.Barrier(16)

    def one() -> None:
        conn = Redis.from_url(redis_url)
        barrier.wait()
        ids.append(submit("jobfleet.demo.jobs.noop", idempotency_key="t-key", connection=conn, settings=settings).id)
        conn.close()

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 16 and len(set(ids)) == 1
    assert Queue("default", connection=redis).job_ids == ids[:1]


def _submit_in_process(args: tuple[str, str]) -> str:
    redis_url, tmp = args
    settings = load_settings(child_env(redis_url, Path(tmp)))
    conn = Redis.from_url(redis_url)
    return submit("jobfleet.demo.jobs.noop", idempotency_key="p-key", connection=conn, settings=settings).id


def test_concurrent_processes_with_one_key_create_one_job(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(_submit_in_process, [(redis_url, str(tmp_path))] * 24))
    assert len(set(ids)) == 1
    assert Queue("default", connection=redis).job_ids == ids[:1]


def test_submit_cli(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    env = child_env(redis_url, tmp_path)
    cmd = [sys.executable, "-m", "worker", "submit", "jobfleet.demo.jobs.sleep", "0.5", "--queue", "low", "--key", "c1"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    job = get_job(out.stdout.strip(), connection=redis)
    assert job.args == [0.5] or job.args == (0.5,)
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert again.stdout.strip() == job.id
    bad = subprocess.run([*cmd[:4], "jobfleet.demo.jobs.nope", "--queue", "zzz"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown queue 'zzz'" in bad.stderr
    assert json.loads(json.dumps(job.meta)) is not None
    tenant = subprocess.run([*cmd[:8], "--tenant", "acme"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert tenant.returncode == 0, tenant.stderr
    assert get_job(tenant.stdout.strip(), connection=redis).origin == "low~acme"
