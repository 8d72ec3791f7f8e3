"""Workflow fixtures: a redis-server and two real `python -m worker` processes shared by a test module."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import Settings, load_settings
from jobfleet.workflows import get_workflow
from tests.worker.helpers import running, wait_for, worker_env

TERMINAL = ("succeeded", "failed", "canceled")


@dataclass
class Fleet:
    """A module's Redis, settings and worker environment."""

    redis: Redis
    settings: Settings
    env: dict[str, str]
    url: str

    def log(self) -> str:
        """A fresh log key for one test."""
        return f"log:{uuid.uuid4().hex}"

    def entries(self, log: str) -> list[str]:
        """What the jobs appended to ``log``, in order."""
        return [v.decode() for v in self.redis.lrange(log, 0, -1)]

    def wait_end(self, wid: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until workflow ``wid`` ends; its final status."""
        return wait_end(self.redis, wid, timeout)


def wait_end(redis: Redis, wid: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll until workflow ``wid`` ends; its final status (assertion error with the status on timeout)."""
    last: dict[str, Any] = {}

    def ended() -> bool:
        nonlocal last
        last = get_workflow(wid, connection=redis)
        return last["status"] in TERMINAL and last["counts"]["running"] == 0

    try:
        wait_for(ended, timeout, interval=0.1, what=f"workflow {wid} to end")
    except AssertionError:
        raise AssertionError(f"workflow did not end in {timeout}s: {last}") from None
    return last


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A redis-server and two jobfleet workers for the whole module."""
    tmp = tmp_path_factory.mktemp("wf")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    env = worker_env(server.url, tmp, JOBFLEET_RETRY_BASE="0.1", JOBFLEET_RETRY_CAP="0.2",
                     JOBFLEET_LOG_LEVEL="warning")
    redis = Redis.from_url(server.url)
    with contextlib.ExitStack() as stack:
        for name in ("w1", "w2"):
            stack.enter_context(running(["-m", "worker", "--name", name], env, tmp / f"{name}.log"))
        wait_for(lambda: redis.scard("rq:workers") == 2, 30, what="two workers registered")
        yield Fleet(redis, load_settings(env), env, server.url)
    redis.close()
    server.stop()


def positions(entries: list[str]) -> dict[str, int]:
    """Index of each entry's first occurrence."""
    found: dict[str, int] = {}
    for i, e in enumerate(entries):
        found.setdefault(e, i)
    return found


def settle(seconds: float) -> None:
    """A short pause where a test checks that something does NOT happen."""
    time.sleep(seconds)


__all__ = ["Fleet", "Path", "positions", "settle", "wait_end"]
