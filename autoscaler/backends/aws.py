"""AWS backend: an EC2 Auto Scaling Group whose instances each run ``slots`` worker processes.

Scale out with SetDesiredCapacity (instances are protected from scale-in, so the ASG never picks a victim
itself); scale in = warm-stop the chosen idle instance's workers, then TerminateInstanceInAutoScalingGroup
with ShouldDecrementDesiredCapacity=True; instances in ``Terminating:Wait`` (spot loss, health replacement,
instance refresh) are drained and their termination lifecycle action completed when the drain ends;
instances whose workers stopped heartbeating are marked Unhealthy so the ASG replaces them.

Warm pool (``JOBFLEET_WARM_POOL_MAX`` > 0): :meth:`set_warm_pool` is PutWarmPool with the prepared capacity
the policy sized (stopped instances, reused on scale-in); :meth:`warm_pool_ready` counts the pool's
``Warmed:Stopped`` instances from DescribeWarmPool.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import boto3
from redis import Redis
from rq.command import send_shutdown_command

from autoscaler.backends.base import Machine, instances_from_workers
from autoscaler.policy import InstanceState
from jobfleet.settings import Settings, SettingsError
from jobfleet.worker_registry import WorkerInfo, worker_instances

log = logging.getLogger(__name__)
TERMINATING_HOOK = "autoscaling:EC2_INSTANCE_TERMINATING"
HEARTBEAT_EVERY = 120.0  # seconds; well inside the hook's heartbeat timeout (infra: lifecycle_timeout)


class AwsBackend:
    """Drives one Auto Scaling Group through boto3 (endpoint overridable for moto)."""

    def __init__(self, settings: Settings, connection: Redis, client: Any | None = None, ec2: Any | None = None):
        if not settings.asg_name:
            raise SettingsError("JOBFLEET_ASG_NAME is required for the aws backend")
        self.settings = settings
        self.asg_name = settings.asg_name
        self.connection = connection
        kwargs = {"region_name": settings.aws_region, "endpoint_url": settings.aws_endpoint_url}
        self.client = client or boto3.client("autoscaling", **kwargs)
        self.ec2 = ec2 or boto3.client("ec2", **kwargs)
        self.draining: dict[str, float] = {}  # instance id -> when the drain started
        self.had_workers: set[str] = set()
        self.marked_unhealthy: set[str] = set()
        self._workers: list[WorkerInfo] = []
        self._heartbeats: dict[str, float] = {}  # instance id -> last lifecycle heartbeat (or drain start)
        # New instances come up protected (the ASG's NewInstancesProtectedFromScaleIn, set by infra/fleet.py);
        # fleet() also protects any InService instance that is not, with SetInstanceProtection.

    @classmethod
    def from_settings(cls, settings: Settings, connection: Redis) -> AwsBackend:
        """A backend for ``settings.asg_name`` in ``settings.aws_region`` (endpoint override for moto)."""
        return cls(settings, connection)

    def desired(self) -> int:
        """The group's DesiredCapacity."""
        return int(self._group()["DesiredCapacity"])

    def _group(self) -> dict[str, Any]:
        groups = self.client.describe_auto_scaling_groups(AutoScalingGroupNames=[self.asg_name])["AutoScalingGroups"]
        if not groups:
            raise SettingsError(f"Auto Scaling Group {self.asg_name!r} does not exist")
        return dict(groups[0])

    def _launch_times(self, ids: list[str]) -> dict[str, float]:
        if not ids:
            return {}
        out: dict[str, float] = {}
        for reservation in self.ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for inst in reservation["Instances"]:
                out[inst["InstanceId"]] = inst["LaunchTime"].timestamp()
        return out

    def fleet(self) -> list[InstanceState]:
        """ASG instances joined with their workers; also finishes drains and flags dead instances."""
        group = self._group()
        rows = [i for i in group["Instances"] if i["LifecycleState"] not in ("Terminating", "Terminated")
                and not i["LifecycleState"].startswith("Warmed")]  # warm-pool instances are not the fleet
        launched = self._launch_times([i["InstanceId"] for i in rows])
        self._workers = worker_instances(self.connection)
        with_workers = {w.instance_id for w in self._workers if w.instance_id}
        now = time.time()
        self._protect([i["InstanceId"] for i in rows if i["LifecycleState"] == "InService"
                       and not i.get("ProtectedFromScaleIn") and i["InstanceId"] not in self.draining])
        machines = []
        for row in rows:
            iid, state = row["InstanceId"], row["LifecycleState"]
            if state.startswith("Terminating") and iid not in self.draining:
                self.drain([iid])  # hook-held termination we did not start: drain it, then complete the hook
            if iid in self.draining:
                if iid not in with_workers:
                    self._finish_drain(iid, state)
                elif state == "Terminating:Wait":
                    self._keep_hook_alive(iid, now)
                continue
            if iid in with_workers:
                self.had_workers.add(iid)
            elif iid in self.had_workers and state == "InService" and iid not in self.marked_unhealthy:
                self.client.set_instance_health(
                    InstanceId=iid, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False
                )
                self.marked_unhealthy.add(iid)
                log.warning("instance %s: workers stopped heartbeating; marked Unhealthy", iid)
            self._check_boot_deadline(iid, state, launched.get(iid, now), iid in with_workers, now)
            machines.append(Machine(iid, launched.get(iid, now), running=state == "InService"))
        states = instances_from_workers(machines, self._workers, self.settings.slots_per_instance, now)
        return [
            InstanceState(**{**s.__dict__, "healthy": s.id not in self.marked_unhealthy}) for s in states
        ]

    def _check_boot_deadline(self, iid: str, state: str, launched_at: float, has_workers: bool, now: float) -> None:
        """Mark Unhealthy an InService instance none of whose workers ever heartbeated within
        ``settings.boot_deadline`` of its launch (a host that half-booted), so the ASG replaces it."""
        if (has_workers or iid in self.had_workers or iid in self.marked_unhealthy or state != "InService"
                or now - launched_at < self.settings.boot_deadline):
            return
        self.client.set_instance_health(InstanceId=iid, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False)
        self.marked_unhealthy.add(iid)
        log.warning("instance %s: no worker heartbeat %.0f s after launch; marked Unhealthy", iid, now - launched_at)

    def _protect(self, ids: list[str]) -> None:
        if ids:
            self.client.set_instance_protection(
                AutoScalingGroupName=self.asg_name, InstanceIds=ids, ProtectedFromScaleIn=True
            )

    def set_desired(self, desired: int) -> None:
        """SetDesiredCapacity (no cooldown): new instances come up protected from scale-in."""
        self.client.set_desired_capacity(
            AutoScalingGroupName=self.asg_name, DesiredCapacity=desired, HonorCooldown=False
        )

    def drain(self, instance_ids: Sequence[str]) -> list[str]:
        """Warm-stop every worker of these instances; the instance is terminated once they are gone."""
        for iid in instance_ids:
            self.draining.setdefault(iid, time.time())
            for w in self._workers or worker_instances(self.connection):
                if w.instance_id == iid:
                    send_shutdown_command(self.connection, w.name)
        return list(instance_ids)

    def _keep_hook_alive(self, iid: str, now: float) -> None:
        """RecordLifecycleActionHeartbeat every HEARTBEAT_EVERY s while a hook-held instance finishes its jobs."""
        last = self._heartbeats.setdefault(iid, now)
        if now - last < HEARTBEAT_EVERY:
            return
        self._heartbeats[iid] = now
        for hook in self.client.describe_lifecycle_hooks(AutoScalingGroupName=self.asg_name)["LifecycleHooks"]:
            if hook.get("LifecycleTransition") == TERMINATING_HOOK:
                self.client.record_lifecycle_action_heartbeat(
                    AutoScalingGroupName=self.asg_name, LifecycleHookName=hook["LifecycleHookName"], InstanceId=iid
                )

    def _finish_drain(self, iid: str, state: str) -> None:
        if state == "Terminating:Wait":
            hooks = self.client.describe_lifecycle_hooks(AutoScalingGroupName=self.asg_name)["LifecycleHooks"]
            for hook in hooks:
                if hook.get("LifecycleTransition") == TERMINATING_HOOK:
                    try:
                        self.client.complete_lifecycle_action(
                            AutoScalingGroupName=self.asg_name, LifecycleHookName=hook["LifecycleHookName"],
                            InstanceId=iid, LifecycleActionResult="CONTINUE",
                        )
                    except self.client.exceptions.ClientError as exc:  # the host's own drain loop was first
                        log.info("instance %s: lifecycle action already completed (%s)", iid, exc)
        else:
            with contextlib.suppress(self.client.exceptions.ClientError):
                self.client.set_instance_protection(
                    AutoScalingGroupName=self.asg_name, InstanceIds=[iid], ProtectedFromScaleIn=False
                )
            self.client.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=True)
        log.info("instance %s drained and released (%s)", iid, state)
        self.draining.pop(iid, None)
        self._heartbeats.pop(iid, None)

    # -- warm pool ---------------------------------------------------------------------------------------
    def warm_pool_ready(self) -> int:
        """Stopped warm-pool instances ready for a warm start (DescribeWarmPool)."""
        ready, token = 0, None
        while True:
            kwargs: dict[str, str] = {"NextToken": token} if token else {}
            reply = self.client.describe_warm_pool(AutoScalingGroupName=self.asg_name, **kwargs)
            ready += sum(1 for i in reply.get("Instances", []) if i.get("LifecycleState") == "Warmed:Stopped")
            token = reply.get("NextToken")
            if not token:
                return ready

    def set_warm_pool(self, size: int) -> None:
        """PutWarmPool: keep ``size`` instances prepared (in service + stopped), reused on scale-in."""
        group_min = int(self._group()["MinSize"])
        self.client.put_warm_pool(
            AutoScalingGroupName=self.asg_name, MaxGroupPreparedCapacity=max(size, group_min), MinSize=0,
            PoolState="Stopped", InstanceReusePolicy={"ReuseOnScaleIn": True},
        )
        log.info("warm pool of %s: prepared capacity %d", self.asg_name, max(size, group_min))

    def close(self) -> None:
        """Nothing to stop: the daemon exiting never touches capacity."""
