"""IAM: one role + instance profile per host role, each allowed exactly what its services call.

Statements name their resources (bucket prefixes, parameter ARNs, the worker ASG's ARN). Only actions
AWS cannot scope to a resource (``Describe*``) use ``"*"``; :data:`UNSCOPABLE_ACTIONS` lists them and the
policy rules in ``infra.policies`` enforce it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.access import PARAMETER_CONTEXT, SECRET_READ_ACTIONS
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


def bundle_prefix(key: str) -> str:
    """The S3 key pattern of every release of a bundle (``releases/jobfleet-<sha>.tar.gz`` -> ``releases/jobfleet-*``).

    Granting the prefix rather than one key closes the AccessDenied window of a rollout, when the role's
    policy already names the new key but a host of the old launch template still fetches the old one
    (or the other way round).
    """
    return key.rsplit("-", 1)[0] + "-*"


def secret_statements(own: list[str], others: list[str], key_arn: str) -> list[dict[str, Any]]:
    """Read ``own`` parameters (and decrypt them only: KMS encryption context), explicitly deny the ``others``."""
    statements: list[dict[str, Any]] = []
    if own:
        statements += [
            _allow("ReadOwnSecrets", ["ssm:GetParameter"], own),
            {**_allow("DecryptOwnSecrets", ["kms:Decrypt"], [key_arn]),
             "Condition": {"StringEquals": {PARAMETER_CONTEXT: sorted(own)}}},
        ]
    if others:
        statements.append({"Sid": "DenyOtherSecrets", "Effect": "Deny", "Action": sorted(SECRET_READ_ACTIONS),
                           "Resource": sorted(others)})
    statements.append({"Sid": "DenyParameterListing", "Effect": "Deny", "Action": ["ssm:GetParametersByPath"],
                       "Resource": ["*"]})
    return statements


class HostRole(pulumi.ComponentResource):
    """An EC2 role with Session Manager access, one inline policy and an instance profile."""

    role: aws.iam.Role
    profile: aws.iam.InstanceProfile

    def __init__(
        self, name: str, policy: pulumi.Input[str], partition: str, tags: Tagger,
        opts: pulumi.ResourceOptions | None = None, role_name: str | None = None,
    ) -> None:
        super().__init__("jobfleet:iam:HostRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        assume = policy_document([{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
        }])
        self.role = aws.iam.Role(f"{name}-role", name=role_name, assume_role_policy=assume,
                                 tags=tags(f"{name}-role"), opts=child)
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core", role=self.role.name,
            policy_arn=f"arn:{partition}:iam::aws:policy/{SSM_CORE_POLICY}", opts=child,
        )
        aws.iam.RolePolicy(f"{name}-policy", role=self.role.name, policy=policy, opts=child)
        self.profile = aws.iam.InstanceProfile(
            f"{name}-profile", role=self.role.name, tags=tags(f"{name}-profile"), opts=child
        )
        self.register_outputs({"role_arn": self.role.arn})


class Iam(pulumi.ComponentResource):
    """Roles of the worker, monitoring (autoscaler), dashboard and Grafana hosts.

    Each role reads (and may decrypt) only the parameters :data:`infra.secret_params.READERS` gives it and
    is explicitly denied the others; roles are named ``<project>-<stack>-<role>`` so policies and the
    policy rules can name them.
    """

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
        parameter_arns: Mapping[str, pulumi.Input[str]],
        key_arn: pulumi.Input[str],
        readers: Mapping[str, tuple[str, ...]],
        role_prefix: str,
        log_arns: Mapping[str, list[str]] | None = None,
        vendor_prefix: str = "vendor/",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:iam:Iam", name, None, opts)
        logs = log_arns or {}
        child = pulumi.ResourceOptions(parent=self)
        keys = sorted(parameter_arns)
        out = pulumi.Output.all(bucket_arn, key_arn, *[parameter_arns[k] for k in keys])

        def secrets(role: str, a: list[str]) -> list[dict[str, Any]]:
            arns = dict(zip(keys, a[2:], strict=True))
            own = [arns[k] for k in keys if role in readers.get(k, ())]
            shipping = [_allow("ShipLogs", ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                               sorted(logs[role]))] if logs.get(role) else []
            return secret_statements(own, [arns[k] for k in keys if arns[k] not in own], a[1]) + shipping

        def release(bucket: str) -> dict[str, Any]:
            return _allow("ReadReleases", ["s3:GetObject"], [f"{bucket}/{bundle_prefix(app_key)}"])

        worker_policy = out.apply(lambda a: policy_document([
            release(a[0]), *secrets("worker", a),
            _allow("CompleteOwnLifecycleActions", ["autoscaling:CompleteLifecycleAction"], [asg_arn]),
        ]))
        monitoring_policy = out.apply(lambda a: policy_document([
            release(a[0]), *secrets("monitoring", a),
            _allow("ControlWorkerGroup", list(ASG_CONTROL_ACTIONS), [asg_arn]),
            _allow("DescribeUnscopable", [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeScalingActivities", "autoscaling:DescribeLifecycleHooks", "ec2:DescribeInstances",
                "autoscaling:DescribeWarmPool",  # issue 14
            ], ["*"]),
        ]))
        dashboard_policy = out.apply(lambda a: policy_document([release(a[0]), *secrets("dashboard", a)]))
        grafana_policy = out.apply(lambda a: policy_document([
            _allow("ReadProvisioning", ["s3:GetObject"], [f"{a[0]}/{bundle_prefix(observability_key)}"]),
            # the verified Grafana/Prometheus/Tempo/collector archives (infra/releases.py), keyed by digest
            _allow("ReadVendorArchives", ["s3:GetObject"], [f"{a[0]}/{vendor_prefix}*"]),
            *secrets("grafana", a),
            _allow("PrometheusEc2Discovery", ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"], ["*"]),
        ]))
        self.worker = HostRole(f"{name}-worker", worker_policy, partition, tags, child, f"{role_prefix}-worker")
        self.monitoring = HostRole(f"{name}-monitoring", monitoring_policy, partition, tags, child,
                                   f"{role_prefix}-monitoring")
        self.dashboard = HostRole(f"{name}-dashboard", dashboard_policy, partition, tags, child,
                                  f"{role_prefix}-dashboard")
        self.grafana = HostRole(f"{name}-grafana", grafana_policy, partition, tags, child, f"{role_prefix}-grafana")
        self.register_outputs({})
