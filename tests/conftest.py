"""Shared fixtures: real redis-server processes on free ports (never fakeredis), and in-memory spans."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis import Redis

from jobfleet import tracing
from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the whole session (tests use their own db via flush)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of the session's Redis, emptied before the test."""
    client = Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    """A client on the emptied session Redis."""
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test alone, which the test may kill and restart."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session Redis, with fast test-friendly values."""
    return load_settings(test_env(redis_url, tmp_path))


def test_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a child process of a test: our Redis, repo on PYTHONPATH, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBFLEET_", "REDIS_", "OTEL_"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "JOBFLEET_DATA_DIR": str(tmp_path / "data"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "JOBFLEET_METRICS_PORT": "0",
            "JOBFLEET_AUTOSCALER_METRICS_PORT": "0",
        }
    )
    env.update(extra)
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` from the repo root with stdout/stderr to ``log``."""
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded in memory while the test runs (jobfleet's tracing enabled on a fresh provider)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable_for_provider(provider)
    try:
        yield exporter
    finally:
        tracing.reset_tracing()
