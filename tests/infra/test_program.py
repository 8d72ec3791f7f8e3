"""The real program (infra/__main__.py) under Pulumi mocks: what it registers, with which inputs."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest

from tests.infra.harness import (
    ACCOUNT,
    AMI,
    REGION,
    ROOT,
    TEST_SECRETS,
    Program,
    RecordingMocks,
    dev_config,
    run_program,
    secret_value,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"


def _sg_name(program: Program, sg_id: str) -> str:
    return next(r.name for r in program.of_type(SG) if r.id == sg_id)


def _user_data(program: Program, role: str) -> str:
    if role == "worker":
        return base64.b64decode(program.one(LT).inputs["userData"]).decode()
    return str(program.one(INSTANCE, role).inputs["userData"])


def test_one_component_per_concern(dev: Program) -> None:
    kinds = Counter(r.typ for r in dev.resources if r.typ.startswith("jobfleet:"))
    for kind in (
        "jobfleet:network:Network", "jobfleet:network:Firewall", "jobfleet:data:Redis",
        "jobfleet:compute:WorkerFleet", "jobfleet:compute:MonitoringHost", "jobfleet:compute:DashboardHost",
        "jobfleet:compute:GrafanaHost", "jobfleet:iam:Iam", "jobfleet:security:Secrets", "jobfleet:storage:Artifacts",
    ):
        assert kinds[kind] == 1, kind
    names = [(r.typ, r.name) for r in dev.resources]
    assert len(names) == len(set(names)), "two resources share a logical name (URN clash)"


def test_vpc_spans_three_zones_from_the_data_source(dev: Program) -> None:
    assert any(token == "aws:index/getAvailabilityZones:getAvailabilityZones" for token, _ in dev.calls)
    subnets = dev.of_type("aws:ec2/subnet:Subnet")
    # the mocked region has four zones; the program takes three, never hard-coded names
    assert sorted(s.inputs["availabilityZone"] for s in subnets) == [f"{REGION}{z}" for z in "abc"]
    assert all(s.inputs["mapPublicIpOnLaunch"] for s in subnets)
    assert dev.of_type("aws:ec2/natGateway:NatGateway") == []
    assert dev.outputs["availabilityZones"] == [f"{REGION}{z}" for z in "abc"]


def test_nat_option_adds_private_subnets_for_hosts_without_inbound_traffic() -> None:
    program = run_program(dev_config(natGateway=True))
    assert len(program.of_type("aws:ec2/natGateway:NatGateway")) == 1
    private = [s for s in program.of_type("aws:ec2/subnet:Subnet") if not s.inputs["mapPublicIpOnLaunch"]]
    assert len(private) == 3
    private_ids = {s.id for s in private}
    assert set(program.one(ASG).inputs["vpcZoneIdentifiers"]) == private_ids
    assert program.one(INSTANCE, "monitoring").inputs["subnetId"] in private_ids
    assert program.one(INSTANCE, "dashboard").inputs["subnetId"] in private_ids  # no inbound internet traffic
    assert program.one(INSTANCE, "grafana").inputs["subnetId"] in private_ids
    subnet_group = program.one("aws:elasticache/subnetGroup:SubnetGroup")
    assert set(subnet_group.inputs["subnetIds"]) == private_ids


def test_security_groups_have_explicit_egress_and_redis_admits_only_app_groups(dev: Program) -> None:
    redis_sg = dev.one(SG, "redis").id
    sources = sorted(
        _sg_name(dev, r.inputs["referencedSecurityGroupId"])
        for r in dev.of_type(INGRESS) if r.inputs["securityGroupId"] == redis_sg
    )
    assert sources == ["firewall-dashboard", "firewall-monitoring", "firewall-worker"]
    assert all(
        r.inputs["fromPort"] == r.inputs["toPort"] == 6379 for r in dev.of_type(INGRESS)
        if r.inputs["securityGroupId"] == redis_sg
    )
    assert dev.one(REDIS).inputs["securityGroupIds"] == [redis_sg]
    for role in ("worker", "monitoring", "dashboard", "grafana"):
        group = dev.one(SG, f"firewall-{role}").id
        egress = [r for r in dev.of_type(EGRESS) if r.inputs["securityGroupId"] == group]
        assert egress, f"{role} has no explicit egress rule"
        assert all(r.inputs["ipProtocol"] == "tcp" and r.inputs["fromPort"] == r.inputs["toPort"] for r in egress)
    assert all("egress" not in r.inputs and "ingress" not in r.inputs for r in dev.of_type(SG))


ALB_CONFIG = {
    "exposure": "alb", "publicDomain": "jobs.example.com",
    "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0123abcd-0123-4567-89ab-0123456789ab",
}
LISTENER = "aws:lb/listener:Listener"


def test_by_default_nothing_is_reachable_from_outside_the_vpc(dev: Program) -> None:
    assert [r.inputs for r in dev.of_type(INGRESS) if r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6")] == []
    assert dev.of_type("aws:lb/loadBalancer:LoadBalancer") == []
    tunnel = dev.outputs["dashboardTunnel"]
    assert tunnel == ("aws ssm start-session --region eu-west-1 --target dashboard-instance-id --document-name "
                      "AWS-StartPortForwardingSession --parameters '{\"portNumber\":[\"8080\"],"
                      "\"localPortNumber\":[\"8080\"]}'")
    assert "--target grafana-instance-id" in dev.outputs["grafanaTunnel"]
    assert dev.outputs["dashboardUrl"] == "http://localhost:8080/"
    env = _user_data(dev, "dashboard")
    assert "JOBFLEET_DASHBOARD_ALLOWED_HOSTS=localhost,127.0.0.1" in env
    assert "JOBFLEET_DASHBOARD_HOST=127.0.0.1" in env  # loopback: the tunnel is the only way in
    assert "GF_SERVER_HTTP_ADDR=127.0.0.1" in _user_data(dev, "grafana")


def test_public_mode_is_an_https_only_alb_admitting_the_configured_cidrs() -> None:
    program = run_program(dev_config(**ALB_CONFIG, allowedCidrs=["198.51.100.0/24", "192.0.2.1/32"]))
    world = [r.inputs for r in program.of_type(INGRESS) if r.inputs.get("cidrIpv4")]
    assert {(r["cidrIpv4"], r["fromPort"], _sg_name(program, r["securityGroupId"])) for r in world} == {
        (cidr, port, "firewall-alb") for cidr in ("198.51.100.0/24", "192.0.2.1/32") for port in (443, 3000, 80)
    }
    for role, port in (("dashboard", 8080), ("grafana", 3000)):
        group = program.one(SG, f"firewall-{role}").id
        sources = {_sg_name(program, r.inputs["referencedSecurityGroupId"]) for r in program.of_type(INGRESS)
                   if r.inputs["securityGroupId"] == group and r.inputs["fromPort"] == port}
        assert sources == {"firewall-alb"}, role
    listeners = {r.inputs["port"]: r.inputs for r in program.of_type(LISTENER)}
    assert set(listeners) == {443, 3000, 80}
    for port in (443, 3000):
        assert listeners[port]["protocol"] == "HTTPS" and listeners[port]["certificateArn"] == ALB_CONFIG[
            "certificateArn"]
        assert listeners[port]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    redirect = listeners[80]["defaultActions"][0]
    assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"
    alb = program.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is False and alb["dropInvalidHeaderFields"] is True and len(alb["subnets"]) == 3
    assert program.outputs["dashboardUrl"] == "https://jobs.example.com/"
    assert program.outputs["grafanaUrl"] == "https://jobs.example.com:3000/"
    assert "JOBFLEET_DASHBOARD_ALLOWED_HOSTS=localhost,127.0.0.1,jobs.example.com" in _user_data(program, "dashboard")
    assert "JOBFLEET_DASHBOARD_HOST=0.0.0.0" in _user_data(program, "dashboard")  # the ALB reaches it
    assert "GF_SERVER_HTTP_ADDR=0.0.0.0" in _user_data(program, "grafana")


def test_redis_is_valkey_with_tls_auth_encryption_and_failover(dev: Program) -> None:
    group = dev.one(REDIS).inputs
    assert group["engine"] == "valkey" and group["engineVersion"] == "8.0"
    assert group["parameterGroupName"] == "default.valkey8"
    assert group["transitEncryptionEnabled"] is True and group["transitEncryptionMode"] == "required"
    assert group["atRestEncryptionEnabled"] is True
    assert "authToken" not in group  # write-only: the token never lands in the Pulumi state
    assert secret_value(group["authTokenWo"]) == TEST_SECRETS["jobfleet:redisAuthToken"]
    assert group["authTokenWoVersion"] == 1
    assert group["numCacheClusters"] == 2
    assert group["automaticFailoverEnabled"] is True and group["multiAzEnabled"] is True
    assert dev.outputs["redisUrl"].startswith("rediss://master.") and dev.outputs["redisPort"] == 6379


def test_redis_engine_selectable_and_single_node_has_no_failover() -> None:
    program = run_program(dev_config(redisEngine="redis", redisEngineVersion=None, redisNodes=1))
    group = program.one(REDIS).inputs
    assert group["engine"] == "redis" and group["engineVersion"] == "7.1"
    assert group["parameterGroupName"] == "default.redis7"
    assert group["automaticFailoverEnabled"] is False and group["multiAzEnabled"] is False


def test_launch_template_hardening(dev: Program) -> None:
    lt = dev.one(LT).inputs
    assert lt["imageId"] == AMI
    ami_calls = [args["name"] for token, args in dev.calls if token == "aws:ssm/getParameter:getParameter"]
    assert "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64" in ami_calls
    assert lt["metadataOptions"]["httpTokens"] == "required"
    assert "keyName" not in lt
    assert lt["iamInstanceProfile"]["arn"].startswith(f"arn:aws:iam::{ACCOUNT}:instanceprofile/iam-worker")
    assert lt["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    assert lt["instanceType"] == "t3.small"
    for instance in dev.of_type(INSTANCE):
        assert instance.inputs["ami"] == AMI
        assert "keyName" not in instance.inputs
        assert instance.inputs["metadataOptions"]["httpTokens"] == "required"
        assert instance.inputs["userDataReplaceOnChange"] is True


def test_graviton_types_use_the_arm64_ami_parameter() -> None:
    program = run_program(dev_config(workerInstanceTypes=["t4g.small", "m7g.medium"]))
    names = [args["name"] for token, args in program.calls if token == "aws:ssm/getParameter:getParameter"]
    assert "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64" in names


def test_asg_sizes_protection_hook_and_refresh(dev: Program) -> None:
    asg = dev.one(ASG).inputs
    assert asg["name"] == "jobfleet-dev-workers" == dev.outputs["asgName"]
    assert (asg["minSize"], asg["maxSize"], asg["desiredCapacity"]) == (1, 10, 1)
    assert asg["protectFromScaleIn"] is True
    assert "initialLifecycleHooks" not in asg  # those apply only when the group is created
    hook = dev.one(HOOK, "drain").inputs
    assert hook["autoscalingGroupName"] == "jobfleet-dev-workers" and hook["name"] == "jobfleet-drain"
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["defaultResult"] == "CONTINUE"
    assert hook["heartbeatTimeout"] >= 180 + 60  # holds the instance longer than a job may run
    launch = dev.one(HOOK, "launch").inputs
    assert launch["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert (launch["defaultResult"], launch["heartbeatTimeout"]) == ("ABANDON", 900)
    assert asg["instanceRefresh"]["strategy"] == "Rolling"
    assert asg["instanceRefresh"]["preferences"]["scaleInProtectedInstances"] == "Refresh"
    assert asg["launchTemplate"]["version"] == "3"  # latest_version, not $Latest: refreshes on change
    assert "mixedInstancesPolicy" not in asg and asg["capacityRebalance"] is False
    assert len(asg["vpcZoneIdentifiers"]) == 3


def test_asg_desired_capacity_is_left_to_the_autoscaler() -> None:
    import pulumi

    seen: list[pulumi.ResourceOptions] = []
    original = pulumi.CustomResource.__init__

    def spy(self: Any, t: str, name: str, props: Any = None, opts: Any = None, *args: Any, **kwargs: Any) -> None:
        if t == "aws:autoscaling/group:Group" and opts is not None:
            seen.append(opts)
        original(self, t, name, props, opts, *args, **kwargs)

    pulumi.CustomResource.__init__ = spy  # type: ignore[method-assign]
    try:
        run_program(dev_config())
    finally:
        pulumi.CustomResource.__init__ = original  # type: ignore[method-assign]
    assert len(seen) == 1 and seen[0].ignore_changes == ["desiredCapacity"]


def test_spot_uses_mixed_instances_with_capacity_rebalancing() -> None:
    program = run_program(dev_config(useSpot=True, workerInstanceTypes=["t3.small", "t3a.small"], onDemandBase=1))
    asg = program.one(ASG).inputs
    assert "launchTemplate" not in asg
    policy = asg["mixedInstancesPolicy"]
    assert policy["instancesDistribution"]["onDemandBaseCapacity"] == 1
    assert policy["instancesDistribution"]["spotAllocationStrategy"] == "price-capacity-optimized"
    assert [o["instanceType"] for o in policy["launchTemplate"]["overrides"]] == ["t3.small", "t3a.small"]
    assert asg["capacityRebalance"] is True


def test_code_reaches_hosts_as_an_s3_bundle_named_by_its_hash(dev: Program) -> None:
    objects = {r.name: r.inputs for r in dev.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    app = objects["artifacts-app-bundle"]
    assert app["key"] == dev.outputs["releaseKey"]
    assert app["key"].startswith("releases/jobfleet-") and app["key"].endswith(".tar.gz")
    assert app["source"].path.endswith(app["key"].split("/")[-1])
    for role in ("worker", "monitoring", "dashboard"):
        text = _user_data(dev, role)
        assert f"readonly ARTIFACT_KEY={app['key']}" in text
        assert "readonly ARTIFACT_BUCKET=artifacts-bucket-abc123" in text
    assert objects["artifacts-observability-bundle"]["key"] in _user_data(dev, "grafana")


def test_secrets_are_secure_strings_and_stay_secret(dev: Program) -> None:
    params = {r.inputs["name"]: r.inputs for r in dev.of_type("aws:ssm/parameter:Parameter")}
    assert set(params) == {
        "/jobfleet/dev/redis-auth-token", "/jobfleet/dev/dashboard-token", "/jobfleet/dev/grafana-admin-password",
    }
    assert all(p["type"] == "SecureString" for p in params.values())
    key = dev.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert all(p["keyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:secrets-key" for p in params.values())  # not aws/ssm
    assert key.name == "secrets-key"
    assert all("value" not in p and p["valueWoVersion"] == 1 for p in params.values())  # write-only
    dashboard_token = params["/jobfleet/dev/dashboard-token"]["valueWo"]
    assert secret_value(dashboard_token) == TEST_SECRETS["jobfleet:dashboardToken"]
    assert all(secret_value(p["valueWo"]) for p in params.values())
    assert dev.secret_outputs == set()
    assert dev.outputs["grafanaAdminPasswordParameter"] == "/jobfleet/dev/grafana-admin-password"
    for key, value in dev.outputs.items():
        if key not in dev.secret_outputs:
            assert not any(secret in json.dumps(value) for secret in TEST_SECRETS.values()), key


def test_config_secrets_are_secret_outputs() -> None:
    import pulumi
    from pulumi.runtime.sync_await import _sync_await

    from infra.config import load_config

    pulumi.runtime.set_mocks(RecordingMocks(), project="jobfleet", stack="dev")
    pulumi.runtime.set_all_config(dev_config())
    cfg = load_config()
    for value in (cfg.redis_auth_token, cfg.dashboard_token, cfg.grafana_admin_password):
        assert _sync_await(value.is_secret()) is True


def test_monitoring_role_controls_only_the_worker_asg(dev: Program) -> None:
    policies = {r.name: json.loads(r.inputs["policy"]) for r in dev.of_type("aws:iam/rolePolicy:RolePolicy")}
    statements = {s["Sid"]: s for s in policies["iam-monitoring-policy"]["Statement"]}
    control = statements["ControlWorkerGroup"]
    assert "autoscaling:SetDesiredCapacity" in control["Action"]
    assert control["Resource"] == [
        f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/jobfleet-dev-workers"
    ]
    describe = statements["DescribeUnscopable"]
    assert describe["Resource"] == ["*"] and all(":Describe" in a for a in describe["Action"])
    worker = {s["Sid"]: s for s in policies["iam-worker-policy"]["Statement"]}
    # the bundle prefix, so a rollout never has a window where the old or new key is denied
    assert worker["ReadReleases"]["Resource"] == ["arn:aws:s3:::artifacts-bucket-abc123/releases/jobfleet-*"]
    assert dev.outputs["releaseKey"].startswith("releases/jobfleet-")
    own = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/jobfleet/dev/redis-auth-token"
    assert worker["ReadOwnSecrets"]["Resource"] == [own]
    assert worker["DecryptOwnSecrets"]["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:PARAMETER_ARN": [own]}
    }
    assert sorted(worker["DenyOtherSecrets"]["Resource"]) == [
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/jobfleet/dev/{name}"
        for name in ("dashboard-token", "grafana-admin-password")
    ]
    attachments = dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert len(attachments) == 4
    assert all(a.inputs["policyArn"].endswith("/AmazonSSMManagedInstanceCore") for a in attachments)


def test_prometheus_discovers_hosts_by_the_tags_the_program_sets(dev: Program) -> None:
    worker_tags = {t["key"]: t["value"] for t in dev.one(ASG).inputs["tags"]}
    assert worker_tags["jobfleet:role"] == "worker" and worker_tags["jobfleet:stack"] == "dev"
    assert all(t["propagateAtLaunch"] for t in dev.one(ASG).inputs["tags"])
    assert dev.one(INSTANCE, "monitoring").inputs["tags"]["jobfleet:role"] == "autoscaler"
    prometheus = (ROOT / "observability/prometheus/prometheus-aws.yml").read_text()
    assert "values: [worker]" in prometheus and "values: [autoscaler]" in prometheus
    assert "tag:jobfleet:stack" in prometheus and "JOBFLEET_STACK" in prometheus


def test_outputs_name_what_operators_need(dev: Program) -> None:
    out = dev.outputs
    assert out["dashboardUrl"] == "http://localhost:8080/" and out["grafanaUrl"] == "http://localhost:3000/"
    assert out["redisEndpoint"].startswith("master.")
    assert out["monitoringInstanceId"] == "monitoring-instance-id"
    assert out["artifactBucket"] == "artifacts-bucket-abc123"


def test_a_region_with_too_few_zones_is_a_clear_error() -> None:
    from infra.network import NetworkError

    class OneZone(RecordingMocks):
        def call(self, args: Any) -> dict[str, Any]:  # type: ignore[override]
            if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                return {"names": [f"{REGION}a"], "zoneIds": ["euw1-az1"], "id": REGION}
            return super().call(args)

    with pytest.raises(NetworkError, match="offers 1 available zone"):
        run_program(dev_config(), mocks=OneZone())


def test_infra_imports_no_application_package() -> None:
    import ast

    for path in sorted((ROOT / "infra").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top not in ("worker", "autoscaler", "dashboard", "observability"), f"{path.name} imports {name}"


def test_no_infra_module_shadows_a_top_level_module() -> None:
    """The Pulumi CLI puts infra/ itself on sys.path, so e.g. infra/secrets.py would hide the stdlib's."""
    import importlib.util
    import sys

    for path in sorted((ROOT / "infra").glob("*.py")):
        name = path.stem
        if name.startswith("__"):
            continue
        assert name not in sys.stdlib_module_names, f"infra/{path.name} shadows the stdlib module {name}"
        assert importlib.util.find_spec(name) is None, f"infra/{path.name} shadows the installed module {name}"


