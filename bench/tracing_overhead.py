"""Tracing overhead: what jobfleet's span helpers cost a job, off (no exporter) and on, in the same run.

Two measurements:

1. **Hot path, in-process**: the producer + consumer span helpers and ``set_outcome`` around a no-op job,
   timed per job (median of ``--repeat`` runs of ``--calls``) — with no exporter configured (the default
   fleet), and with the SDK on (BatchSpanProcessor feeding an exporter that drops spans).
2. **Real worker**: ``python -m worker --burst`` drains ``--jobs`` no-op jobs with tracing off and with
   OTLP/HTTP export to a local sink that answers 200, alternating, median jobs/s of ``--repeat`` runs.

Prints the ratios vs no tracing; nothing is asserted. Run: ``python -m bench.tracing_overhead``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from redis import Redis
from rq import Queue

from jobfleet import tracing
from jobfleet.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def _noop() -> None:
    return None


def _job_cycle() -> None:
    """What the submit API and the worker do around one job."""
    with tracing.producer_span("bench", "job-id", "bench.noop") as carrier:
        pass
    job = SimpleNamespace(id="job-id", meta={"otel": carrier}, number_of_retries=None, func_name="bench.noop")
    with tracing.consumer_span(job, "bench") as span:
        _noop()
        tracing.set_outcome(span, "finished")


def _per_call_ns(fn: Callable[[], None], calls: int, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(samples)


def hot_path(calls: int, repeat: int) -> dict[str, float]:
    """Nanoseconds per job: bare call, helpers with tracing off, helpers with the SDK on."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracing.reset_tracing()
    tracing.configure_tracing("bench", env={})
    bare = _per_call_ns(_noop, calls, repeat)
    off = _per_call_ns(_job_cycle, calls, repeat)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    tracing.enable_for_provider(provider)
    on = _per_call_ns(_job_cycle, calls, repeat)
    provider.shutdown()
    tracing.reset_tracing()
    return {"bare_ns": bare, "off_ns": off, "on_ns": on}


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _drain(redis_url: str, jobs: int, extra_env: dict[str, str]) -> float:
    client = Redis.from_url(redis_url)
    client.flushall()
    queue = Queue("bench", connection=client)
    queue.enqueue_many([Queue.prepare_data("jobfleet.demo.jobs.noop", result_ttl=60) for _ in range(jobs)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBFLEET_", "PROMETHEUS_"))}
    env.update({"REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "JOBFLEET_METRICS_PORT": "0",
                "JOBFLEET_LOG_LEVEL": "error", **extra_env})
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worker", "--burst", "--queues", "bench"], cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
    elapsed = time.perf_counter() - started
    client.close()
    return jobs / elapsed


def real_worker(jobs: int, repeat: int) -> dict[str, float]:
    """Median jobs/s of the real fork-per-job worker, tracing off vs OTLP export on (alternating runs)."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    off, on = [], []
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp))
        redis.start()
        try:
            for _ in range(repeat):
                off.append(_drain(redis.url, jobs, {}))
                on.append(_drain(redis.url, jobs, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}))
        finally:
            redis.stop()
            sink.shutdown()
            sink.server_close()
    return {"off_jobs_per_s": statistics.median(off), "on_jobs_per_s": statistics.median(on)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_overhead", description=__doc__)
    parser.add_argument("--calls", type=int, default=20000, help="hot-path calls per run")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per real-worker run (0 = skip)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.jobs < 0 or args.repeat < 1:
        parser.error("--calls and --repeat must be >= 1, --jobs >= 0")
    hot = hot_path(args.calls, args.repeat)
    print("hot path per job (producer + consumer span helpers + set_outcome around a no-op):")
    print(f"  bare call            {hot['bare_ns'] / 1000:8.2f} us")
    print(f"  tracing off          {hot['off_ns'] / 1000:8.2f} us  (+{(hot['off_ns'] - hot['bare_ns']) / 1000:.2f} us)")
    print(f"  tracing on (SDK)     {hot['on_ns'] / 1000:8.2f} us  (+{(hot['on_ns'] - hot['bare_ns']) / 1000:.2f} us)")
    if args.jobs:
        real = real_worker(args.jobs, args.repeat)
        ratio = real["on_jobs_per_s"] / real["off_jobs_per_s"]
        print(f"real worker, {args.jobs} no-op jobs, median of {args.repeat}:")
        print(f"  tracing off          {real['off_jobs_per_s']:8.1f} jobs/s")
        print(f"  OTLP export on       {real['on_jobs_per_s']:8.1f} jobs/s  (ratio on/off {ratio:.3f})")
        off_share = (hot["off_ns"] - hot["bare_ns"]) / 1e9 * real["off_jobs_per_s"]
        print(f"  tracing-off helpers = {off_share * 100:.4f}% of a job's wall time at that rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
