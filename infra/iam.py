"""IAM: one role + instance profile per host role, each allowed exactly what its services call.

Statements name their resources (bucket prefixes, parameter ARNs, the worker ASG's ARN). Only actions
AWS cannot scope to a resource (``Describe*``) use ``"*"``; :data:`UNSCOPABLE_ACTIONS` lists them and the
policy rules in ``infra.policies`` enforce it.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.tags import Tagger

UNSCOPABLE_ACTIONS = frozenset({
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeLifecycleHooks",
    "autoscaling:DescribeWarmPool",
    "ec2:DescribeInstances",
    "ec2:DescribeAvailabilityZones",
})
"""Actions that do not support resource-level permissions, so they may (only) target ``*``."""

ASG_CONTROL_ACTIONS = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
    "autoscaling:SetInstanceProtection",
    "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
    "autoscaling:SetInstanceHealth",
    "autoscaling:PutWarmPool",  # issue 14: the autoscaler sizes the warm pool
)
"""What the autoscaler does to the worker group: resize, pick victims, protect, finish drains."""

SSM_CORE_POLICY = "AmazonSSMManagedInstanceCore"
"""AWS-managed policy for Session Manager access (instead of SSH keys)."""


def asg_arn(partition: str, region: str, account: str, asg_name: str) -> str:
    """ARN of the named Auto Scaling group (its UUID part wildcarded, as IAM allows)."""
    return f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{asg_name}"


def policy_document(statements: list[dict[str, Any]]) -> str:
    """A JSON IAM policy document from statements."""
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


class HostRole(pulumi.ComponentResource):
    """An EC2 role with Session Manager access, one inline policy and an instance profile."""

    role: aws.iam.Role
    profile: aws.iam.InstanceProfile

    def __init__(
        self, name: str, policy: pulumi.Input[str], partition: str, tags: Tagger,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:iam:HostRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        assume = policy_document([{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
        }])
        self.role = aws.iam.Role(f"{name}-role", assume_role_policy=assume, tags=tags(f"{name}-role"), opts=child)
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core", role=self.role.name,
            policy_arn=f"arn:{partition}:iam::aws:policy/{SSM_CORE_POLICY}", opts=child,
        )
        aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=policy, opts=child)
        self.profile = aws.iam.InstanceProfile(
            f"{name}-profile", role=self.role.name, tags=tags(f"{name}-profile"), opts=child
        )
        self.register_outputs({"role_arn": self.role.arn})


class Iam(pulumi.ComponentResource):
    """Roles of the worker, monitoring (autoscaler), dashboard and Grafana hosts."""

    worker: HostRole
    monitoring: HostRole
    dashboard: HostRole
    grafana: HostRole

    def __init__(
        self,
        name: str,
        *,
        tags: Tagger,
        partition: str,
        asg_arn: str,
        bucket_arn: pulumi.Input[str],
        app_key: str,
        observability_key: str,
        redis_parameter_arn: pulumi.Input[str],
        dashboard_parameter_arn: pulumi.Input[str],
        grafana_parameter_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:iam:Iam", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        out = pulumi.Output.all(
            bucket_arn, redis_parameter_arn, dashboard_parameter_arn, grafana_parameter_arn
        )

        def app_statements(bucket: str, redis: str) -> list[dict[str, Any]]:
            return [
                _allow("ReadRelease", ["s3:GetObject"], [f"{bucket}/{app_key}"]),
                _allow("ReadRedisToken", ["ssm:GetParameter"], [redis]),
            ]

        worker_policy = out.apply(lambda a: policy_document([
            *app_statements(a[0], a[1]),
            _allow("CompleteOwnDrain", ["autoscaling:CompleteLifecycleAction"], [asg_arn]),
        ]))
        monitoring_policy = out.apply(lambda a: policy_document([
            *app_statements(a[0], a[1]),
            _allow("ControlWorkerGroup", list(ASG_CONTROL_ACTIONS), [asg_arn]),
            _allow("DescribeUnscopable", [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeScalingActivities", "autoscaling:DescribeLifecycleHooks", "ec2:DescribeInstances",
                "autoscaling:DescribeWarmPool",  # issue 14
            ], ["*"]),
        ]))
        dashboard_policy = out.apply(lambda a: policy_document([
            *app_statements(a[0], a[1]),
            _allow("ReadDashboardToken", ["ssm:GetParameter"], [a[2]]),
        ]))
        grafana_policy = out.apply(lambda a: policy_document([
            _allow("ReadProvisioning", ["s3:GetObject"], [f"{a[0]}/{observability_key}"]),
            _allow("ReadGrafanaPassword", ["ssm:GetParameter"], [a[3]]),
            _allow("PrometheusEc2Discovery", ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"], ["*"]),
        ]))
        self.worker = HostRole(f"{name}-worker", worker_policy, partition, tags, child)
        self.monitoring = HostRole(f"{name}-monitoring", monitoring_policy, partition, tags, child)
        self.dashboard = HostRole(f"{name}-dashboard", dashboard_policy, partition, tags, child)
        self.grafana = HostRole(f"{name}-grafana", grafana_policy, partition, tags, child)
        self.register_outputs({})
