"""Local backend: each instance is ``slots_per_instance`` ``python -m worker`` processes on this machine.

This is the `make run` default. An instance is booting until each of its processes has registered its RQ
worker in Redis (matched by pid), then ready; busy/idle comes from the workers' RQ state. Scale-in sends
SIGTERM (RQ's warm shutdown: a running job is finished first) to idle instances only, re-checking their
state right before the signal. Exited processes are reaped on every call; :meth:`close` warm-stops all.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from autoscaler.backends.base import instance_state
from autoscaler.policy import InstanceState
from jobfleet.paths import child_pythonpath
from jobfleet.settings import Settings
from jobfleet.worker_registry import WorkerInfo, worker_instances


@dataclass
class LocalInstance:
    """One local instance: its worker processes and when it was requested."""

    id: str
    launched_at: float
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    draining: bool = False

    def alive(self) -> list[subprocess.Popen[bytes]]:
        """Processes that have not exited (polling reaps the exited ones)."""
        return [p for p in self.processes if p.poll() is None]


class LocalBackend:
    """Starts worker processes (env ``JOBFLEET_INSTANCE_ID=local-<n>``), SIGTERMs idle ones, reaps them all."""

    def __init__(self, settings: Settings, connection: Redis, log_dir: Path | None = None) -> None:
        self.settings = settings
        self.connection = connection
        self.log_dir = log_dir or settings.data_dir / "logs"
        self.instances: dict[str, LocalInstance] = {}
        self._ids = itertools.count(1)
        self._run = f"{os.getpid()}"

    # -- state -------------------------------------------------------------------------------------------
    def _reap(self) -> None:
        for inst in list(self.instances.values()):
            if not inst.alive():
                del self.instances[inst.id]

    def _workers_by_pid(self) -> dict[int, WorkerInfo]:
        return {w.pid: w for w in worker_instances(self.connection) if w.pid is not None}

    def fleet(self) -> list[InstanceState]:
        """Live, non-draining instances; ready once every process registered its worker in Redis."""
        self._reap()
        workers = self._workers_by_pid()
        now = time.time()
        out = []
        for inst in self.instances.values():
            if inst.draining:
                continue
            mine = [workers[p.pid] for p in inst.alive() if p.pid in workers]
            ready = len(mine) == len(inst.processes) and bool(mine)
            out.append(instance_state(inst.id, inst.launched_at, self.settings.slots_per_instance, ready, mine, now))
        return out

    def desired(self) -> int:
        """The current size: live instances that are not draining."""
        self._reap()
        return sum(1 for inst in self.instances.values() if not inst.draining)

    def draining(self) -> list[str]:
        """Instances told to stop whose processes have not exited yet."""
        self._reap()
        return [inst.id for inst in self.instances.values() if inst.draining]

    # -- actions -----------------------------------------------------------------------------------------
    def set_desired(self, desired: int) -> None:
        """Start instances until ``desired`` (not counting draining ones) exist; never stops any."""
        for _ in range(max(0, desired - self.desired())):
            self._start()

    def child_env(self, instance_id: str) -> dict[str, str]:
        """Environment of a worker process: instance id, metrics directory, no per-process metrics port."""
        env = dict(os.environ)
        env["JOBFLEET_INSTANCE_ID"] = instance_id
        env["JOBFLEET_METRICS_PORT"] = "0"
        env["PYTHONPATH"] = child_pythonpath(env.get("PYTHONPATH"))
        if self.settings.worker_metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.settings.worker_metrics_dir)
        return env

    def _start(self) -> None:
        instance_id = f"local-{next(self._ids)}"
        inst = LocalInstance(instance_id, time.time())
        self.instances[instance_id] = inst
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.child_env(instance_id)
        with (self.log_dir / f"worker-{instance_id}.log").open("ab") as log:
            for slot in range(self.settings.slots_per_instance):
                inst.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "worker", "--queues", ",".join(self.settings.queues),
                         "--name", f"{instance_id}.{slot}.{self._run}"],
                        cwd=os.getcwd(), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    )
                )

    def drain(self, instance_ids: Sequence[str]) -> list[str]:
        """SIGTERM (warm stop) the processes of these instances if they are idle; returns those signalled."""
        workers = self._workers_by_pid()
        signalled = []
        for instance_id in instance_ids:
            inst = self.instances.get(instance_id)
            if inst is None or inst.draining:
                continue
            if any(workers[p.pid].busy for p in inst.alive() if p.pid in workers):
                continue  # it took a job since the observation: keep it
            inst.draining = True
            for p in inst.alive():
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
            signalled.append(instance_id)
        return signalled

    def close(self, timeout: float | None = None) -> None:
        """Warm-stop every worker (each finishes its job), wait for them, kill only past the deadline."""
        deadline = time.monotonic() + (self.settings.shutdown_deadline + 10 if timeout is None else timeout)
        processes = [p for inst in self.instances.values() for p in inst.processes]
        for p in processes:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.instances.clear()
