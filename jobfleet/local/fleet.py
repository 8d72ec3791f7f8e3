"""The local fleet behind ``make run``: embedded Redis, autoscaled workers, dashboard, metrics, demo load.

Every child runs in its own session, so Ctrl-C reaches only this process, which then stops the
children in order (load, autoscaler and its workers, dashboard, Redis) and finally kills any
descendant still alive: nothing is left behind. Each child also gets ``PR_SET_PDEATHSIG`` so even a
``kill -9`` of this process does not strand them. Pids are written to ``<data_dir>/fleet.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psutil

from jobfleet.embedded_redis import EmbeddedRedis
from jobfleet.local.status import FleetStatus, needed_instances, read_status
from jobfleet.paths import child_pythonpath
from jobfleet.settings import Settings, SettingsError, load_settings

LOCAL_DEFAULTS = {
    "JOBFLEET_BOOT_TIME": "2",
    "JOBFLEET_IDLE_HOLD": "10",
    "JOBFLEET_MAX_INSTANCES": "4",
    "JOBFLEET_DEFAULT_SERVICE_TIME": "1",
}
"""Autoscaler settings `make run` uses for local worker processes unless the environment sets them."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this child when the fleet process dies (PR_SET_PDEATHSIG = 1)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


@dataclass
class Child:
    """One process the fleet started."""

    role: str
    process: subprocess.Popen[bytes]
    stop_timeout: float = 20.0


@dataclass
class LocalFleet:
    """Starts and stops the local fleet's processes."""

    settings: Settings
    demo: bool = True
    out: TextIO = field(default=sys.stdout)
    redis: EmbeddedRedis | None = None
    children: list[Child] = field(default_factory=list)
    redis_url: str = ""

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir.resolve()

    def child_env(self) -> dict[str, str]:
        """Environment shared by every child: our Redis and the metrics directory."""
        env = dict(os.environ)
        env["REDIS_URL"] = self.redis_url
        env["PYTHONPATH"] = child_pythonpath(env.get("PYTHONPATH"))
        env["PYTHONUNBUFFERED"] = "1"
        # The autoscaler hands this directory to the workers it starts; it keeps its own metrics in-process.
        env["JOBFLEET_WORKER_METRICS_DIR"] = str(self.metrics_dir)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # Local worker processes are ready in about a second, not the minutes of an EC2 instance,
        # and a laptop has few cores: local defaults unless the user set these explicitly.
        for name, value in LOCAL_DEFAULTS.items():
            env.setdefault(name, value)
        # Worker processes write multiprocess files; this process serves them once on metrics_port.
        env["JOBFLEET_METRICS_PORT"] = "0"
        return env

    def effective_settings(self) -> Settings:
        """The settings the children run with (``LOCAL_DEFAULTS`` applied), e.g. the instance cap."""
        try:
            return load_settings(self.child_env())
        except SettingsError:
            return self.settings

    @property
    def metrics_dir(self) -> Path:
        return self.data_dir / "metrics"

    def start(self) -> None:
        """Start Redis (unless REDIS_URL is set) and every child process."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.redis_url:
            self.redis_url = self.settings.redis_url
        else:
            self.redis = EmbeddedRedis(self.data_dir / "redis").start()
            self.redis_url = self.redis.url
        # Multiprocess metrics files of earlier runs describe dead processes: start clean.
        if self.metrics_dir.exists():
            for stale in self.metrics_dir.glob("*.db"):
                stale.unlink()
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        if self.settings.metrics_port:
            # One endpoint for the host: a small server process reads every worker's multiprocess files.
            self._spawn("worker-metrics", ["-m", "observability.metrics", "--dir", str(self.metrics_dir),
                                           "--port", str(self.settings.metrics_port), "--addr", "127.0.0.1"], logs)
        self._spawn("autoscaler", ["-m", "autoscaler", "--backend", "local"], logs, stop_timeout=60)
        self._spawn("dashboard", ["-m", "dashboard"], logs)
        if self.demo:
            self._spawn("demo-load", ["-m", "jobfleet.demo.load"], logs)
        self._write_pids()

    def _spawn(self, role: str, args: list[str], logs: Path, stop_timeout: float = 20.0) -> None:
        log = (logs / f"{role}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=os.getcwd(),
            env=self.child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.children.append(Child(role, process, stop_timeout))

    def _write_pids(self) -> None:
        pids = {child.role: child.process.pid for child in self.children}
        if self.redis and self.redis.pid:
            pids["redis"] = self.redis.pid
        payload = {"pid": os.getpid(), "redis_url": self.redis_url, "children": pids}
        (self.data_dir / "fleet.json").write_text(json.dumps(payload, indent=2))

    def descendants(self) -> list[psutil.Process]:
        """Every live process below this one (children and their children)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process().children(recursive=True)
        return []

    def check_children(self) -> list[str]:
        """Roles of children that exited unexpectedly (with their exit codes)."""
        return [
            f"{child.role} exited with {child.process.returncode}"
            for child in self.children
            if child.process.poll() is not None
        ]

    def stop(self) -> None:
        """Stop children in reverse start order (warm), then Redis; kill whatever is left."""
        known = self.descendants()
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(child.stop_timeout)
                except subprocess.TimeoutExpired:
                    print(f"jobfleet: {child.role} did not stop in {child.stop_timeout:.0f}s; killing it",
                          file=self.out)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
        # Grandchildren (worker processes, work horses) that outlived their parent.
        leftovers = [p for p in known + self.descendants() if p.is_running() and p.status() != "zombie"]
        redis_pid = self.redis.pid if self.redis else None
        leftovers = [p for p in leftovers if p.pid != redis_pid]
        for proc in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if self.redis:
            self.redis.stop()


