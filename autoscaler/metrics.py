"""Prometheus metrics of the autoscaler (served on ``settings.autoscaler_metrics_port`` when > 0)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

REGISTRY = CollectorRegistry()
DESIRED = Gauge("jobfleet_autoscaler_desired", "Desired instances of the last decision.", registry=REGISTRY)
IN_SERVICE = Gauge("jobfleet_autoscaler_in_service", "Instances ready to run jobs.", registry=REGISTRY)
BOOTING = Gauge("jobfleet_autoscaler_booting", "Instances launched but not ready yet.", registry=REGISTRY)
BUSY = Gauge("jobfleet_autoscaler_busy", "Instances running at least one job.", registry=REGISTRY)
DECISIONS = Counter(
    "jobfleet_autoscaler_decisions", "Decisions taken, by kind (scale_out, scale_in, steady, hold, stale, follower).",
    ["reason"], registry=REGISTRY,
)
LEADER = Gauge(
    "jobfleet_autoscaler_leader", "1 when this daemon holds the leader lock and acts, 0 on standby.", registry=REGISTRY
)
LAST_DECISION = Gauge(
    "jobfleet_autoscaler_last_decision_timestamp_seconds", "Unix time of the last decision.", registry=REGISTRY
)


def record_decision(desired: int, in_service: int, booting: int, busy: int, code: str, ts: float) -> None:
    """Update every autoscaler metric for one decision (``code``: scale_out, scale_in, steady, hold, stale)."""
    DESIRED.set(desired)
    IN_SERVICE.set(in_service)
    BOOTING.set(booting)
    BUSY.set(busy)
    DECISIONS.labels(reason=code).inc()
    LAST_DECISION.set(ts)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Serve the autoscaler's metrics on ``port``."""
    start_http_server(port, addr=addr, registry=REGISTRY)
