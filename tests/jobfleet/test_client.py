"""The fast client against a real Redis: RQ fidelity, submit_many, options, bad input, one pool per process."""

from __future__ import annotations

import os
import threading
import zlib

import pytest
from redis import Redis
from rq import Callback, Queue, Retry, SimpleWorker
from rq.job import Dependency, Job, JobStatus

from jobfleet import submit, submit_many
from jobfleet.errors import SubmitError
from jobfleet.settings import Settings
from jobfleet.submit import IDEMPOTENCY_PREFIX, MAX_TIMEOUT, default_client, reset_default_client

FIELDS_THAT_DIFFER = {"created_at", "enqueued_at", "meta", "retry_intervals"}


def _hash(redis: Redis, job_id: str) -> dict[bytes, bytes]:
    return redis.hgetall(Job.key_for(job_id))


def test_job_hash_matches_what_rq_enqueue_writes(redis: Redis, settings: Settings) -> None:
    ours = submit("tests.jobfleet.jobs.record", "a" * 200, 1, kwargs={"extra": [1, 2]}, timeout=77, retry=Retry(max=2),
                  result_ttl=50, failure_ttl=60, connection=redis, settings=settings)
    theirs = Queue("default", connection=redis).enqueue_call(
        "tests.jobfleet.jobs.record", args=("a" * 200, 1), kwargs={"extra": [1, 2]}, timeout=77, retry=Retry(max=2),
        result_ttl=50, failure_ttl=60,
    )
    a, b = _hash(redis, ours.id), _hash(redis, theirs.id)
    assert set(a) - {b"meta"} == set(b)  # ours always carries meta["otel"] (the trace context)
    for field in set(a) - {f.encode() for f in FIELDS_THAT_DIFFER}:
        if field == b"data":
            assert zlib.decompress(a[field]) == zlib.decompress(b[field])
        else:
            assert a[field] == b[field], field
    assert Queue("default", connection=redis).job_ids == [ours.id, theirs.id]
    assert redis.sismember("rq:queues", "rq:queue:default")


def test_submit_many_job_hash_matches_rq_enqueue_many(redis: Redis, settings: Settings) -> None:
    (ours,) = submit_many([{"func": "tests.jobfleet.jobs.record", "args": ["b" * 100], "kwargs": {"extra": 1}}],
                          connection=redis, settings=settings)
    (theirs,) = Queue("default", connection=redis).enqueue_many([Queue.prepare_data(
        "tests.jobfleet.jobs.record", args=("b" * 100,), kwargs={"extra": 1}, timeout=settings.job_timeout,
        retry=Retry(max=settings.retry_max, interval=[1] * settings.retry_max), result_ttl=settings.result_ttl,
        failure_ttl=settings.failure_ttl)])
    a, b = _hash(redis, ours), _hash(redis, theirs.id)
    assert set(a) - {b"meta"} == set(b)
    for field in set(a) - {f.encode() for f in FIELDS_THAT_DIFFER}:
        if field == b"data":
            assert zlib.decompress(a[field]) == zlib.decompress(b[field])
        else:
            assert a[field] == b[field], field


def test_submit_many_jobs_are_run_by_a_plain_rq_worker(redis: Redis, settings: Settings) -> None:
    ids = submit_many(
        [{"func": "tests.jobfleet.jobs.record", "args": [f"j{i}"], "kwargs": {"extra": i}} for i in range(20)]
        + [{"func": "tests.jobfleet.jobs.record", "args": ["hi"], "queue": "high", "meta": {"team": "x"}}],
        connection=redis, settings=settings,
    )
    assert len(ids) == len(set(ids)) == 21
    assert Queue("default", connection=redis).job_ids == ids[:20]
    assert Queue("high", connection=redis).job_ids == ids[20:]
    SimpleWorker([Queue("high", connection=redis), Queue("default", connection=redis)],
                 connection=redis).work(burst=True)
    for i, job_id in enumerate(ids[:20]):
        job = Job.fetch(job_id, connection=redis)
        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value() == {"name": f"j{i}", "value": None, "extra": i}
        assert job.retries_left == settings.retry_max and len(job.retry_intervals) == settings.retry_max
    assert Job.fetch(ids[20], connection=redis).meta["team"] == "x"


