"""jobfleet on AWS: wires the components together and exports what operators need.

Run by the Pulumi CLI (``Pulumi.yaml`` has ``main: infra/``) or by the mocks-based tests in tests/infra.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the CLI runs this file from infra/

import pulumi
import pulumi_aws as aws

from infra.artifacts import Artifacts
from infra.bundle import build_app_bundle, build_observability_bundle
from infra.cache import Redis
from infra.config import instance_architecture, load_config
from infra.dashboard_host import DashboardHost
from infra.edge import PublicEdge, tunnel_command
from infra.firewall import Firewall
from infra.fleet import DRAIN_HOOK, LAUNCH_HOOK, WorkerFleet, asg_name
from infra.grafana_host import GrafanaHost
from infra.iam import Iam, asg_arn
from infra.logs import ROLE_LOGS, LogGroups, agent_config, log_group_arn, log_group_name
from infra.monitoring_host import MonitoringHost
from infra.network import Network
from infra.releases import KEY_PREFIX, fetch_archives
from infra.secret_params import READERS, Secrets
from infra.tags import Tagger
from infra.userdata import (
    DASHBOARD_PORT,
    GRAFANA_PORT,
    Release,
    app_env,
    dashboard_user_data,
    grafana_user_data,
    monitoring_user_data,
    worker_user_data,
)
from infra.warm_pool import warm_pool_enabled

cfg = load_config()
tags = Tagger(cfg)
account = aws.get_caller_identity().account_id
partition = aws.get_partition().partition
fleet_name = asg_name(cfg)

app_bundle = build_app_bundle(architectures=tuple(sorted({
    cfg.architecture, instance_architecture(cfg.monitoring_instance_type),
    instance_architecture(cfg.dashboard_instance_type),
})))
observability_bundle = build_observability_bundle()
# Grafana, Prometheus, Tempo and the collector for the Grafana host's CPU, each checked against
# infra/releases.lock.json (or the vendor's checksum file, then recorded there): no registry at boot.
vendor_archives = fetch_archives(cfg.observability_versions, instance_architecture(cfg.grafana_instance_type),
                                 mirror=cfg.release_mirror)

network = Network("network", cfg, tags)
firewall = Firewall("firewall", cfg, network.vpc_id, tags)
secrets = Secrets("secrets", cfg, tags, partition=partition, account=account)
artifacts = Artifacts("artifacts", app_bundle, observability_bundle, tags, vendor=vendor_archives)
iam = Iam(
    "iam",
    tags=tags,
    partition=partition,
    asg_arn=asg_arn(partition, cfg.region, account, fleet_name),
    bucket_arn=artifacts.bucket.arn,
    app_key=app_bundle.key,
    observability_key=observability_bundle.key,
    vendor_prefix=KEY_PREFIX,
    parameter_arns={
        "redis-auth-token": secrets.redis_auth_token.arn,
        "dashboard-token": secrets.dashboard_token.arn,
        "grafana-admin-password": secrets.grafana_admin_password.arn,
    },
    key_arn=secrets.key.arn,
    readers=READERS,
    role_prefix=f"{cfg.project}-{cfg.stack}",
    log_arns={role: [log_group_arn(partition, cfg.region, account, log_group_name(cfg, s)) for s in services]
              for role, services in ROLE_LOGS.items()},
)
redis = Redis("redis", cfg, network.app_subnet_ids, firewall.groups["redis"].id, tags)

log_groups = LogGroups("logs", cfg, tags)

grafana = GrafanaHost(
    "grafana", cfg, subnet_id=network.app_subnet_ids[0], security_group_id=firewall.groups["grafana"].id,
    profile_name=iam.grafana.profile.name, tags=tags,
    # the vendor objects' keys are awaited (not used: they equal archive.key) so the host boots after the uploads
    user_data=pulumi.Output.all(
        artifacts.bucket.id, artifacts.objects["observability"].key, secrets.grafana_admin_password.name,
        *[artifacts.objects[f"vendor:{archive.component}"].key for archive in vendor_archives],
    ).apply(lambda a: grafana_user_data(
        Release(a[0], a[1], cfg.region), stack=cfg.stack, password_parameter=a[2], archives=vendor_archives,
        log_config=agent_config(cfg, "grafana"),
        grafana_listen="0.0.0.0" if cfg.exposure == "alb" else "127.0.0.1",
    )),
)


def _env(service: str, redis_host: str, redis_parameter: str, otlp_host: str) -> dict[str, str]:
    return app_env(
        region=cfg.region, redis_host=redis_host, redis_port=redis.port, redis_parameter=redis_parameter,
        queues=cfg.queues, job_timeout=cfg.job_timeout, shutdown_deadline=cfg.shutdown_deadline,
        slots_per_instance=cfg.slots_per_instance, min_instances=cfg.min_instances, max_instances=cfg.max_instances,
        otlp_host=otlp_host, service=service, stack=cfg.stack,
    )


# bucket, release key (from the uploaded object, so hosts start after the upload), Redis, token name, OTLP host
app_inputs = pulumi.Output.all(
    artifacts.bucket.id, artifacts.objects["app"].key, redis.endpoint, secrets.redis_auth_token.name,
    grafana.private_ip,
)

workers = WorkerFleet(
    "workers", cfg, subnet_ids=network.app_subnet_ids, security_group_id=firewall.groups["worker"].id,
    profile_arn=iam.worker.profile.arn, tags=tags,
    user_data=app_inputs.apply(lambda a: worker_user_data(
        Release(a[0], a[1], cfg.region), _env("worker", a[2], a[3], a[4]), slots=cfg.slots_per_instance,
        stop_timeout=cfg.stop_timeout, asg_name=fleet_name, hook_name=DRAIN_HOOK, launch_hook=LAUNCH_HOOK,
        warm_pool=warm_pool_enabled(cfg),
        self_check_seconds=max(60, cfg.boot_deadline - int(cfg.boot_time)), log_config=agent_config(cfg, "worker"),
    )),
)
monitoring = MonitoringHost(
    "monitoring", cfg, subnet_id=network.app_subnet_ids[0], security_group_id=firewall.groups["monitoring"].id,
    profile_name=iam.monitoring.profile.name, tags=tags,
    user_data=app_inputs.apply(lambda a: monitoring_user_data(
        Release(a[0], a[1], cfg.region), _env("autoscaler", a[2], a[3], a[4]), asg_name=fleet_name,
        target_wait=cfg.target_wait, boot_time=cfg.boot_time, warm_pool_max=cfg.warm_pool_max,
        log_config=agent_config(cfg, "monitoring"), boot_deadline=cfg.boot_deadline,
    )),
    opts=pulumi.ResourceOptions(depends_on=[workers]),
)
dashboard = DashboardHost(
    "dashboard", cfg, subnet_id=network.app_subnet_ids[0], security_group_id=firewall.groups["dashboard"].id,
    profile_name=iam.dashboard.profile.name, tags=tags,
    user_data=pulumi.Output.all(app_inputs, secrets.dashboard_token.name).apply(lambda b: dashboard_user_data(
        Release(b[0][0], b[0][1], cfg.region), _env("dashboard", b[0][2], b[0][3], b[0][4]), token_parameter=b[1],
        allowed_hosts=("localhost", "127.0.0.1", *((cfg.public_domain,) if cfg.exposure == "alb" else ())),
        log_config=agent_config(cfg, "dashboard"), listen="0.0.0.0" if cfg.exposure == "alb" else "127.0.0.1",
    )),
)

if cfg.exposure == "alb":
    edge = PublicEdge(
        "edge", cfg, vpc_id=network.vpc_id, subnet_ids=network.public_subnet_ids,
        security_group_id=firewall.groups["alb"].id, dashboard_instance_id=dashboard.instance.id,
        grafana_instance_id=grafana.instance.id, tags=tags,
    )
    pulumi.export("dashboardUrl", edge.dashboard_url)
    pulumi.export("grafanaUrl", edge.grafana_url)
    pulumi.export("albDnsName", edge.load_balancer.dns_name)
else:  # no public ingress: forward a local port through Session Manager, then open localhost
    pulumi.export("dashboardUrl", f"http://localhost:{DASHBOARD_PORT}/")
    pulumi.export("grafanaUrl", f"http://localhost:{GRAFANA_PORT}/")
    pulumi.export("dashboardTunnel", dashboard.instance.id.apply(lambda i: tunnel_command(i, cfg.region,
                                                                                           DASHBOARD_PORT)))
    pulumi.export("grafanaTunnel", grafana.instance.id.apply(lambda i: tunnel_command(i, cfg.region, GRAFANA_PORT)))
pulumi.export("redisEndpoint", redis.endpoint)
pulumi.export("redisPort", redis.port)
pulumi.export("redisUrl", pulumi.Output.concat("rediss://", redis.endpoint, f":{redis.port}/0"))
pulumi.export("redisAuthTokenParameter", secrets.redis_auth_token.name)
pulumi.export("asgName", workers.group.name)
pulumi.export("launchTemplateId", workers.launch_template.id)
pulumi.export("launchTemplateVersion", workers.launch_template.latest_version)
pulumi.export("releaseKey", app_bundle.key)
pulumi.export("artifactBucket", artifacts.bucket.id)
pulumi.export("monitoringInstanceId", monitoring.instance.id)
pulumi.export("dashboardTokenParameter", secrets.dashboard_token.name)
pulumi.export("grafanaAdminUser", "admin")
pulumi.export("grafanaAdminPasswordParameter", secrets.grafana_admin_password.name)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("availabilityZones", network.zones)
