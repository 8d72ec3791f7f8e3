"""AWS backend over HTTP against a local moto server, with real Redis and real worker processes.

moto 5 has no CompleteLifecycleAction and never puts an instance in ``Terminating:Wait``: the test adds a
small handler for the former to the in-process moto server (it records the call and finishes the
termination) and moves an instance into ``Terminating:Wait`` in moto's state, as a spot interruption would.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.autoscaling import models as asg_models
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import EmptyResult
from moto.server import ThreadedMotoServer
from redis import Redis
from rq import Queue
from rq.job import Job

from autoscaler.backends.aws import AwsBackend
from autoscaler.daemon import Daemon
from jobfleet.embedded_redis import free_port
from jobfleet.settings import Settings, load_settings
from jobfleet.worker_registry import worker_instances
from tests.conftest import spawn
from tests.conftest import test_env as child_env

ASG = "jobfleet-test-workers"
REGION = "us-east-1"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("autoscaler-aws")]


def _wait(what: str, check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    completed: list[dict[str, str]] = []

    def complete_lifecycle_action(self: AutoScalingResponse) -> EmptyResult:
        call = {k: self._get_param(k) for k in ("AutoScalingGroupName", "LifecycleHookName", "InstanceId",
                                                 "LifecycleActionResult")}
        completed.append(call)
        self.autoscaling_backend.terminate_instance(call["InstanceId"], should_decrement=True)
        return EmptyResult()

    monkeypatch.setattr(AutoScalingResponse, "complete_lifecycle_action", complete_lifecycle_action, raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    url = f"http://127.0.0.1:{server._port}"
    monkeypatch.setattr("tests.autoscaler.test_aws_backend.COMPLETED", completed, raising=False)
    try:
        yield url
    finally:
        server.stop()


COMPLETED: list[dict[str, str]] = []


def _make_group(url: str) -> Any:
    kwargs = {"region_name": REGION, "endpoint_url": url}
    ec2, client = boto3.client("ec2", **kwargs), boto3.client("autoscaling", **kwargs)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    client.create_launch_configuration(LaunchConfigurationName="lc", ImageId=image, InstanceType="t3.micro")
    client.create_auto_scaling_group(
        AutoScalingGroupName=ASG, LaunchConfigurationName="lc", MinSize=0, MaxSize=5, DesiredCapacity=0,
        AvailabilityZones=[f"{REGION}a"], NewInstancesProtectedFromScaleIn=True,
    )
    client.put_lifecycle_hook(
        AutoScalingGroupName=ASG, LifecycleHookName="drain", LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=600, DefaultResult="CONTINUE",
    )
    return client


def _group(client: Any) -> dict[str, Any]:
    return dict(client.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"][0])


def _settings(redis_url: str, tmp_path: Path, url: str) -> Settings:
    return load_settings(child_env(
        redis_url, tmp_path, JOBFLEET_AUTOSCALER_BACKEND="aws", JOBFLEET_ASG_NAME=ASG, AWS_REGION=REGION,
        JOBFLEET_AWS_ENDPOINT_URL=url, JOBFLEET_QUEUES="default", JOBFLEET_IDLE_HOLD="0", JOBFLEET_BOOT_TIME="5",
        JOBFLEET_MAX_INSTANCES="2", JOBFLEET_RECOVERY_INTERVAL="1000",
    ))


def _start_worker(redis_url: str, tmp_path: Path, instance_id: str) -> subprocess.Popen[bytes]:
    env = child_env(redis_url, tmp_path, JOBFLEET_INSTANCE_ID=instance_id, JOBFLEET_QUEUES="default")
    return spawn(["-m", "worker", "--queues", "default", "--name", f"w-{instance_id}"], env,
                 tmp_path / f"worker-{instance_id}.log")


def test_scale_out_drain_idle_terminate_and_lifecycle_completion(
    redis: Redis, redis_url: str, tmp_path: Path, moto_url: str
) -> None:
    client = _make_group(moto_url)
    settings = _settings(redis_url, tmp_path, moto_url)
    backend = AwsBackend.from_settings(settings, redis)
    daemon = Daemon(settings, backend, redis)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        # Scale out: a backlog makes the daemon set the desired capacity straight to the target.
        queue = Queue("default", connection=redis)
        for _ in range(8):
            queue.enqueue("jobfleet.demo.jobs.sleep", 0.1)
        decision = daemon.step()
        assert decision.code == "scale_out" and decision.desired == 2  # straight to the target, capped at max
        group = _group(client)
        assert group["DesiredCapacity"] == decision.desired
        ids = sorted(i["InstanceId"] for i in group["Instances"])
        assert all(i["ProtectedFromScaleIn"] for i in group["Instances"])
        queue.empty()
        redis.delete(queue.finished_job_registry.key)
        for iid in ids:
            procs[iid] = _start_worker(redis_url, tmp_path, iid)
        _wait("both workers up", lambda: {w.instance_id for w in worker_instances(redis)} == set(ids))
        job = Queue("default", connection=redis).enqueue("jobfleet.demo.jobs.sleep", 5, job_timeout=60)
        _wait("job running", lambda: Job.fetch(job.id, connection=redis).get_status() == "started")
        busy_id = next(w.instance_id for w in worker_instances(redis) if w.busy)
        idle_id = next(i for i in ids if i != busy_id)

        # Scale in: only the idle instance is drained, then terminated with a decrement.
        decision = daemon.step()
        assert decision.code == "scale_in" and decision.drain == (idle_id,), decision
        procs[idle_id].wait(timeout=20)  # its worker warm-stopped on the shutdown command
        _wait("idle instance terminated", lambda: daemon.step() and idle_id not in
              {i["InstanceId"] for i in _group(client)["Instances"]})
        group = _group(client)
        assert group["DesiredCapacity"] == 1 and [i["InstanceId"] for i in group["Instances"]] == [busy_id]
        assert Job.fetch(job.id, connection=redis).get_status() == "started"  # the busy one survived

        # Spot loss on the busy instance: it enters Terminating:Wait; the backend drains it (warm) and
        # completes the lifecycle action only once its worker is gone, i.e. after the job finished.
        asg = asg_models.autoscaling_backends["123456789012"][REGION].autoscaling_groups[ASG]
        next(s for s in asg.instance_states if s.instance.id == busy_id).lifecycle_state = "Terminating:Wait"
        backend.fleet()
        assert not COMPLETED, "lifecycle completed while the worker still ran its job"
        procs[busy_id].wait(timeout=30)
        assert Job.fetch(job.id, connection=redis).get_status() == "finished"
        backend.fleet()
        assert [{"AutoScalingGroupName": ASG, "LifecycleHookName": "drain", "InstanceId": busy_id,
                              "LifecycleActionResult": "CONTINUE"}] == COMPLETED
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_instance_whose_workers_stopped_heartbeating_is_marked_unhealthy(
    redis: Redis, redis_url: str, tmp_path: Path, moto_url: str
) -> None:
    client = _make_group(moto_url)
    settings = _settings(redis_url, tmp_path, moto_url)
    backend = AwsBackend.from_settings(settings, redis)
    backend.set_desired(1)
    (iid,) = [i["InstanceId"] for i in _group(client)["Instances"]]
    proc = _start_worker(redis_url, tmp_path, iid)
    try:
        _wait("worker up", lambda: [w for w in worker_instances(redis) if w.instance_id == iid])
        assert [s.ready for s in backend.fleet()] == [True]
        proc.kill()  # the host hangs: no warm stop, no death record
        proc.wait()
        redis.delete(f"rq:worker:w-{iid}")  # what the heartbeat TTL expiry does, without waiting for it
        redis.srem("rq:workers", f"rq:worker:w-{iid}")
        (state,) = backend.fleet()
        assert not state.healthy and not state.ready
        assert _group(client)["Instances"][0]["HealthStatus"] == "Unhealthy"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_warm_pool_is_sized_by_the_daemon_with_put_warm_pool(
    redis: Redis, redis_url: str, tmp_path: Path, moto_url: str
) -> None:
    """moto 5 stores the warm pool's configuration (Put/Describe/DeleteWarmPool) but never puts an instance in
    it: DescribeWarmPool's Instances stay empty, so warm starts themselves are only simulated (bench/sim.py)."""
    client = _make_group(moto_url)
    settings = load_settings({**child_env(
        redis_url, tmp_path, JOBFLEET_AUTOSCALER_BACKEND="aws", JOBFLEET_ASG_NAME=ASG, AWS_REGION=REGION,
        JOBFLEET_AWS_ENDPOINT_URL=moto_url, JOBFLEET_QUEUES="default", JOBFLEET_BOOT_TIME="90",
        JOBFLEET_MAX_INSTANCES="5", JOBFLEET_RECOVERY_INTERVAL="1000", JOBFLEET_WARM_POOL_MAX="4",
    )})
    backend = AwsBackend.from_settings(settings, redis)
    backend.set_warm_pool(3)
    pool = client.describe_warm_pool(AutoScalingGroupName=ASG)
    assert pool["WarmPoolConfiguration"]["MaxGroupPreparedCapacity"] == 3
    assert pool["WarmPoolConfiguration"]["PoolState"] == "Stopped"
    assert pool["WarmPoolConfiguration"]["InstanceReusePolicy"] == {"ReuseOnScaleIn": True}
    assert backend.warm_pool_ready() == 0  # moto never has Warmed:Stopped instances

    daemon = Daemon(settings, backend, redis)
    queue = Queue("default", connection=redis)
    for _ in range(40):
        queue.enqueue("jobfleet.demo.jobs.sleep", 0.1)
    decision = daemon.step()  # a burst of 5 instances (the max): worth a pool, capped at JOBFLEET_WARM_POOL_MAX
    assert decision.code == "scale_out" and decision.desired == 5
    assert daemon.warm_pool_size == 4
    assert client.describe_warm_pool(AutoScalingGroupName=ASG)["WarmPoolConfiguration"][
        "MaxGroupPreparedCapacity"] == 4
