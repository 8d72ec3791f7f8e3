"""Policy rules over every resource the real program registers, and proof that each rule fires."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from infra.policies import (
    RULES,
    PolicyContext,
    Resource,
    accepts_tags,
    buckets_encrypted,
    check_all,
    encrypted,
    iam_scoped,
    imdsv2_required,
    no_secret_in_user_data,
    no_world_ingress,
    tagged,
)
from tests.infra.harness import SECRET_SIG, TEST_SECRETS, Program, dev_config, run_program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TAGS = {"Project": "jobfleet", "Stack": "dev", "CostCenter": "jobfleet", "PerfTestRun": "dev-baseline"}
CTX = PolicyContext(required_tags=TAGS, secrets=tuple(TEST_SECRETS.values()))


def _resources(program: Program) -> list[Resource]:
    return [Resource(r.typ, r.name, r.inputs, r.id) for r in program.resources]


def test_every_registered_resource_passes_every_rule(dev: Program) -> None:
    resources = _resources(dev)
    assert len(resources) > 60
    assert check_all(resources, CTX) == []
    # the rules really looked at something: taggable resources exist and were checked
    assert sum(accepts_tags(r.typ) for r in resources) > 40


def test_variants_pass_too() -> None:
    program = run_program(dev_config(natGateway=True, useSpot=True, workerInstanceTypes=["t3.small", "t3a.small"]))
    assert check_all(_resources(program), CTX) == []


def test_world_ingress_only_when_config_opens_it() -> None:
    program = run_program(dev_config(allowedCidrs=["0.0.0.0/0"], allowPublicAccess=True))
    resources = _resources(program)
    problems = check_all(resources, CTX)
    assert len(problems) == 2 and all("0.0.0.0/0" in p for p in problems)
    opened = PolicyContext(required_tags=TAGS, secrets=CTX.secrets, open_cidrs=frozenset({"0.0.0.0/0"}))
    assert check_all(resources, opened) == []


def test_cost_tags_from_config_reach_every_resource() -> None:
    program = run_program(dev_config(costTags={"PerfTestRun": "run-42", "Team": "sre"}))
    ctx = PolicyContext(required_tags={"Project": "jobfleet", "Stack": "dev", "PerfTestRun": "run-42", "Team": "sre"})
    assert [p for p in check_all(_resources(program), ctx) if "tag" in p] == []
    assert any("PerfTestRun" in p for p in check_all(_resources(program), CTX))


# --- each rule fires on a deliberately bad resource -------------------------------------------------

def test_rule_no_world_ingress_fires() -> None:
    bad = Resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ssh",
                   {"cidrIpv4": "0.0.0.0/0", "fromPort": 22, "toPort": 22, "securityGroupId": "sg-1"})
    assert no_world_ingress(bad, CTX) == ["ssh: ingress from 0.0.0.0/0 (the whole internet) without allowPublicAccess"]
    inline = Resource("aws:ec2/securityGroup:SecurityGroup", "legacy",
                      {"ingress": [{"cidrBlocks": ["10.0.0.0/8"]}, {"ipv6CidrBlocks": ["::/0"]}]})
    assert len(no_world_ingress(inline, CTX)) == 1
    egress_ok = Resource("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "out", {"cidrIpv4": "0.0.0.0/0"})
    assert no_world_ingress(egress_ok, CTX) == []


def test_rule_imdsv2_fires() -> None:
    for typ in ("aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"):
        assert imdsv2_required(Resource(typ, "v1", {"metadataOptions": {"httpTokens": "optional"}}), CTX)
        assert imdsv2_required(Resource(typ, "default", {}), CTX)
        assert imdsv2_required(Resource(typ, "ok", {"metadataOptions": {"httpTokens": "required"}}), CTX) == []


def test_rule_encryption_fires() -> None:
    plain_redis = Resource("aws:elasticache/replicationGroup:ReplicationGroup", "redis",
                           {"transitEncryptionEnabled": False, "atRestEncryptionEnabled": False})
    assert len(encrypted(plain_redis, CTX)) == 3  # no TLS, no at-rest, no AUTH
    assert encrypted(Resource("aws:ec2/instance:Instance", "host", {"rootBlockDevice": {"encrypted": False}}), CTX)
    lt = Resource("aws:ec2/launchTemplate:LaunchTemplate", "lt",
                  {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]})
    assert encrypted(lt, CTX) == ["lt: volume /dev/xvda not encrypted"]
    assert encrypted(Resource("aws:s3/bucketObjectv2:BucketObjectv2", "obj", {"key": "k"}), CTX)
    bucket = Resource("aws:s3/bucket:Bucket", "naked", {}, id="naked-1")
    assert len(buckets_encrypted([bucket])) == 2


def test_rule_no_secret_in_user_data_fires() -> None:
    literal = "#!/bin/bash\nexport REDIS_PASSWORD=hunter2hunter2\n"
    assert no_secret_in_user_data(Resource("aws:ec2/instance:Instance", "i", {"userData": literal}), CTX)
    leaked = "#!/bin/bash\necho " + TEST_SECRETS["jobfleet:grafanaAdminPassword"] + "\n"
    encoded = base64.b64encode(leaked.encode()).decode()
    template = Resource("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"userData": encoded})
    problems = no_secret_in_user_data(template, CTX)
    assert problems == ["lt: user data contains a secret value"]
    keys = "#!/bin/bash\nAWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n"
    assert no_secret_in_user_data(Resource("aws:ec2/instance:Instance", "k", {"userData": keys}), CTX)
    from_secret = {SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": "#!/bin/bash\n"}
    assert no_secret_in_user_data(Resource("aws:ec2/instance:Instance", "s", {"userData": from_secret}), CTX)
    by_name = "#!/bin/bash\nJOBFLEET_DASHBOARD_TOKEN=/jobfleet/dev/dashboard-token\n"
    assert no_secret_in_user_data(Resource("aws:ec2/instance:Instance", "ok", {"userData": by_name}), CTX) == []


def test_rule_iam_scoped_fires() -> None:
    def policy(*statements: Any) -> Resource:
        doc = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
        return Resource("aws:iam/rolePolicy:RolePolicy", "p", {"policy": doc})

    star = {"Sid": "A", "Effect": "Allow", "Action": ["autoscaling:SetDesiredCapacity"], "Resource": "*"}
    assert iam_scoped(policy(star), CTX) == ["p/A: autoscaling:SetDesiredCapacity on * (not a named ARN)"]
    wildcard = {"Sid": "B", "Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::bucket/*"]}
    assert iam_scoped(policy(wildcard), CTX) == ["p/B: wildcard action s3:*"]
    describe = {"Sid": "C", "Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}
    deny = {"Sid": "D", "Effect": "Deny", "Action": "*", "Resource": "*"}
    assert iam_scoped(policy(describe, deny), CTX) == []
    admin = Resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "admin",
                     {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"})
    assert iam_scoped(admin, CTX) == ["admin: AWS-managed policy arn:aws:iam::aws:policy/AdministratorAccess is not "
                                      "allow-listed"]


def test_rule_tagged_fires() -> None:
    assert tagged(Resource("aws:ec2/vpc:Vpc", "vpc", {"tags": {"Project": "jobfleet"}}), CTX)
    asg = Resource("aws:autoscaling/group:Group", "asg", {"tags": [{"key": "Project", "value": "jobfleet"}]})
    assert len(tagged(asg, CTX)) == 3
    # resources that cannot carry tags are not asked to
    assert tagged(Resource("aws:ec2/route:Route", "r", {}), CTX) == []
    assert tagged(Resource("jobfleet:network:Network", "n", {}), CTX) == []


def test_rules_are_all_exercised() -> None:
    assert {rule.__name__ for rule in RULES} == {
        "no_world_ingress", "imdsv2_required", "encrypted", "no_secret_in_user_data", "iam_scoped", "tagged",
    }
