"""Secrets: the stack's secret config values stored as SSM Parameter Store SecureStrings.

Hosts get only the parameter *names* (in their environment) and read the values at service start with
their instance role, so no secret ever appears in user data, launch templates or Pulumi outputs.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.tags import Tagger


class Secrets(pulumi.ComponentResource):
    """SecureString parameters ``/<project>/<stack>/{redis-auth-token,dashboard-token,grafana-admin-password}``."""

    redis_auth_token: aws.ssm.Parameter
    dashboard_token: aws.ssm.Parameter
    grafana_admin_password: aws.ssm.Parameter

    def __init__(self, name: str, cfg: InfraConfig, tags: Tagger, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jobfleet:security:Secrets", name, None, opts)
        prefix = f"/{cfg.project}/{cfg.stack}"

        def parameter(key: str, value: pulumi.Output[str], what: str) -> aws.ssm.Parameter:
            return aws.ssm.Parameter(
                f"{name}-{key}", name=f"{prefix}/{key}", type="SecureString", value=value,
                description=f"jobfleet {cfg.stack}: {what}", tags=tags(key),
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["value"]),
            )

        self.redis_auth_token = parameter("redis-auth-token", cfg.redis_auth_token, "Redis/Valkey AUTH token")
        self.dashboard_token = parameter("dashboard-token", cfg.dashboard_token, "dashboard bearer token")
        self.grafana_admin_password = parameter(
            "grafana-admin-password", cfg.grafana_admin_password, "Grafana admin password"
        )
        self.register_outputs({"redis_auth_token_parameter": self.redis_auth_token.name})
