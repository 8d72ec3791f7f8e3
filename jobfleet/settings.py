"""The one place where jobfleet reads its environment.

Every component (worker, autoscaler, dashboard, local fleet, benchmarks) calls :func:`load_settings`
and reads typed attributes; nothing else looks at ``os.environ`` for jobfleet settings (the
OpenTelemetry SDK reads the standard ``OTEL_*`` variables itself).

A bad value fails at start with :class:`SettingsError`, whose message names the variable, the value
and what is allowed. ``python -m jobfleet.settings`` prints the table of every variable as Markdown.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jobfleet.target_wait import TargetWaits


class SettingsError(ValueError):
    """A setting has a value that is not allowed; the message says which and why."""


_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
        if lo is not None and value < lo:
            raise ValueError(f"must be >= {lo}")
        if hi is not None and value > hi:
            raise ValueError(f"must be <= {hi}")
        return value

    return parse


def _float(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if lo is not None and (value <= lo if open_lo else value < lo):
            raise ValueError(f"must be {'>' if open_lo else '>='} {lo}")
        if hi is not None and value > hi:
            raise ValueError(f"must be <= {hi}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _str(raw: str) -> str:
    return raw.strip()


def _optional_str(raw: str) -> str | None:
    value = raw.strip()
    return value or None


def _redis_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not re.match(r"^(redis|rediss|unix)://", value):
        raise ValueError("expected a URL starting with redis://, rediss:// or unix://")
    return value


def _queues(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise ValueError("expected a comma-separated list of at least one queue name")
    for name in names:
        if not _QUEUE_NAME.match(name):
            raise ValueError(f"queue name {name!r} may only hold letters, digits and _ . : - (1-64 chars)")
    if len(set(names)) != len(names):
        raise ValueError("queue names must be unique")
    return names


def _priority_weights(raw: str) -> tuple[tuple[str, float], ...]:
    pairs = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _QUEUE_NAME.match(name):
            raise ValueError(f"expected queue=weight pairs, got {part!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"weight of {name!r} must be a number > 0, got {value.strip()!r}") from None
        if not 0 < weight < float("inf"):
            raise ValueError(f"weight of {name!r} must be a finite number > 0, got {value.strip()!r}")
        pairs.append((name, weight))
    if len({n for n, _ in pairs}) != len(pairs):
        raise ValueError("each queue may be listed once")
    return tuple(pairs)


parse_queues = _queues
"""Parse a comma-separated queue list like ``JOBFLEET_QUEUES`` (ValueError on a bad one); for CLI options too."""

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _exception_names(raw: str) -> tuple[str, ...]:
    """Builtin exception names or dotted paths (imported, and checked again, where they are used)."""
    import builtins

    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    for name in names:
        if "." in name:
            if not _DOTTED.match(name):
                raise ValueError(f"{name!r} is not a dotted path like package.module.ErrorClass")
            continue
        candidate = getattr(builtins, name, None)
        if not (isinstance(candidate, type) and issubclass(candidate, BaseException)):
            raise ValueError(f"{name!r} is not a builtin exception; use a dotted path for other classes")
    return names


def _dotted(raw: str) -> str:
    value = raw.strip()
    if not _DOTTED.match(value):
        raise ValueError("expected a dotted path like package.module.ClassName")
    return value


def _path(raw: str) -> Path:
    value = raw.strip()
    if not value:
        raise ValueError("expected a path")
    return Path(value)


def _var(env: str, default: str, parse: Callable[[str], Any], doc: str) -> Any:
    """Declare one setting: its variable, default (as the raw string), parser and meaning."""
    return field(metadata={"env": env, "default": default, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Typed, validated settings for every jobfleet component."""

    # Redis
    redis_url: str | None = _var(
        "REDIS_URL", "", _redis_url,
        "Redis/Valkey URL (`redis://`, `rediss://` for TLS, `unix://`). Empty: start an embedded Redis "
        "under `JOBFLEET_DATA_DIR` (local fleet only).",
    )
    redis_password: str | None = _var(
        "REDIS_PASSWORD", "", _optional_str, "AUTH password/token; overrides any password in `REDIS_URL`."
    )
    redis_ssm_parameter: str | None = _var(
        "REDIS_PASSWORD_SSM_PARAMETER", "", _optional_str,
        "On AWS: name of the SSM SecureString holding the AUTH token, read at start when "
        "`REDIS_PASSWORD` is empty.",
    )
    redis_tls_ca: str | None = _var(
        "REDIS_TLS_CA_FILE", "", _optional_str, "CA bundle for `rediss://`; empty uses the system store."
    )
    redis_socket_timeout: float = _var(
        "REDIS_SOCKET_TIMEOUT", "10", _float(0, open_lo=True), "Seconds before a Redis command times out."
    )
    redis_connect_timeout: float = _var(
        "REDIS_CONNECT_TIMEOUT", "5", _float(0, open_lo=True), "Seconds to establish a Redis connection."
    )
    redis_retries: int = _var(
        "REDIS_RETRIES", "5", _int(0, 100),
        "Retries (exponential backoff) on connection errors and timeouts before a command fails.",
    )
    data_dir: Path = _var(
        "JOBFLEET_DATA_DIR", ".data", _path, "Where the embedded Redis keeps its AOF and the local fleet its pids."
    )

    # Queues and jobs
    queues: tuple[str, ...] = _var(
        "JOBFLEET_QUEUES", "high,default,low", _queues,
        "Queues a worker listens on, highest priority first.",
    )
    job_timeout: int = _var(
        "JOBFLEET_JOB_TIMEOUT", "180", _int(1, 86400), "Default job timeout in seconds (per-job override allowed)."
    )
    retry_max: int = _var(
        "JOBFLEET_RETRY_MAX", "3", _int(0, 100), "Default number of retries after the first attempt (0 = none)."
    )
    retry_base: float = _var(
        "JOBFLEET_RETRY_BASE", "2", _float(0), "Backoff before retry k is base * 2^(k-1) seconds, before jitter."
    )
    retry_cap: float = _var(
        "JOBFLEET_RETRY_CAP", "300", _float(0), "Upper bound in seconds of one backoff interval."
    )
    retry_jitter: float = _var(
        "JOBFLEET_RETRY_JITTER", "0.5", _float(0, 1),
        "Jitter fraction: each interval is drawn from [(1-j)*d, d].",
    )
    permanent_errors: tuple[str, ...] = _var(
        "JOBFLEET_PERMANENT_ERRORS", "jobfleet.errors.PermanentError,TypeError,ValueError", _exception_names,
        "Exception types (dotted or builtin names) that are never retried.",
    )
    submit_ack_replicas: int = _var(
        "JOBFLEET_SUBMIT_ACK_REPLICAS", "0", _int(0, 5),
        "Acknowledged submit: replicas that must confirm a job (Redis `WAIT`) before `submit` returns; "
        "0 = asynchronous replication (a failover can lose the last jobs).",
    )
    submit_ack_timeout_ms: int = _var(
        "JOBFLEET_SUBMIT_ACK_TIMEOUT_MS", "1000", _int(1, 60000),
        "How long an acknowledged submit waits for its replicas before raising `NotReplicatedError`.",
    )
    result_ttl: int = _var("JOBFLEET_RESULT_TTL", "86400", _int(0), "Seconds a finished job's result is kept.")
    failure_ttl: int = _var(
        "JOBFLEET_FAILURE_TTL", "604800", _int(1), "Seconds a failed job stays in the dead-letter registry."
    )
    idempotency_ttl: int = _var(
        "JOBFLEET_IDEMPOTENCY_TTL", "86400", _int(1), "Seconds an idempotency key maps to its job id."
    )
    workflow_ttl: int = _var(
        "JOBFLEET_WORKFLOW_TTL", "604800", _int(0),
        "Seconds an ended workflow's record (status, counts, graph, task states) is kept; 0 = forever.",
    )

    # Workers
    worker_class: str = _var(
        "JOBFLEET_WORKER_CLASS", "worker.worker.JobfleetWorker", _dotted, "Worker class run by `python -m worker`."
    )
    execution: str = _var(
        "JOBFLEET_EXECUTION", "pool", _choice("pool", "fork"),
        "How `python -m worker` runs jobs: pool (a long-lived executor process runs many jobs, batched "
        "Redis bookkeeping) or fork (RQ's fork per job).",
    )
    pool_max_jobs: int = _var(
        "JOBFLEET_POOL_MAX_JOBS", "10000", _int(1), "Pool mode: jobs an executor runs before it is replaced."
    )
    pool_max_memory_mb: int = _var(
        "JOBFLEET_POOL_MAX_MEMORY_MB", "1024", _int(0),
        "Pool mode: resident MB after which an executor is replaced once its job ends (0: no limit).",
    )
    pool_prefetch: int = _var(
        "JOBFLEET_POOL_PREFETCH", "64", _int(1, 1000),
        "Pool mode: most jobs one worker holds claimed at once (the adaptive batch never exceeds it).",
    )
    pool_kill_grace: float = _var(
        "JOBFLEET_POOL_KILL_GRACE", "2", _float(0),
        "Pool mode: seconds past a job's timeout before its executor is killed (the job gets a timeout "
        "error at the timeout itself when it lets Python run signal handlers).",
    )
    async_concurrency: int = _var(
        "JOBFLEET_ASYNC_CONCURRENCY", "50", _int(1, 10000),
        "Pool mode: `async def` jobs one executor runs at once on its event loop.",
    )
    shutdown_deadline: float = _var(
        "JOBFLEET_SHUTDOWN_DEADLINE", "600", _float(0),
        "Seconds a warm shutdown waits for the running job before stopping it and re-queueing it.",
    )
    recovery_interval: float = _var(
        "JOBFLEET_RECOVERY_INTERVAL", "1", _float(0.5),
        "Seconds between sweeps for jobs whose worker died (crash recovery); workers take turns sweeping.",
    )
    heartbeat_interval: int = _var(
        "JOBFLEET_HEARTBEAT_INTERVAL", "1", _int(1, 60),
        "Seconds between a worker's heartbeats (idle and busy); it is published in the worker hash and a "
        "worker silent for 3 periods + 1.5 s is dead (plain RQ workers: see the README).",
    )
    stranded_after: float = _var(
        "JOBFLEET_STRANDED_AFTER", "5", _float(1),
        "Seconds a dequeued job may sit in its queue's intermediate list, unstarted, before the sweep re-queues it.",
    )
    redis_backoff_cap: float = _var(
        "JOBFLEET_REDIS_BACKOFF_CAP", "2", _float(0.1),
        "Longest wait (seconds) between a worker's reconnection attempts while Redis is unreachable.",
    )
    worker_ttl: int = _var(
        "JOBFLEET_WORKER_TTL", "30", _int(10),
        "RQ's worker TTL: the worker hash expires this + 60 s after the last idle beat (liveness itself uses "
        "`JOBFLEET_HEARTBEAT_INTERVAL`).",
    )
    dequeue_poll: float = _var(
        "JOBFLEET_DEQUEUE_POLL", "0.25", _float(0.01, 5),
        "Longest an idle worker waits before rescanning its queues (a job wakes it at once where the server "
        "allows client tracking).",
    )
    fairness: bool = _var(
        "JOBFLEET_FAIRNESS", "on", _bool,
        "Workers serve the tenants of each queue by weighted fair share (off: plain queues only, strict order).",
    )
    fair_half_life: float = _var(
        "JOBFLEET_FAIR_HALF_LIFE", "300", _float(0),
        "Half-life (seconds) of the run-seconds a tenant consumed, for fair share; 0 = never forget.",
    )
    fair_reservation: float = _var(
        "JOBFLEET_FAIR_RESERVATION", "0", _float(0, 0.9),
        "Fraction of a queue's worker slots kept free for tenants with no running job (0 = none).",
    )
    priority_mode: str = _var(
        "JOBFLEET_PRIORITY_MODE", "strict", _choice("strict", "weighted"),
        "strict: always the first non-empty queue; weighted: weighted random among non-empty queues.",
    )
    priority_weights: tuple[tuple[str, float], ...] = _var(
        "JOBFLEET_PRIORITY_WEIGHTS", "high=6,default=3,low=1", _priority_weights,
        "Queue weights of the weighted priority mode, `queue=weight,...` (unlisted queues weigh 1).",
    )
    priority_aging: float = _var(
        "JOBFLEET_PRIORITY_AGING", "0", _float(0),
        "A queue whose next job has waited longer than this many seconds is served first (0 = off).",
    )
    instance_id: str | None = _var(
        "JOBFLEET_INSTANCE_ID", "", _optional_str,
        "Instance id recorded by workers; empty asks EC2 IMDSv2 on AWS and uses the host name elsewhere.",
    )
    log_level: str = _var(
        "JOBFLEET_LOG_LEVEL", "info", _choice("debug", "info", "warning", "error"), "Log level."
    )
    log_format: str = _var(
        "JOBFLEET_LOG_FORMAT", "json", _choice("json", "text"), "Log line format (one JSON object per line)."
    )

    # Local fleet (`make run`)
    local_workers: int = _var(
        "JOBFLEET_LOCAL_WORKERS", "2", _int(0, 64), "Initial worker processes of the local fleet."
    )
    demo_load: bool = _var("JOBFLEET_DEMO_LOAD", "1", _bool, "`make run` also runs a demo load generator.")
    demo_rate: float = _var(
        "JOBFLEET_DEMO_RATE", "4", _float(0), "Demo load: mean jobs per second (Poisson arrivals, in bursts)."
    )

    # Autoscaler
    autoscaler_backend: str = _var(
        "JOBFLEET_AUTOSCALER_BACKEND", "local", _choice("local", "aws"), "Where capacity comes from."
    )
    autoscaler_interval: float = _var(
        "JOBFLEET_AUTOSCALER_INTERVAL", "3", _float(2, 5), "Seconds between autoscaler decisions (2-5)."
    )
    autoscaler_min: int = _var("JOBFLEET_MIN_INSTANCES", "0", _int(0), "Fleet never shrinks below this.")
    autoscaler_max: int = _var("JOBFLEET_MAX_INSTANCES", "10", _int(1), "Fleet never grows above this.")
    slots_per_instance: int = _var(
        "JOBFLEET_SLOTS_PER_INSTANCE", "1", _int(1, 256), "Worker processes (job slots) per instance."
    )
    target_waits: TargetWaits = _var(
        "JOBFLEET_TARGET_WAIT", "30", TargetWaits.parse,
        "Target p95 wait (enqueue to start) in seconds: one number for every queue, or per queue "
        "(`high=5,default=30,low=300`; a bare number is the fallback: `high=5,60`). 0 = start every job on arrival.",
    )
    boot_time: float = _var(
        "JOBFLEET_BOOT_TIME", "90", _float(0), "Expected seconds from launch request to a ready instance."
    )
    idle_hold: float = _var(
        "JOBFLEET_IDLE_HOLD", "", _optional_str,
        "Seconds an instance must be idle before it may be drained; empty = the boot time.",
    )
    fast_drain: float = _var(
        "JOBFLEET_FAST_DRAIN", "15", _float(0),
        "Seconds idle after which far-surplus instances (beyond twice the pessimistic need) are drained.",
    )
    noise_band: float = _var(
        "JOBFLEET_NOISE_BAND", "1", _float(0, 5),
        "Hysteresis band around the arrival-rate estimate, in Poisson standard deviations.",
    )
    default_service_time: float = _var(
        "JOBFLEET_DEFAULT_SERVICE_TIME", "10", _float(0, open_lo=True),
        "Mean job run time (s) the autoscaler assumes until it has measured one.",
    )
    max_step: int = _var(
        "JOBFLEET_MAX_STEP", "0", _int(0), "Most instances added in one decision (0 = no limit)."
    )
    stale_after: float = _var(
        "JOBFLEET_STALE_AFTER", "30", _float(1), "Observations older than this (s) are stale: hold the size."
    )
    boot_deadline: float = _var(
        "JOBFLEET_BOOT_DEADLINE", "900", _float(0, open_lo=True),
        "AWS backend: an instance with no worker heartbeat this many seconds after launch is marked Unhealthy.",
    )
    dry_run: bool = _var("JOBFLEET_DRY_RUN", "0", _bool, "Decide and log, but do not change capacity.")
    # autoscaler v2 (issue 14): leader lock, warm pool
    leader_ttl: float = _var(
        "JOBFLEET_LEADER_TTL", "15", _float(1, 600),
        "Seconds the autoscaler leader lock lives unless renewed (renewed every decision; a standby daemon "
        "takes over once it expires).",
    )
    warm_pool_max: int = _var(
        "JOBFLEET_WARM_POOL_MAX", "0", _int(0),
        "Most stopped instances the autoscaler keeps in the ASG warm pool (aws backend; 0 = it does not manage one).",
    )
    burst_hold: float = _var(
        "JOBFLEET_BURST_HOLD", "1800", _float(0),
        "Target 0: seconds a burst's peak capacity is kept running unless its recurrence is known or a warm "
        "pool holds it (0 = off).",
    )
    start_at_once_idle: float = _var(
        "JOBFLEET_START_AT_ONCE_IDLE", "600", _float(0),
        "Target 0: the idle hold is at least this long (a job that finds no idle slot waits a whole boot).",
    )
    warm_boot_time: float = _var(
        "JOBFLEET_WARM_BOOT_TIME", "20", _float(0), "Expected seconds from a warm-pool start to a ready instance."
    )
    stopped_cost_ratio: float = _var(
        "JOBFLEET_STOPPED_COST_RATIO", "0.105", _float(0),
        "Cost of a stopped warm-pool instance (its EBS volume) over a running one; 0.105 = 20 GB gp3 / t3.small.",
    )
    wait_cost: float = _var(
        "JOBFLEET_WAIT_COST", "10", _float(0),
        "Instance-hours one job-hour of waiting is worth (sizes the warm pool against its cost).",
    )
    asg_name: str | None = _var(
        "JOBFLEET_ASG_NAME", "", _optional_str, "Auto Scaling Group of the workers (aws backend)."
    )
    aws_region: str | None = _var("AWS_REGION", "", _optional_str, "AWS region (aws backend).")
    aws_endpoint_url: str | None = _var(
        "JOBFLEET_AWS_ENDPOINT_URL", "", _optional_str, "Override the AWS endpoint (tests use a local moto server)."
    )

    # Dashboard and metrics
    dashboard_host: str = _var("JOBFLEET_DASHBOARD_HOST", "127.0.0.1", _str, "Dashboard bind address.")
    dashboard_port: int = _var("JOBFLEET_DASHBOARD_PORT", "8080", _int(0, 65535), "Dashboard port.")
    dashboard_token: str | None = _var(
        "JOBFLEET_DASHBOARD_TOKEN", "", _optional_str,
        "Bearer token the dashboard API requires (writes, and reads unless JOBFLEET_DASHBOARD_OPEN_READS=1); "
        "empty = no auth (local only).",
    )
    dashboard_allowed_hosts: tuple[str, ...] = _var(
        "JOBFLEET_DASHBOARD_ALLOWED_HOSTS", "localhost,127.0.0.1,::1", _names,
        "Host names the dashboard answers (the Host header, port ignored; `*` = any): guards against DNS "
        "rebinding.",
    )
    dashboard_allowed_origins: tuple[str, ...] = _var(
        "JOBFLEET_DASHBOARD_ALLOWED_ORIGINS", "", _names,
        "Extra origins (scheme://host[:port]) allowed to send write requests; the page's own origin always is.",
    )
    dashboard_open_reads: bool = _var(
        "JOBFLEET_DASHBOARD_OPEN_READS", "0", _bool,
        "With a token set, let API reads through without it (job arguments and tracebacks are data: default no).",
    )
    metrics_addr: str = _var(
        "JOBFLEET_METRICS_ADDR", "127.0.0.1", _str,
        "Bind address of the worker and autoscaler metrics endpoints (loopback locally, the VPC address on AWS).",
    )
    metrics_port: int = _var(
        "JOBFLEET_METRICS_PORT", "9121", _int(0, 65535), "Prometheus port of a worker host (0 = disabled)."
    )
    autoscaler_metrics_port: int = _var(
        "JOBFLEET_AUTOSCALER_METRICS_PORT", "9122", _int(0, 65535), "Prometheus port of the autoscaler."
    )
    worker_metrics_dir: Path | None = _var(
        "JOBFLEET_WORKER_METRICS_DIR", "", lambda raw: Path(raw.strip()) if raw.strip() else None,
        "Local backend: multiprocess metrics directory handed to the worker processes it starts.",
    )
    metrics_dir: Path | None = _var(
        "PROMETHEUS_MULTIPROC_DIR", "", lambda raw: Path(raw.strip()) if raw.strip() else None,
        "prometheus-client multiprocess directory shared by the worker processes of one host.",
    )

    @property
    def target_wait(self) -> float:
        """The loosest target wait in seconds (one threshold, e.g. for the oldest-job alert)."""
        return self.target_waits.loosest()

    @property
    def idle_hold_seconds(self) -> float:
        """Idle hold in seconds: the explicit value or, when unset, the expected boot time."""
        return float(self.idle_hold) if self.idle_hold is not None else self.boot_time

    def replace(self, **changes: Any) -> Settings:
        """A copy with some attributes changed (values are typed, not raw strings)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default ``os.environ``); raise :class:`SettingsError` on a bad value."""
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        meta = f.metadata
        raw = source.get(meta["env"])
        if raw is None:
            raw = meta["default"]
        try:
            values[f.name] = meta["parse"](raw)
        except ValueError as exc:
            raise SettingsError(f"{meta['env']}={raw!r}: {exc}") from None
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _check_consistency(s: Settings) -> None:
    if s.autoscaler_min > s.autoscaler_max:
        raise SettingsError(
            f"JOBFLEET_MIN_INSTANCES={s.autoscaler_min} is above JOBFLEET_MAX_INSTANCES={s.autoscaler_max}"
        )
    if s.idle_hold is not None:
        try:
            if float(s.idle_hold) < 0:
                raise ValueError
        except ValueError:
            raise SettingsError(f"JOBFLEET_IDLE_HOLD={s.idle_hold!r}: expected a number of seconds >= 0") from None
    if s.autoscaler_backend == "aws" and not s.asg_name:
        raise SettingsError("JOBFLEET_ASG_NAME is required when JOBFLEET_AUTOSCALER_BACKEND=aws")
    _check_autoscaler_v2(s)


