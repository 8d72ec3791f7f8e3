"""Stack configuration: Pulumi.yaml/Pulumi.dev.yaml are complete, bad values fail with clear errors."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
import yaml

from infra.config import ConfigError, instance_architecture, load_config
from infra.userdata import Release, monitoring_user_data
from tests.infra.harness import ROOT, RecordingMocks, dev_config, run_program, stack_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _load(**overrides: Any) -> Any:
    pulumi.runtime.set_mocks(RecordingMocks(), project="jobfleet", stack="dev")
    pulumi.runtime.set_all_config(dev_config(**overrides))
    return load_config()


def test_pulumi_project_file_points_at_the_program() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "jobfleet"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert (ROOT / project["main"] / "__main__.py").is_file()


def test_dev_stack_file_is_complete_and_valid() -> None:
    cfg = _load()
    assert (cfg.min_instances, cfg.max_instances) == (1, 10)
    assert cfg.allowed_cidrs == ("203.0.113.10/32",)
    assert cfg.redis_engine == "valkey" and cfg.nat_gateway is False
    assert cfg.cost_tags == {"CostCenter": "jobfleet", "PerfTestRun": "dev-baseline"}
    # every key the program reads is spelled out in the example stack (secrets excepted)
    documented = {k.split(":", 1)[1] for k in stack_config() if k.startswith("jobfleet:")}
    source = (ROOT / "infra" / "config.py").read_text()
    read = set(__import__("re").findall(r'c\.value\("([A-Za-z]+)"', source))
    assert read and read == documented
    assert "--secret" in (ROOT / "Pulumi.dev.yaml").read_text()
    assert not any(s in (ROOT / "Pulumi.dev.yaml").read_text() for s in ("test-redis-auth-token", "password:"))


def test_defaults_when_keys_are_absent() -> None:
    config = {k: v for k, v in dev_config().items() if k in (
        "aws:region", "jobfleet:allowedCidrs", "jobfleet:redisAuthToken", "jobfleet:dashboardToken",
        "jobfleet:grafanaAdminPassword",
    )}
    pulumi.runtime.set_mocks(RecordingMocks(), project="jobfleet", stack="dev")
    pulumi.runtime.set_all_config(config)
    cfg = load_config()
    assert (cfg.min_instances, cfg.max_instances, cfg.worker_instance_types) == (1, 10, ("t3.small",))
    assert cfg.use_spot is False and cfg.nat_gateway is False and cfg.redis_nodes == 2
    assert cfg.target_wait == "30"


def test_per_queue_target_waits_reach_the_monitoring_host() -> None:
    cfg = _load(targetWait=" high=0, low=300 ,*=30")
    assert cfg.target_wait == "high=0,low=300,30"
    user_data = monitoring_user_data(Release("b", "k", "eu-west-1"), {}, asg_name="asg", target_wait=cfg.target_wait,
                                     boot_time=90)
    assert "JOBFLEET_TARGET_WAIT=high=0,low=300,30" in user_data


ALB = {
    "exposure": "alb", "publicDomain": "jobs.example.com",
    "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0123abcd-0123-4567-89ab-0123456789ab",
}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"minInstances": 5, "maxInstances": 2}, "jobfleet:minInstances=5 is above jobfleet:maxInstances=2"),
        ({"workerInstanceTypes": ["t3-small"]}, "jobfleet:workerInstanceTypes"),
        ({"workerInstanceTypes": ["large"]}, "'large' is not an EC2 instance type"),
        ({"workerInstanceTypes": ["t3.small", "t4g.small"]}, "mix arm64 (Graviton) and x86_64"),
        ({"workerInstanceTypes": []}, "jobfleet:workerInstanceTypes='[]' is not allowed: the list is empty"),
        ({"grafanaInstanceType": "t3.huge"}, "jobfleet:grafanaInstanceType"),
        ({**ALB, "allowedCidrs": []}, "jobfleet:allowedCidrs='[]' is not allowed: the list is empty"),
        ({**ALB, "allowedCidrs": None}, "jobfleet:allowedCidrs is required"),
        ({"exposure": "alb"}, "jobfleet:exposure=alb needs jobfleet:certificateArn"),
        ({"logRetentionDays": 10}, "jobfleet:logRetentionDays='10' is not allowed: CloudWatch does not offer"),
        ({"bootDeadline": 100}, "jobfleet:bootDeadline=100 leaves less than a minute"),
        ({"exposure": "public"}, "jobfleet:exposure='public' is not allowed"),
        ({**ALB, "certificateArn": "arn:aws:iam::1:server-certificate/x"}, "jobfleet:certificateArn"),
        ({"allowedCidrs": ["10.0.0.300/32"]}, "'10.0.0.300/32' is not a CIDR"),
        ({"allowedCidrs": ["0.0.0.0/0"]}, "set jobfleet:allowPublicAccess=true if you really mean it"),
        ({"maxInstances": "ten"}, "jobfleet:maxInstances='ten' is not allowed"),
        ({"redisEngine": "memcached"}, "jobfleet:redisEngine='memcached' is not allowed: must be one of valkey, redis"),
        ({"redisNodeType": "t3.micro"}, "jobfleet:redisNodeType"),
        ({"natGateway": "maybe"}, "jobfleet:natGateway='maybe' is not allowed"),
        ({"vpcCidr": "8.8.0.0/16"}, "jobfleet:vpcCidr"),
        ({"queues": ["high", "bad name"]}, "queue name 'bad name'"),
        ({"costTags": {"aws:x": "1"}}, "tag key 'aws:x' is not allowed"),
        ({"jobTimeout": 7200, "shutdownDeadline": 0}, "at most 7200 s"),
        ({"aws:region": None}, "aws:region is required"),
        ({"redisAuthToken": "short"}, "jobfleet:redisAuthToken (secret) is not allowed"),
        ({"redisAuthToken": "contains@at-sign-0123456789"}, "jobfleet:redisAuthToken (secret) is not allowed"),
        ({"grafanaAdminPassword": None}, "pulumi config set --secret jobfleet:grafanaAdminPassword"),
        ({"targetWait": "high=5,soon=1,30"}, "names soon, not in jobfleet:queues"),
        ({"targetWait": "high=5,default=30"}, "has no target for low"),
        ({"targetWait": "high=oops"}, "'high=oops': expected seconds"),
        ({"targetWait": "4000"}, "seconds must be between 0 and 3600"),
        ({"targetWait": "high=5,high=6,30"}, "'high' has two targets"),
        ({"dashboardToken": 'contains@at-sign"quote-0123'}, "jobfleet:dashboardToken (secret) is not allowed"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(**overrides)
    assert message in str(err.value)
    assert "contains@at-sign" not in str(err.value)  # a secret is never echoed


def test_the_program_itself_stops_on_bad_config() -> None:
    with pytest.raises(ConfigError, match="jobfleet:minInstances=3 is above jobfleet:maxInstances=2"):
        run_program(dev_config(minInstances=3, maxInstances=2))


@pytest.mark.parametrize(
    ("kind", "arch"),
    [("t3.small", "x86_64"), ("m7i-flex.large", "x86_64"), ("t4g.micro", "arm64"), ("c7gn.16xlarge", "arm64"),
     ("m6gd.metal", "arm64"), ("g5.xlarge", "x86_64"), ("g5g.xlarge", "arm64")],
)
def test_instance_architecture(kind: str, arch: str) -> None:
    assert instance_architecture(kind) == arch
