"""Optional public edge (``jobfleet:exposure=alb``): an internet-facing ALB, HTTPS only.

- 443 (dashboard) and 3000 (Grafana) are HTTPS listeners with the ACM certificate of ``publicDomain``
  and a TLS 1.2+/1.3 policy; plain HTTP on 80 only answers with a redirect to HTTPS.
- The ALB's security group admits ``allowedCidrs`` only; the hosts admit the ALB only.
- The ALB drops invalid header fields; targets are health-checked on ``/healthz`` and ``/api/health``.

Without it (the default, ``ssm``) nothing is reachable from the internet: operators forward a local port
through Session Manager (see :func:`tunnel_command`).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.tags import Tagger
from infra.userdata import DASHBOARD_PORT, GRAFANA_PORT

HTTPS_PORT = 443
HTTP_PORT = 80
GRAFANA_PUBLIC_PORT = GRAFANA_PORT
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def tunnel_command(instance_id: str, region: str, port: int) -> str:
    """The one command that forwards ``localhost:<port>`` to ``port`` on the host, through Session Manager."""
    return (f"aws ssm start-session --region {region} --target {instance_id} "
            f"--document-name AWS-StartPortForwardingSession "
            f"--parameters '{{\"portNumber\":[\"{port}\"],\"localPortNumber\":[\"{port}\"]}}'")


class PublicEdge(pulumi.ComponentResource):
    """The ALB, its target groups and listeners in front of the dashboard and Grafana hosts."""

    load_balancer: aws.lb.LoadBalancer
    dashboard_url: str
    grafana_url: str

    def __init__(
        self, name: str, cfg: InfraConfig, *, vpc_id: pulumi.Input[str], subnet_ids: list[pulumi.Output[str]],
        security_group_id: pulumi.Input[str], dashboard_instance_id: pulumi.Input[str],
        grafana_instance_id: pulumi.Input[str], tags: Tagger, opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:network:PublicEdge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb", internal=False, load_balancer_type="application", security_groups=[security_group_id],
            subnets=subnet_ids, drop_invalid_header_fields=True, idle_timeout=60, tags=tags("alb"), opts=child,
        )
        targets = {
            "dashboard": (DASHBOARD_PORT, "/healthz", dashboard_instance_id, HTTPS_PORT),
            "grafana": (GRAFANA_PORT, "/api/health", grafana_instance_id, GRAFANA_PUBLIC_PORT),
        }
        for role, (port, health, instance_id, public_port) in targets.items():
            group = aws.lb.TargetGroup(
                f"{name}-{role}-tg", port=port, protocol="HTTP", vpc_id=vpc_id, target_type="instance",
                health_check=aws.lb.TargetGroupHealthCheckArgs(path=health, matcher="200", interval=15),
                tags=tags(f"{role}-tg"), opts=child,
            )
            aws.lb.TargetGroupAttachment(f"{name}-{role}-target", target_group_arn=group.arn, target_id=instance_id,
                                         port=port, opts=child)
            aws.lb.Listener(
                f"{name}-{role}-https", load_balancer_arn=self.load_balancer.arn, port=public_port, protocol="HTTPS",
                ssl_policy=TLS_POLICY, certificate_arn=cfg.certificate_arn,
                default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=group.arn)],
                tags=tags(f"{role}-https"), opts=child,
            )
        aws.lb.Listener(
            f"{name}-http-redirect", load_balancer_arn=self.load_balancer.arn, port=HTTP_PORT, protocol="HTTP",
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="redirect", redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301"),
            )],
            tags=tags("http-redirect"), opts=child,
        )
        self.dashboard_url = f"https://{cfg.public_domain}/"
        self.grafana_url = f"https://{cfg.public_domain}:{GRAFANA_PUBLIC_PORT}/"
        self.register_outputs({"dns_name": self.load_balancer.dns_name})
