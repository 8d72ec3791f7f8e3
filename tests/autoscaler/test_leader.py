"""Leader lock with a real redis-server: one daemon acts, a standby observes and takes over when the lock expires."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from redis import Redis
from rq import Queue

from autoscaler import metrics
from autoscaler.daemon import DECISIONS_STREAM, Daemon
from autoscaler.leader import LEADER_KEY, LeaderLock
from autoscaler.policy import InstanceState
from jobfleet.settings import load_settings
from tests.conftest import test_env as child_env


def _until(what: str, check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_lock_is_exclusive_renewed_only_by_its_holder_and_taken_over_after_expiry(redis: Redis) -> None:
    a, b = LeaderLock(redis, 0.5, me="a"), LeaderLock(redis, 0.5, me="b")
    assert a.acquire_or_renew() and not b.acquire_or_renew()
    assert a.holder() == "a" and not b.renew() and not b.release()
    assert a.renew() and redis.pttl(LEADER_KEY) > 300
    _until("a's lease to expire", lambda: b.acquire_or_renew())  # a stopped renewing: b takes over
    assert b.holder() == "b" and not a.renew() and not a.acquire_or_renew()
    assert b.release() and a.acquire_or_renew()


class SharedBackend:
    """One fleet shared by both daemons; every capacity change checks who holds the lock at that instant."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.calls: list[tuple[str, str | None]] = []  # (caller, lock holder at the time of the call)
        self.caller = threading.local()
        self.lock = threading.Lock()

    def fleet(self) -> list[InstanceState]:
        return []  # nothing ever becomes ready: every leader tick wants to scale out

    def desired(self) -> int:
        return 0

    def set_desired(self, desired: int) -> None:
        holder = self.redis.get(LEADER_KEY)
        with self.lock:
            self.calls.append((self.caller.name, holder.decode() if holder else None))

    def drain(self, instance_ids: Sequence[str]) -> list[str]:
        raise AssertionError("nothing to drain in this test")

    def close(self) -> None:
        pass


def test_two_daemons_never_both_change_capacity(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    settings = load_settings(child_env(redis_url, tmp_path, JOBFLEET_QUEUES="default", JOBFLEET_LEADER_TTL="10",
                                       JOBFLEET_RECOVERY_INTERVAL="1000"))
    for _ in range(5):
        Queue("default", connection=redis).enqueue("jobfleet.demo.jobs.sleep", 1)
    backend = SharedBackend(redis)
    daemons = {name: Daemon(settings, backend, redis, daemon_id=name) for name in ("A", "B")}
    for d in daemons.values():
        d.lock.ttl_ms = 400  # short lease so the takeover happens within the test
    stopped = {"A": threading.Event(), "B": threading.Event()}
    codes: dict[str, list[str]] = {"A": [], "B": []}

    def loop(name: str) -> None:
        backend.caller.name = name
        while not stopped[name].is_set():
            codes[name].append(daemons[name].step().code)
            time.sleep(0.01)

    threads = {name: threading.Thread(target=loop, args=(name,), daemon=True) for name in daemons}
    threads["A"].start()
    _until("A to lead", lambda: backend.calls and backend.calls[0][0] == "A")
    threads["B"].start()
    _until("B to step as a standby", lambda: codes["B"].count("follower") >= 5)
    stopped["A"].set()  # A dies without releasing: B must wait for the lease to expire, then act
    threads["A"].join(5)
    _until("B to take over", lambda: any(caller == "B" for caller, _ in backend.calls))
    time.sleep(0.2)
    stopped["B"].set()
    threads["B"].join(5)

    assert all(caller == holder for caller, holder in backend.calls), backend.calls
    callers = [caller for caller, _ in backend.calls]
    switch = callers.index("B")
    assert set(callers[:switch]) == {"A"} and set(callers[switch:]) == {"B"}, "capacity changes interleaved"
    assert "follower" in codes["B"] and "follower" not in codes["A"]
    entries = [{k.decode(): v.decode() for k, v in raw.items()} for _, raw in redis.xrange(DECISIONS_STREAM)]
    assert {e["daemon"] for e in entries} == {"A", "B"} and all(e["code"] != "follower" for e in entries)
    assert json.loads(entries[0]["inputs"])["queued"] == 5
    assert metrics.LEADER._value.get() in (0, 1)


class PoolBackend(SharedBackend):
    """Records PutWarmPool sizes."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.pools: list[int] = []

    def warm_pool_ready(self) -> int:
        return 0

    def set_warm_pool(self, size: int) -> None:
        self.pools.append(size)


def test_a_new_leader_does_not_empty_the_warm_pool_before_it_has_learned_the_bursts(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    settings = load_settings(child_env(redis_url, tmp_path, JOBFLEET_QUEUES="default", JOBFLEET_WARM_POOL_MAX="6",
                                       JOBFLEET_MAX_INSTANCES="8", JOBFLEET_RECOVERY_INTERVAL="1000"))
    backend = PoolBackend(redis)
    backend.caller.name = "A"
    queue = Queue("default", connection=redis)
    for _ in range(30):
        queue.enqueue("jobfleet.demo.jobs.sleep", 1)
    first = Daemon(settings, backend, redis, daemon_id="A")
    decision = first.step()
    assert decision.code == "scale_out" and backend.pools == [min(6, decision.desired)] and backend.pools[0] > 0
    first.lock.release()
    queue.empty()
    successor = Daemon(settings, backend, redis, daemon_id="B")  # no burst history: computes a pool of 0
    backend.caller.name = "B"
    successor.step()
    assert successor.leader and len(backend.pools) == 1, "the new leader shrank the pool it knows nothing about"
