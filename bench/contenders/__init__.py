"""Job modules and enqueue helpers for the non-RQ contenders of ``bench.worker_throughput`` (bench deps only)."""
