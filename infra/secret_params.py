"""Secrets: the stack's secret config values as SSM SecureStrings under a customer-managed KMS key.

Hosts get only the parameter *names* (in their environment) and read the values at service start with
their instance role, so no secret appears in user data, launch templates or Pulumi outputs. Values are
sent with the write-only ``value_wo`` argument, so they are not kept in the Pulumi state either (bump
``jobfleet:secretsVersion`` to send changed values).

The key's policy delegates to IAM (the account root only); each role's policy may decrypt with it only
for the encryption context ``PARAMETER_ARN`` of its own parameters (``infra.iam``), so the broad
``ssm:GetParameter*`` of ``AmazonSSMManagedInstanceCore`` does not reach anyone else's secret.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.tags import Tagger

#: Which host role reads which parameter: the single source of the per-role grants in ``infra.iam``.
READERS: dict[str, tuple[str, ...]] = {
    "redis-auth-token": ("worker", "monitoring", "dashboard"),
    "dashboard-token": ("dashboard",),
    "grafana-admin-password": ("grafana",),
}


def key_policy(partition: str, account: str) -> str:
    """The secrets key's policy: administration by the account (which delegates use to IAM policies)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AccountAdministersAndDelegatesToIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }],
    }, sort_keys=True)


class Secrets(pulumi.ComponentResource):
    """SecureString parameters ``/<project>/<stack>/{redis-auth-token,dashboard-token,grafana-admin-password}``."""

    key: aws.kms.Key
    redis_auth_token: aws.ssm.Parameter
    dashboard_token: aws.ssm.Parameter
    grafana_admin_password: aws.ssm.Parameter

    def __init__(
        self, name: str, cfg: InfraConfig, tags: Tagger, *, partition: str, account: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:security:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = f"/{cfg.project}/{cfg.stack}"
        self.key = aws.kms.Key(
            f"{name}-key", description=f"jobfleet {cfg.stack}: SSM parameters of the stack",
            enable_key_rotation=True, deletion_window_in_days=30, policy=key_policy(partition, account),
            tags=tags("secrets-key"), opts=child,
        )
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{cfg.project}-{cfg.stack}-secrets",
                      target_key_id=self.key.id, opts=child)

        def parameter(key: str, value: pulumi.Output[str], what: str) -> aws.ssm.Parameter:
            return aws.ssm.Parameter(
                f"{name}-{key}", name=f"{prefix}/{key}", type="SecureString", key_id=self.key.arn,
                value_wo=value, value_wo_version=cfg.secrets_version,
                description=f"jobfleet {cfg.stack}: {what}", tags=tags(key), opts=child,
            )

        self.redis_auth_token = parameter("redis-auth-token", cfg.redis_auth_token, "Redis/Valkey AUTH token")
        self.dashboard_token = parameter("dashboard-token", cfg.dashboard_token, "dashboard bearer token")
        self.grafana_admin_password = parameter(
            "grafana-admin-password", cfg.grafana_admin_password, "Grafana admin password"
        )
        self.register_outputs({"redis_auth_token_parameter": self.redis_auth_token.name})