def test_raising_the_job_timeout_updates_the_drain_hook_resource(dev: Program) -> None:
    longer = run_program(dev_config(jobTimeout=1800, shutdownDeadline=600))
    before, after = dev.one(HOOK, "drain"), longer.one(HOOK, "drain")
    assert before.name == after.name  # the same resource: an in-place update of heartbeatTimeout
    assert after.inputs["heartbeatTimeout"] == 1800 + 30 + 60 > before.inputs["heartbeatTimeout"]
    assert run_program(dev_config(bootDeadline=1200)).one(HOOK, "launch").inputs["heartbeatTimeout"] == 1200


def test_logs_leave_the_hosts_with_a_retention(dev: Program) -> None:
    groups = {r.inputs["name"]: r.inputs for r in dev.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert set(groups) == {f"/jobfleet/dev/{s}" for s in ("worker", "autoscaler", "dashboard", "bootstrap")}
    assert all(g["retentionInDays"] == 14 for g in groups.values())
    assert all(g["retentionInDays"] == 30 for g in run_program(dev_config(logRetentionDays=30)).of_type(
        "aws:cloudwatch/logGroup:LogGroup") for g in [g.inputs])
    policies = {r.name: json.loads(r.inputs["policy"]) for r in dev.of_type("aws:iam/rolePolicy:RolePolicy")}
    ship = {s["Sid"]: s for s in policies["iam-worker-policy"]["Statement"]}["ShipLogs"]
    assert ship["Resource"] == sorted(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/jobfleet/dev/{s}:*"
                                      for s in ("worker", "bootstrap"))
    assert "logs:CreateLogGroup" not in ship["Action"]
    for role, service in (("worker", "worker"), ("monitoring", "autoscaler"), ("dashboard", "dashboard")):
        text = _user_data(dev, role)
        assert f"StandardOutput=append:/var/log/jobfleet/{service}.log" in text, role
        config = json.loads(text.split("<<'CWAGENT'", 1)[1].split("\n")[1])
        files = {f["file_path"]: f["log_group_name"] for f in config["logs"]["logs_collected"]["files"]["collect_list"]}
        assert files == {f"/var/log/jobfleet/{service}.log": f"/jobfleet/dev/{service}",
                         "/var/log/jobfleet-bootstrap.log": "/jobfleet/dev/bootstrap"}, role
        assert "amazon-cloudwatch-agent-ctl -a fetch-config" in text