def format_status(status: FleetStatus, settings: Settings | None = None) -> str:
    """The one-line status `make run` prints (says so when ``JOBFLEET_MAX_INSTANCES`` caps the need)."""
    line = (
        f"queued={status.queued} running={status.started} done={status.finished} failed={status.failed} "
        f"workers={status.workers} busy={status.busy}"
    )
    if status.decision is not None:
        d = status.decision
        line += f" | desired={d.get('desired', '?')} in_service={d.get('in_service', '?')} {d.get('reason', '')}"
        if settings is not None:
            need = needed_instances(d, settings.slots_per_instance)
            if need is not None and need > settings.autoscaler_max:
                line += f" | capped by JOBFLEET_MAX_INSTANCES={settings.autoscaler_max} (need {need})"
    elif settings is not None:
        line += " | autoscaler: no decision yet in this run"
    return line


def main(argv: list[str] | None = None, prog: str = "python -m jobfleet.local.fleet") -> int:
    """Run the local fleet until Ctrl-C (or ``--duration`` seconds)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--no-demo", action="store_true", help="do not run the demo load generator")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0 = never)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between status lines")
    args = parser.parse_args(argv)
    if args.duration < 0 or args.interval <= 0:
        parser.error("--duration must be >= 0 and --interval > 0")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"jobfleet: bad setting: {exc}", file=sys.stderr)
        return 2
    fleet = LocalFleet(settings, demo=settings.demo_load and not args.no_demo)
    stopping = False
    return_code = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        fleet.start()
        _print_banner(fleet)
        from redis import Redis

        client = Redis.from_url(fleet.redis_url, socket_timeout=2)
        started = time.monotonic()
        run_began = time.time() - 1.0
        while not stopping:
            problems = fleet.check_children()
            if problems:
                print(f"jobfleet: stopping: {'; '.join(problems)} (logs in {fleet.data_dir / 'logs'})",
                      file=sys.stderr)
                return_code = 1
                break
            try:
                print(format_status(read_status(client, settings.queues, since=run_began),
                                    fleet.effective_settings()), flush=True)
            except Exception as exc:  # a status line must never stop the fleet
                print(f"status unavailable: {exc}", flush=True)
            if args.duration and time.monotonic() - started >= args.duration:
                break
            _sleep_unless(lambda: stopping, args.interval)
        client.close()
    finally:
        print("jobfleet: stopping the local fleet ...", flush=True)
        fleet.stop()
        print("jobfleet: stopped; nothing left running.", flush=True)
    return return_code


def _sleep_unless(stop: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop():
            return
        time.sleep(0.1)


FAILS_ON_PURPOSE = {
    "jobfleet.demo.jobs.always_fails": "always fails: retried, then dead-lettered (see `jobfleet dlq list`)",
    "jobfleet.demo.jobs.flaky": "fails its first 1-2 attempts, then succeeds on a retry",
}
"""Demo jobs that fail on purpose, so the failed/retried counts of `make run` are not a surprise."""


def demo_failure_lines() -> list[str]:
    """Banner lines naming the demo jobs that fail on purpose, with their share of the demo load."""
    from jobfleet.demo.load import MIX

    total = sum(job.weight for job in MIX) or 1.0
    lines = []
    for job in MIX:
        if job.function in FAILS_ON_PURPOSE:
            lines.append(f"demo job {job.function.rsplit('.', 1)[-1]} ({job.weight / total:.0%} of the load, "
                         f"queue {job.queue}) {FAILS_ON_PURPOSE[job.function]}")
    return ["failing on purpose:", *(f"  {line}" for line in lines)] if lines else []


def _print_banner(fleet: LocalFleet) -> None:
    s = fleet.settings
    print(f"jobfleet local fleet: Redis {fleet.redis_url} (data in {fleet.data_dir})")
    print(f"  dashboard            http://{s.dashboard_host}:{s.dashboard_port}/")
    if s.metrics_port:
        print(f"  worker metrics       http://127.0.0.1:{s.metrics_port}/metrics")
    if s.autoscaler_metrics_port:
        print(f"  autoscaler metrics   http://127.0.0.1:{s.autoscaler_metrics_port}/metrics")
    print(f"  logs                 {fleet.data_dir / 'logs'}/")
    if fleet.demo:
        for line in demo_failure_lines():
            print(f"  {line}")
    print("  Ctrl-C stops everything.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
