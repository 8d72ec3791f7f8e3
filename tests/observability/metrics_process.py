"""A stand-in worker process for the multiprocess metrics tests.

``python -m tests.observability.metrics_process JOBS [--serve PORT] [--stay]``: records JOBS finished jobs on
queue "a" (run 0.2 s, wait 1.5 s) and one retry, marks itself busy, optionally serves the host endpoint, and
with ``--stay`` waits until stdin closes. ``PROMETHEUS_MULTIPROC_DIR`` must be set.
"""

from __future__ import annotations

import argparse
import sys

from observability import metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs", type=int)
    parser.add_argument("--serve", type=int, default=0)
    parser.add_argument("--stay", action="store_true")
    args = parser.parse_args()
    assert metrics.multiprocess_dir() is not None, "PROMETHEUS_MULTIPROC_DIR is not set"
    metrics.set_busy(True)
    for _ in range(args.jobs):
        metrics.record_job_finished("a", "finished", 0.2, 1.5)
    metrics.record_retry("a")
    metrics.start_worker_metrics_server(args.serve, addr="127.0.0.1", retry_seconds=0.1)
    print("ready", flush=True)
    if args.stay:
        sys.stdin.read()


if __name__ == "__main__":
    main()
