"""Dashboard host: runs ``python -m dashboard`` on port 8080; no public ingress (SSM tunnel or the ALB only)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.host import host_instance
from infra.tags import Tagger
from infra.userdata import DASHBOARD_PORT


class DashboardHost(pulumi.ComponentResource):
    """One instance; its security group admits 8080 from the ALB only (``exposure=alb``) or from nowhere."""

    instance: aws.ec2.Instance
    url: pulumi.Output[str]

    def __init__(
        self, name: str, cfg: InfraConfig, *, subnet_id: pulumi.Input[str], security_group_id: pulumi.Input[str],
        profile_name: pulumi.Input[str], user_data: pulumi.Input[str], tags: Tagger,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:compute:DashboardHost", name, None, opts)
        self.instance = host_instance(
            f"{name}-instance", role="dashboard", cfg=cfg, instance_type=cfg.dashboard_instance_type,
            subnet_id=subnet_id, security_group_id=security_group_id, profile_name=profile_name,
            user_data=user_data, tags=tags, parent=self,
        )
        self.url = pulumi.Output.concat("http://", self.instance.public_dns, f":{DASHBOARD_PORT}/")
        self.register_outputs({"url": self.url})
