"""Grafana host: Grafana, Prometheus (EC2 discovery by tag) and the OTel collector, provisioned from observability/."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.host import host_instance
from infra.tags import Tagger
from infra.userdata import GRAFANA_PORT


class GrafanaHost(pulumi.ComponentResource):
    """One instance; Grafana on 3000 from the ALB only (or from nowhere), OTLP 4318 from the app hosts."""

    instance: aws.ec2.Instance
    url: pulumi.Output[str]
    private_ip: pulumi.Output[str]

    def __init__(
        self, name: str, cfg: InfraConfig, *, subnet_id: pulumi.Input[str], security_group_id: pulumi.Input[str],
        profile_name: pulumi.Input[str], user_data: pulumi.Input[str], tags: Tagger,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:compute:GrafanaHost", name, None, opts)
        self.instance = host_instance(
            f"{name}-instance", role="grafana", cfg=cfg, instance_type=cfg.grafana_instance_type,
            subnet_id=subnet_id, security_group_id=security_group_id, profile_name=profile_name,
            user_data=user_data, tags=tags, parent=self,
        )
        self.private_ip = self.instance.private_ip
        self.url = pulumi.Output.concat("http://", self.instance.public_dns, f":{GRAFANA_PORT}/")
        self.register_outputs({"url": self.url})
