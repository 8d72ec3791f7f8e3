"""Redis failover, locally: a real primary and a real replica (``REPLICAOF``), clients behind one endpoint.

    python -m bench.failover [--seconds 4] [--workers 2]

Jobs are submitted as fast as one client can while two workers run them, all through a TCP proxy that
stands for the failover endpoint. Mid-run the primary is kill -9'd, the replica promoted (``REPLICAOF NO
ONE``) and the endpoint switched to it. Reported per mode, asynchronous (default) and acknowledged
(``JOBFLEET_SUBMIT_ACK_REPLICAS=1``, :mod:`jobfleet.ack`): accepted submits, accepted jobs the promoted
replica never got (lost), jobs run twice, and the median submit latency (the cost of the ``WAIT``).
Writes ``bench/results/failover.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from bench.chaos import COMPLETIONS, ROOT, _env, _kill_tree, _text, _whereabouts
from bench.tcp_proxy import Proxy


@dataclass
class FailoverResult:
    """What one failover run measured."""

    mode: str
    accepted: int
    accepted_after: int
    rejected: int
    lost: int
    duplicated: int
    unfinished: int
    submit_median_ms: float
    failover_s: float
    unfinished_detail: list[dict[str, Any]] = field(default_factory=list)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _linked(replica: Redis) -> bool:
    info = replica.info("replication")
    return bool(info.get("master_link_status") == "up")


def run_failover(ack_replicas: int = 0, seconds: float = 4.0, workers: int = 2, job_seconds: float = 0.01,
                 drain_timeout: float = 60.0, rate: float = 25.0, replica_lag_s: float = 0.0,
                 keep: Path | None = None) -> FailoverResult:
    """One run: submit ``rate`` jobs/s for ``seconds`` (failover half way), then drain on the promoted replica.

    ``replica_lag_s``: the replication link (through its own proxy) stops delivering that long before the
    primary dies, as a lagging link would: what the replica has not received is lost unless the submit
    waited for it.
    """
    from jobfleet.connection import redis_connection
    from jobfleet.embedded_redis import EmbeddedRedis
    from jobfleet.settings import load_settings
    from jobfleet.submit import submit

    with tempfile.TemporaryDirectory(prefix="jobfleet-failover-") as tmp:
        base = Path(tmp)
        primary = EmbeddedRedis(base / "primary").start()
        replica = EmbeddedRedis(base / "replica").start()
        procs: list[subprocess.Popen[bytes]] = []
        proxy = Proxy(primary.port)
        link = Proxy(primary.port)  # the replication link
        try:
            replica_client = Redis(port=replica.port)
            replica_client.execute_command("REPLICAOF", "127.0.0.1", link.port)
            _wait(lambda: _linked(replica_client), 20, "replica link")
            env = _env(proxy.url, base / "data", {"JOBFLEET_SUBMIT_ACK_REPLICAS": str(ack_replicas)})
            settings = load_settings(env)
            for i in range(workers):
                log = (base / f"w{i}.log").open("ab")
                procs.append(subprocess.Popen([sys.executable, "-m", "worker", "--name", f"fw{i}"], cwd=ROOT,
                                              env={**env, "CHAOS_WORKER": f"fw{i}"}, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
                log.close()
            client = redis_connection(settings)
            accepted: list[tuple[str, str]] = []  # (key, job id) of every submit that returned
            latencies: list[float] = []
            rejected = 0
            stop = threading.Event()

            def submitter() -> None:
                nonlocal rejected
                n = 0
                while not stop.wait(1.0 / rate):
                    key = f"f{n}"
                    n += 1
                    began = time.perf_counter()
                    try:
                        # JOBFLEET_SUBMIT_ACK_REPLICAS in ``settings`` makes submit() WAIT for the replica.
                        job = submit("bench.chaos.chaos_job", key, job_seconds, connection=client,
                                     settings=settings)
                    except Exception:  # not accepted: the caller would know and retry
                        rejected += 1
                        continue
                    latencies.append(time.perf_counter() - began)
                    accepted.append((key, job.id))

            thread = threading.Thread(target=submitter, daemon=True)
            thread.start()
            time.sleep(seconds / 2)
            if replica_lag_s > 0:
                link.hold()
                time.sleep(replica_lag_s)
            t0 = time.monotonic()
            primary.kill()
            link.close()
            replica_client.execute_command("REPLICAOF", "NO", "ONE")
            proxy.switch(replica.port)
            failover_s = time.monotonic() - t0
            before = len(accepted)
            time.sleep(seconds / 2)
            stop.set()
            thread.join(30)
            promoted = Redis(port=replica.port)
            pipe = promoted.pipeline(transaction=False)
            for _key, job_id in accepted:
                pipe.exists(f"rq:job:{job_id}")
            known = {key for (key, _), present in zip(accepted, pipe.execute(), strict=True) if present}
            deadline = time.monotonic() + drain_timeout
            while time.monotonic() < deadline:
                with contextlib.suppress(RedisError):
                    done = {_text(k) for k in promoted.hkeys(COMPLETIONS)}
                    if known <= done:
                        break
                time.sleep(0.2)
            completions = {_text(k): int(v) for k, v in promoted.hgetall(COMPLETIONS).items()}
            return FailoverResult(
                mode=f"ack_replicas={ack_replicas}" if ack_replicas else "async",
                accepted=len(accepted), accepted_after=len(accepted) - before, rejected=rejected,
                lost=len(accepted) - len(known),
                duplicated=sum(1 for k, _ in accepted if completions.get(k, 0) > 1),
                unfinished=sum(1 for k in known if not completions.get(k)),
                submit_median_ms=round(statistics.median(latencies) * 1000, 3) if latencies else float("nan"),
                failover_s=round(failover_s, 3),
                unfinished_detail=[_whereabouts(promoted, job_id) for key, job_id in accepted
                                   if key in known and not completions.get(key)],
            )
        finally:
            for proc in procs:
                _kill_tree(proc)
            proxy.close()
            link.close()
            primary.stop()
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                for path in base.glob("w*.log"):
                    shutil.copy(path, keep / path.name)
            replica.stop()


def measure_ack_cost(submits: int = 300) -> dict[str, float]:
    """Median submit latency without and with ``WAIT`` for 1 replica, direct connections (no proxy)."""
    from jobfleet.ack import wait_for_replicas
    from jobfleet.embedded_redis import EmbeddedRedis
    from jobfleet.settings import load_settings
    from jobfleet.submit import submit

    with tempfile.TemporaryDirectory(prefix="jobfleet-ack-") as tmp:
        primary = EmbeddedRedis(Path(tmp) / "primary").start()
        replica = EmbeddedRedis(Path(tmp) / "replica").start()
        try:
            replica_client = Redis(port=replica.port)
            replica_client.execute_command("REPLICAOF", "127.0.0.1", primary.port)
            _wait(lambda: _linked(replica_client), 20, "replica link")
            client = Redis(port=primary.port)
            settings = load_settings({"REDIS_URL": primary.url})
            medians = {}
            for replicas in (0, 1, 0, 1):  # interleaved, the second round counts
                times = []
                for _ in range(submits):
                    began = time.perf_counter()
                    submit("jobfleet.demo.jobs.noop", connection=client, settings=settings)
                    wait_for_replicas(client, replicas, 1000)
                    times.append(time.perf_counter() - began)
                medians[f"submit_ms_ack{replicas}"] = round(statistics.median(times) * 1000, 3)
            medians["ratio"] = round(medians["submit_ms_ack1"] / medians["submit_ms_ack0"], 2)
            return medians
        finally:
            primary.stop()
            replica.stop()


def main(argv: list[str] | None = None) -> int:
    """Run both modes and print lost jobs and the cost of acknowledged submits."""
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=25.0, help="submits per second")
    parser.add_argument("--replica-lag", type=float, default=0.5,
                        help="seconds the replica is frozen before the primary dies (0: a healthy local link)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "failover.json")
    args = parser.parse_args(argv)
    results = [run_failover(ack, args.seconds, args.workers, rate=args.rate, replica_lag_s=lag)
               for lag in (0.0, args.replica_lag) for ack in (0, 1)]
    for r, lag in zip(results, (0.0, 0.0, args.replica_lag, args.replica_lag), strict=True):
        print(f"replica lag {lag:.1f} s {r.mode:>15}: accepted {r.accepted} ({r.accepted_after} after the failover), "
              f"lost {r.lost}, ran twice {r.duplicated}, unfinished {r.unfinished}, "
              f"median submit {r.submit_median_ms} ms")
    for r in results:
        r.mode += f" replica_lag={args.replica_lag if results.index(r) >= 2 else 0.0}"
    cost = measure_ack_cost()
    print(f"submit median, direct to a primary with one replica: {cost['submit_ms_ack0']} ms asynchronous, "
          f"{cost['submit_ms_ack1']} ms acknowledged (WAIT 1): {cost['ratio']}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": [asdict(r) for r in results], "ack_cost": cost,
                                    "host_cpus": os.cpu_count()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
