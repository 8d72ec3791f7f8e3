"""Logs off the hosts: a CloudWatch log group per service with a retention, shipped by the CloudWatch agent.

Services append their (JSON) output to ``/var/log/jobfleet/<service>.log``; the agent (``amazon-cloudwatch-agent``
from the AL2023 repositories) ships those files and the bootstrap log, one stream per instance, so logs
outlive terminated instances for ``jobfleet:logRetentionDays``.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.tags import Tagger

SERVICES = ("worker", "autoscaler", "dashboard", "bootstrap")
#: Which log groups each host role writes to.
ROLE_LOGS: dict[str, tuple[str, ...]] = {
    "worker": ("worker", "bootstrap"),
    "monitoring": ("autoscaler", "bootstrap"),
    "dashboard": ("dashboard", "bootstrap"),
    "grafana": ("bootstrap",),
}
LOG_DIR = "/var/log/jobfleet"
BOOTSTRAP_LOG = "/var/log/jobfleet-bootstrap.log"


def log_group_name(cfg: InfraConfig, service: str) -> str:
    """``/<project>/<stack>/<service>``."""
    return f"/{cfg.project}/{cfg.stack}/{service}"


def log_group_arn(partition: str, region: str, account: str, name: str) -> str:
    """ARN of a log group (with ``:*`` so it covers its streams, as the Logs actions need)."""
    return f"arn:{partition}:logs:{region}:{account}:log-group:{name}:*"


def agent_config(cfg: InfraConfig, role: str) -> str:
    """The CloudWatch agent's configuration for a host role: its service log and the bootstrap log."""
    files = []
    for service in ROLE_LOGS[role]:
        path = BOOTSTRAP_LOG if service == "bootstrap" else f"{LOG_DIR}/{service}.log"
        files.append({"file_path": path, "log_group_name": log_group_name(cfg, service),
                      "log_stream_name": "{instance_id}", "retention_in_days": -1})
    return json.dumps({"agent": {"run_as_user": "root"},
                       "logs": {"logs_collected": {"files": {"collect_list": files}}}}, sort_keys=True)


class LogGroups(pulumi.ComponentResource):
    """One log group per service, kept ``logRetentionDays``."""

    groups: dict[str, aws.cloudwatch.LogGroup]

    def __init__(self, name: str, cfg: InfraConfig, tags: Tagger, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jobfleet:observability:LogGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.groups = {
            service: aws.cloudwatch.LogGroup(
                f"{name}-{service}", name=log_group_name(cfg, service), retention_in_days=cfg.log_retention_days,
                tags=tags(f"logs-{service}"), opts=child,
            )
            for service in SERVICES
        }
        self.register_outputs({})
