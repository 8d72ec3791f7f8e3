"""Monitoring host: runs the autoscaler daemon (``python -m autoscaler --backend aws``) under systemd."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.host import host_instance
from infra.tags import Tagger


class MonitoringHost(pulumi.ComponentResource):
    """One small instance; its role may only resize/protect/terminate within the worker ASG."""

    instance: aws.ec2.Instance

    def __init__(
        self, name: str, cfg: InfraConfig, *, subnet_id: pulumi.Input[str], security_group_id: pulumi.Input[str],
        profile_name: pulumi.Input[str], user_data: pulumi.Input[str], tags: Tagger,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:compute:MonitoringHost", name, None, opts)
        self.instance = host_instance(
            f"{name}-instance", role="monitoring", role_tag="autoscaler", cfg=cfg,
            instance_type=cfg.monitoring_instance_type, subnet_id=subnet_id, security_group_id=security_group_id,
            profile_name=profile_name, user_data=user_data, tags=tags, parent=self,
        )
        self.register_outputs({"instance_id": self.instance.id})