def _check_autoscaler_v2(s: Settings) -> None:
    if s.leader_ttl <= s.autoscaler_interval:
        raise SettingsError(f"JOBFLEET_LEADER_TTL={s.leader_ttl:g} must be longer than "
                            f"JOBFLEET_AUTOSCALER_INTERVAL={s.autoscaler_interval:g}")
    unknown = [q for q, _ in s.target_waits.per_queue if q not in s.queues]
    if unknown:
        raise SettingsError(f"JOBFLEET_TARGET_WAIT={str(s.target_waits)!r}: queue(s) {', '.join(unknown)} not in "
                            f"JOBFLEET_QUEUES ({','.join(s.queues)})")
    missing = s.target_waits.missing(s.queues)
    if missing:
        raise SettingsError(f"JOBFLEET_TARGET_WAIT={str(s.target_waits)!r}: no target for queue(s) "
                            f"{', '.join(missing)}; name them (queue=seconds) or add a bare number as the fallback")


def settings_table() -> str:
    """Every variable with its default and meaning, as a Markdown table (for the README)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        meta = f.metadata
        default = f"`{meta['default']}`" if meta["default"] else "(empty)"
        rows.append(f"| `{meta['env']}` | {default} | {meta['doc']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None, prog: str = "python -m jobfleet.settings") -> int:
    """Print the configuration table, or with ``--check`` validate the environment (exit 2 when bad)."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description="Print jobfleet's configuration table.")
    parser.add_argument("--check", action="store_true", help="validate the current environment instead")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.check:
        try:
            load_settings()
        except SettingsError as exc:
            print(f"jobfleet: bad setting: {exc}", file=sys.stderr)
            return 2
        print("settings ok")
        return 0
    print(settings_table())
    return 0


if __name__ == "__main__":  # pragma: no cover - documentation helper
    sys.exit(main())