def test_submit_many_idempotency_within_the_call_and_against_existing_jobs(redis: Redis, settings: Settings) -> None:
    before = submit("tests.jobfleet.jobs.record", "old", idempotency_key="k-old", connection=redis, settings=settings)
    ids = submit_many(
        [
            {"func": "tests.jobfleet.jobs.record", "args": ["a"], "idempotency_key": "k1"},
            {"func": "tests.jobfleet.jobs.record", "args": ["b"], "idempotency_key": "k1"},
            {"func": "tests.jobfleet.jobs.record", "args": ["c"], "idempotency_key": "k-old"},
            {"func": "tests.jobfleet.jobs.record", "args": ["d"]},
        ],
        connection=redis, settings=settings,
    )
    assert ids[0] == ids[1] and ids[2] == before.id and len(set(ids)) == 3
    assert Queue("default", connection=redis).job_ids == [before.id, ids[0], ids[3]]
    again = submit_many([{"func": "tests.jobfleet.jobs.record", "args": ["z"], "idempotency_key": "k1"}],
                        connection=redis, settings=settings)
    assert again == [ids[0]]
    assert 0 < redis.ttl(IDEMPOTENCY_PREFIX + "k1") <= settings.idempotency_ttl


def test_concurrent_submit_many_with_shared_keys_make_one_job_per_key(
    redis_url: str, redis: Redis, settings: Settings
) -> None:
    results: list[list[str]] = []
    barrier = threading.Barrier(8)

    def one() -> None:
        conn = Redis.from_url(redis_url)
        barrier.wait()
        results.append(submit_many([{"func": "tests.jobfleet.jobs.record", "args": [k], "idempotency_key": f"s{k}"}
                                    for k in range(50)], connection=conn, settings=settings))
        conn.close()

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and all(r == results[0] for r in results)
    assert Queue("default", connection=redis).count == 50


def test_submit_many_with_dependencies_inside_the_call(redis: Redis, settings: Settings) -> None:
    ids = submit_many(
        [
            {"func": "tests.jobfleet.jobs.record", "args": ["first"], "job_id": "first-job"},
            {"func": "tests.jobfleet.jobs.record", "args": ["second"], "depends_on": "first-job"},
        ],
        connection=redis, settings=settings,
    )
    assert ids[0] == "first-job"
    assert Job.fetch(ids[1], connection=redis).get_status() == JobStatus.DEFERRED
    SimpleWorker([Queue("default", connection=redis)], connection=redis).work(burst=True)
    assert Job.fetch(ids[1], connection=redis).get_status() == JobStatus.FINISHED


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"args": [1]}, "job 1: 'func' is required"),
        ({"func": "tests.jobfleet.jobs.record", "colour": "red"}, "job 1: unknown option(s) 'colour'"),
        ({"func": "tests.jobfleet.jobs.record", "args": "abc"}, "job 1: args must be a list or tuple"),
        ({"func": "tests.jobfleet.jobs.record", "kwargs": [1]}, "job 1: kwargs must be a mapping"),
        ({"func": "tests.jobfleet.jobs.nope"}, "job 1: cannot import job function"),
        ({"func": "tests.jobfleet.jobs.record", "queue": "zzz"}, "job 1: unknown queue 'zzz'"),
        ({"func": "tests.jobfleet.jobs.record", "depends_on": "no-such-job"}, "do not exist: no-such-job"),
        ({"func": "tests.jobfleet.jobs.record", "tenant": "bad tenant!"}, "job 1: tenant 'bad tenant!'"),
        ("not a mapping", "job 1: expected a mapping"),
    ],
)
def test_submit_many_rejects_bad_items_and_writes_nothing(
    redis: Redis, settings: Settings, item: object, message: str
) -> None:
    with pytest.raises(SubmitError) as info:
        submit_many([{"func": "tests.jobfleet.jobs.record"}, item], connection=redis, settings=settings)  # type: ignore[list-item]
    assert message in str(info.value)
    assert Queue("default", connection=redis).count == 0
    assert not redis.keys("rq:job:*")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depends_on": 42}, "depends_on must be a job, a job id, an rq.Dependency or a list of them, got int"),
        ({"depends_on": ["ok", 3.5]}, "got float"),
        ({"depends_on": "missing-id"}, "depends_on names job(s) that do not exist: missing-id"),
        ({"timeout": 10**12}, f"timeout must be at most {MAX_TIMEOUT} seconds"),
        ({"meta": ["x"]}, "meta must be a mapping"),
        ({"meta": {"otel": 1}}, "meta key 'otel' is reserved"),
        ({"result_ttl": "1"}, "result_ttl must be a whole number"),
        ({"ttl": 0}, "ttl must be > 0"),
        ({"on_success": 5}, "on_success must be a job-style function"),
        ({"on_failure": "tests.jobfleet.jobs.nope"}, "cannot import job function"),
        ({"job_id": "a:b"}, "job_id must be a non-empty string"),
        ({"kwargs": {"x": threading.Lock()}}, "cannot be serialised"),
    ],
)
def test_submit_bad_options(redis: Redis, settings: Settings, options: dict[str, object], message: str) -> None:
    with pytest.raises(SubmitError) as info:
        submit("tests.jobfleet.jobs.record", "x", connection=redis, settings=settings, **options)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert Queue("default", connection=redis).count == 0


