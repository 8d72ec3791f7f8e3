"""Security groups of every role, with explicit ingress and egress rules (nothing implicit)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.tags import Tagger
from infra.userdata import (
    AUTOSCALER_METRICS_PORT,
    DASHBOARD_PORT,
    GRAFANA_PORT,
    OTLP_HTTP_PORT,
    WORKER_METRICS_PORT,
)

REDIS_PORT = 6379
HTTPS_PORT = 443
HTTP_PORT = 80
ROLES = ("worker", "monitoring", "dashboard", "grafana", "redis")
APP_ROLES = ("worker", "monitoring", "dashboard")


class Firewall(pulumi.ComponentResource):
    """One security group per role; rules are separate resources so groups may reference each other.

    Ingress: Redis 6379 only from the worker, monitoring and dashboard groups; worker/autoscaler metrics
    only from the Grafana host; OTLP only from the app hosts. The dashboard (8080) and Grafana (3000)
    admit nothing from outside by default (``exposure=ssm``: Session Manager port forwarding needs no
    inbound rule); with ``exposure=alb`` they admit the ALB only, and the ALB admits ``allowedCidrs`` on
    443/3000 (HTTPS) and 80 (redirect only). Egress: HTTPS (AWS APIs, S3) plus exactly the flows above.
    """

    groups: dict[str, aws.ec2.SecurityGroup]

    def __init__(
        self, name: str, cfg: InfraConfig, vpc_id: pulumi.Input[str], tags: Tagger,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:network:Firewall", name, None, opts)
        self._name = name
        self._tags = tags
        self._child = pulumi.ResourceOptions(parent=self)
        self.groups = {
            role: aws.ec2.SecurityGroup(
                f"{name}-{role}", vpc_id=vpc_id, description=f"jobfleet {cfg.stack} {role}",
                tags=tags(f"{role}-sg"), opts=self._child,
            )
            for role in ROLES + (("alb",) if cfg.exposure == "alb" else ())
        }
        for role in APP_ROLES:
            self._from_group("redis", role, REDIS_PORT, "Redis/Valkey from app hosts")
            self._to_group(role, "redis", REDIS_PORT, "Redis/Valkey")
            self._from_group("grafana", role, OTLP_HTTP_PORT, "OTLP traces and metrics")
            self._to_group(role, "grafana", OTLP_HTTP_PORT, "OTLP collector")
        self._from_group("worker", "grafana", WORKER_METRICS_PORT, "Prometheus scrape of worker metrics")
        self._to_group("grafana", "worker", WORKER_METRICS_PORT, "scrape worker metrics")
        self._from_group("monitoring", "grafana", AUTOSCALER_METRICS_PORT, "Prometheus scrape of the autoscaler")
        self._to_group("grafana", "monitoring", AUTOSCALER_METRICS_PORT, "scrape autoscaler metrics")
        for role in ("worker", "monitoring", "dashboard", "grafana"):
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-{role}-out-https", security_group_id=self.groups[role].id, ip_protocol="tcp",
                from_port=HTTPS_PORT, to_port=HTTPS_PORT, cidr_ipv4="0.0.0.0/0",
                description="HTTPS: AL2023 packages, AWS APIs (S3, SSM, EC2, CloudWatch)",
                tags=tags(f"{role}-out-https"), opts=self._child,
            )
        if cfg.exposure == "alb":
            self._public_edge(cfg)
        self.register_outputs({role: group.id for role, group in self.groups.items()})

    def _public_edge(self, cfg: InfraConfig) -> None:
        """The ALB admits ``allowedCidrs`` (HTTPS, and HTTP for the redirect); the hosts admit only the ALB."""
        for index, cidr in enumerate(cfg.allowed_cidrs):
            for port, what in ((HTTPS_PORT, "dashboard (HTTPS)"), (GRAFANA_PORT, "Grafana (HTTPS)"),
                               (HTTP_PORT, "HTTP, redirected to HTTPS")):
                aws.vpc.SecurityGroupIngressRule(
                    f"{self._name}-alb-in-{port}-{index}", security_group_id=self.groups["alb"].id,
                    ip_protocol="tcp", from_port=port, to_port=port, cidr_ipv4=cidr,
                    description=f"{what} from allowedCidrs", tags=self._tags(f"alb-in-{port}-{index}"),
                    opts=self._child,
                )
        for role, port in (("dashboard", DASHBOARD_PORT), ("grafana", GRAFANA_PORT)):
            self._from_group(role, "alb", port, f"{role} from the ALB")
            self._to_group("alb", role, port, f"forward to {role}")

    def _from_group(self, target: str, source: str, port: int, what: str) -> None:
        aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-{target}-in-{source}-{port}", security_group_id=self.groups[target].id,
            referenced_security_group_id=self.groups[source].id, ip_protocol="tcp", from_port=port, to_port=port,
            description=what, tags=self._tags(f"{target}-in-{source}-{port}"), opts=self._child,
        )

    def _to_group(self, source: str, target: str, port: int, what: str) -> None:
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-{source}-out-{target}-{port}", security_group_id=self.groups[source].id,
            referenced_security_group_id=self.groups[target].id, ip_protocol="tcp", from_port=port, to_port=port,
            description=what, tags=self._tags(f"{source}-out-{target}-{port}"), opts=self._child,
        )