def test_options_are_never_taken_for_job_arguments(redis: Redis, settings: Settings) -> None:
    dep = submit("tests.jobfleet.jobs.record", "dep", connection=redis, settings=settings)
    job = submit(
        "tests.jobfleet.jobs.record", "n", kwargs={"extra": "kw"}, description="custom", meta={"owner": "me"},
        result_ttl=123, failure_ttl=456, on_success="tests.jobfleet.jobs.on_success_mark",
        on_failure=Callback("tests.jobfleet.jobs.on_failure_mark"), depends_on=Dependency([dep], allow_failure=True),
        connection=redis, settings=settings,
    )
    fetched = Job.fetch(job.id, connection=redis)
    assert fetched.kwargs == {"extra": "kw"} and list(fetched.args) == ["n"]
    assert fetched.description == "custom" and fetched.meta["owner"] == "me"
    assert fetched.result_ttl == 123 and fetched.failure_ttl == 456
    assert fetched.allow_dependency_failures
    SimpleWorker([Queue("default", connection=redis)], connection=redis).work(burst=True)
    assert redis.lrange("test:callbacks", 0, -1) == [f"success:{job.id}".encode()]


def test_tenant_jobs_go_to_the_tenant_queue(redis: Redis, settings: Settings) -> None:
    job = submit("tests.jobfleet.jobs.record", "t", tenant="acme", connection=redis, settings=settings)
    ids = submit_many([{"func": "tests.jobfleet.jobs.record", "tenant": "acme"}], connection=redis, settings=settings)
    assert Queue("default~acme", connection=redis).job_ids == [job.id, *ids]
    assert redis.smembers("jobfleet:tenants:default") == {b"acme"}
    assert Job.fetch(ids[0], connection=redis).meta["tenant"] == "acme"


def test_one_client_per_process_and_a_new_one_after_fork(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_default_client()
    try:
        settings, conn = default_client()
        assert default_client() == (settings, conn)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            _child_settings, child_conn = default_client()
            os.write(write, b"1" if child_conn is not conn else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
        job = submit("tests.jobfleet.jobs.record", "default-client")
        assert Queue("default", connection=conn).job_ids == [job.id]
    finally:
        reset_default_client()


def test_module_exports() -> None:
    import jobfleet

    for name in ("submit", "submit_many", "get_job", "report_progress", "SubmitError", "PermanentError"):
        assert hasattr(jobfleet, name)
    assert jobfleet.submit is submit and jobfleet.submit_many is submit_many
