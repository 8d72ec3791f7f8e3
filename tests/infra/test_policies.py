"""Policy rules over every resource the real program registers, and proof that each rule fires."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest

from infra.access import SecureParameter, allowed, can_read, managed_policy
from infra.policies import (
    RULES,
    PolicyContext,
    Resource,
    accepts_tags,
    buckets_encrypted,
    check_all,
    encrypted,
    https_only,
    iam_scoped,
    imdsv2_required,
    lifecycle_hooks_managed,
    no_direct_ingress_to_hosts,
    no_secret_in_user_data,
    no_world_ingress,
    role_documents,
    secrets_only_for_readers,
    tagged,
)
from tests.infra.harness import ACCOUNT, REGION, SECRET_SIG, TEST_SECRETS, Program, dev_config, run_program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TAGS = {"Project": "jobfleet", "Stack": "dev", "CostCenter": "jobfleet", "PerfTestRun": "dev-baseline"}
READERS = {
    "/jobfleet/dev/redis-auth-token": frozenset({f"jobfleet-dev-{r}" for r in ("worker", "monitoring", "dashboard")}),
    "/jobfleet/dev/dashboard-token": frozenset({"jobfleet-dev-dashboard"}),
    "/jobfleet/dev/grafana-admin-password": frozenset({"jobfleet-dev-grafana"}),
}
CTX = PolicyContext(required_tags=TAGS, secrets=tuple(TEST_SECRETS.values()), secret_readers=READERS,
                    region=REGION, account=ACCOUNT)


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
    program = run_program(dev_config(allowedCidrs=["0.0.0.0/0"], allowPublicAccess=True, exposure="alb",
                                     publicDomain="jobs.example.com", certificateArn=CERT))
    resources = _resources(program)
    problems = check_all(resources, CTX)
    assert len(problems) == 3 and all("0.0.0.0/0" in p for p in problems)  # the ALB's 443, 3000 and 80
    opened = dataclasses.replace(CTX, open_cidrs=frozenset({"0.0.0.0/0"}))
    assert check_all(resources, opened) == []


def test_cost_tags_from_config_reach_every_resource() -> None:
    program = run_program(dev_config(costTags={"PerfTestRun": "run-42", "Team": "sre"}))
    ctx = dataclasses.replace(CTX, required_tags={"Project": "jobfleet", "Stack": "dev", "PerfTestRun": "run-42",
                                                  "Team": "sre"})
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
    assert iam_scoped(admin, CTX) == ["admin: AWS-managed policy arn:aws:iam::aws:policy/AdministratorAccess has no "
                                      "pinned document in infra/managed_policies"]


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
        "https_only",
    }


# --- who can read which secret: effective permissions, managed policies included ------------------

GRAFANA_PASSWORD = "/jobfleet/dev/grafana-admin-password"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0123abcd-0123-4567-89ab-0123456789ab"


def _role_docs(program: Program) -> dict[str, list[Any]]:
    return role_documents(_resources(program))


def _parameter(program: Program, name: str) -> SecureParameter:
    key = program.one("aws:kms/key:Key")
    param = next(r for r in program.of_type("aws:ssm/parameter:Parameter") if r.inputs["name"] == name)
    return SecureParameter(CTX.parameter_arn(name), param.inputs["keyId"], json.loads(key.inputs["policy"]))


def test_worker_role_cannot_read_the_grafana_password(dev: Program) -> None:
    docs = _role_docs(dev)
    assert set(docs) == {f"jobfleet-dev-{r}" for r in ("worker", "monitoring", "dashboard", "grafana")}
    # the managed policy really is part of what is evaluated: it grants ssm:GetParameter on everything
    core = managed_policy("AmazonSSMManagedInstanceCore")
    assert core in docs["jobfleet-dev-worker"]
    assert allowed([core], "ssm:GetParameter", CTX.parameter_arn(GRAFANA_PASSWORD))
    password = _parameter(dev, GRAFANA_PASSWORD)
    for role in ("worker", "monitoring", "dashboard"):
        name = f"jobfleet-dev-{role}"
        assert not can_read(docs[name], f"arn:aws:iam::{ACCOUNT}:role/{name}", password), role
    assert can_read(docs["jobfleet-dev-grafana"], f"arn:aws:iam::{ACCOUNT}:role/jobfleet-dev-grafana", password)
    token = _parameter(dev, "/jobfleet/dev/dashboard-token")
    assert not can_read(docs["jobfleet-dev-worker"], f"arn:aws:iam::{ACCOUNT}:role/jobfleet-dev-worker", token)
    assert secrets_only_for_readers(_resources(dev), CTX) == []


def _without(program: Program, role: str, sid: str | None = None, **replace_statement: Any) -> list[Resource]:
    """The program's resources with ``role``'s inline policy edited: statement ``sid`` dropped or replaced."""
    out = []
    for res in _resources(program):
        if res.typ == "aws:iam/rolePolicy:RolePolicy" and res.inputs["role"] == role:
            doc = json.loads(res.inputs["policy"])
            statements = []
            for stmt in doc["Statement"]:
                if stmt.get("Sid") in replace_statement:
                    stmt = replace_statement[stmt["Sid"]]
                if stmt is not None and stmt.get("Sid") != sid:
                    statements.append(stmt)
            res = Resource(res.typ, res.name, {**res.inputs, "policy": json.dumps({**doc, "Statement": statements})})
        out.append(res)
    return out


def test_rule_secrets_only_for_readers_fires_without_the_deny_and_the_kms_condition(dev: Program) -> None:
    broad_decrypt = {"Sid": "DecryptOwnSecrets", "Effect": "Allow", "Action": ["kms:Decrypt"],
                     "Resource": [f"arn:aws:kms:{REGION}:{ACCOUNT}:secrets-key"]}
    bad = _without(dev, "jobfleet-dev-worker", "DenyOtherSecrets", DecryptOwnSecrets=broad_decrypt)
    problems = secrets_only_for_readers(bad, CTX)
    assert sorted(problems) == sorted(
        f"secrets-{n}: role jobfleet-dev-worker can read /jobfleet/dev/{n}, which is not its secret"
        for n in ("dashboard-token", "grafana-admin-password")
    )
    # the KMS condition alone protects (the deny removed, decrypt still scoped by encryption context) ...
    assert secrets_only_for_readers(_without(dev, "jobfleet-dev-worker", "DenyOtherSecrets"), CTX) == []
    # ... and so does the deny alone (decrypt unscoped)
    alone = _without(dev, "jobfleet-dev-worker", DecryptOwnSecrets=broad_decrypt)
    assert secrets_only_for_readers(alone, CTX) == []


def test_rule_fires_for_the_original_setup_managed_policy_and_aws_ssm_key(dev: Program) -> None:
    """The issue's finding: AmazonSSMManagedInstanceCore + the aws/ssm key = every host reads every secret."""
    bad = []
    for res in _resources(dev):
        if res.typ == "aws:ssm/parameter:Parameter":
            res = Resource(res.typ, res.name, {k: v for k, v in res.inputs.items() if k != "keyId"})
        if res.typ == "aws:iam/rolePolicy:RolePolicy":
            continue  # only the managed policy left: no explicit denies
        bad.append(res)
    problems = secrets_only_for_readers(bad, CTX)
    assert f"secrets-grafana-admin-password: role jobfleet-dev-worker can read {GRAFANA_PASSWORD}, which is not " \
           "its secret" in problems
    assert len([p for p in problems if "which is not its secret" in p]) == 7  # 12 pairs, 5 intended


def test_rule_fires_when_a_role_cannot_read_its_own_secret(dev: Program) -> None:
    wrong = {"Sid": "DecryptOwnSecrets", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": [f"arn:aws:kms:{REGION}:{ACCOUNT}:secrets-key"],
             "Condition": {"StringEquals": {"kms:EncryptionContext:PARAMETER_ARN": ["arn:aws:ssm:::parameter/x"]}}}
    problems = secrets_only_for_readers(_without(dev, "jobfleet-dev-grafana", DecryptOwnSecrets=wrong), CTX)
    assert problems == [f"secrets-grafana-admin-password: role jobfleet-dev-grafana cannot read its own secret "
                        f"{GRAFANA_PASSWORD}"]


def test_rule_fires_for_undeclared_secret_and_unpinned_managed_policy() -> None:
    param = Resource("aws:ssm/parameter:Parameter", "p", {"name": "/jobfleet/dev/new", "type": "SecureString"})
    assert secrets_only_for_readers([param], CTX) == ["p: SecureString /jobfleet/dev/new has no declared readers"]
    readers = {**READERS, "/jobfleet/dev/new": frozenset({"r"})}
    attach = Resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a",
                      {"role": "other", "policyArn": "arn:aws:iam::aws:policy/SomethingUnpinned"})
    unknown = secrets_only_for_readers([param, attach], dataclasses.replace(CTX, secret_readers=readers))
    assert "p: role other can read /jobfleet/dev/new, which is not its secret" in unknown  # assumed to grant all


def test_evaluator_semantics() -> None:
    doc = {"Statement": [
        {"Effect": "Allow", "Action": "ssm:Get*", "Resource": "arn:aws:ssm:*:*:parameter/app/*"},
        {"Effect": "Deny", "Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:*:*:parameter/app/secret"},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringLike": {"kms:EncryptionContext:PARAMETER_ARN": "*:parameter/app/public*"}}},
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b/*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    ]}
    assert allowed([doc], "SSM:GetParameters", "arn:aws:ssm:eu-west-1:1:parameter/app/secret")  # case, wildcard
    assert not allowed([doc], "ssm:GetParameter", "arn:aws:ssm:eu-west-1:1:parameter/app/secret")  # deny wins
    assert not allowed([doc], "ssm:GetParameter", "arn:aws:ssm:eu-west-1:1:parameter/other")
    ctx = {"kms:EncryptionContext:PARAMETER_ARN": "arn:aws:ssm:r:1:parameter/app/public-x"}
    assert allowed([doc], "kms:Decrypt", "arn:aws:kms:r:1:key/k", ctx)
    assert not allowed([doc], "kms:Decrypt", "arn:aws:kms:r:1:key/k", {})  # missing context key
    assert allowed([doc], "s3:GetObject", "arn:aws:s3:::b/k")  # unknown operator on an Allow: assumed to hold
    assert not allowed([doc], "iam:PassRole", "arn:aws:s3:::b/k")


def test_rule_lifecycle_hooks_managed_fires() -> None:
    frozen = Resource("aws:autoscaling/group:Group", "asg", {"name": "g", "initialLifecycleHooks": [{"name": "h"}]})
    assert lifecycle_hooks_managed([frozen]) == [
        "asg: initialLifecycleHooks apply only when the group is created; use aws.autoscaling.LifecycleHook resources",
        "asg: no launch lifecycle hook defaulting to ABANDON",
    ]
    group = Resource("aws:autoscaling/group:Group", "asg", {"name": "g"})
    keeps = Resource("aws:autoscaling/lifecycleHook:LifecycleHook", "h", {
        "autoscalingGroupName": "g", "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "defaultResult": "CONTINUE"})
    assert lifecycle_hooks_managed([group, keeps]) == ["asg: no launch lifecycle hook defaulting to ABANDON"]
    abandons = Resource(keeps.typ, "h", {**keeps.inputs, "defaultResult": "ABANDON"})
    assert lifecycle_hooks_managed([group, abandons]) == []


def test_public_mode_passes_every_rule() -> None:
    program = run_program(dev_config(exposure="alb", publicDomain="jobs.example.com", certificateArn=CERT))
    assert check_all(_resources(program), CTX) == []
    assert len(program.of_type("aws:lb/listener:Listener")) == 3


def test_rule_https_only_fires() -> None:
    listener = "aws:lb/listener:Listener"
    forward = [{"type": "forward", "targetGroupArn": "tg"}]
    plain = Resource(listener, "plain", {"protocol": "HTTP", "port": 80, "defaultActions": forward})
    assert https_only(plain, CTX) == ["plain: HTTP listener that does not only redirect to HTTPS"]
    old = Resource(listener, "old", {"protocol": "HTTPS", "certificateArn": CERT,
                                     "sslPolicy": "ELBSecurityPolicy-2016-08", "defaultActions": forward})
    assert https_only(old, CTX) == ["old: TLS policy 'ELBSecurityPolicy-2016-08' allows protocols older than TLS 1.2"]
    nocert = Resource(listener, "nc", {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"})
    assert https_only(nocert, CTX) == ["nc: HTTPS listener without a certificate"]
    redirect = Resource(listener, "r", {"protocol": "HTTP", "defaultActions": [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]})
    assert https_only(redirect, CTX) == []


def test_rule_no_direct_ingress_to_hosts_fires() -> None:
    host = Resource("aws:ec2/instance:Instance", "dash", {"vpcSecurityGroupIds": ["sg-dash"]})
    direct = Resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "in",
                      {"securityGroupId": "sg-dash", "cidrIpv4": "203.0.113.10/32", "fromPort": 8080, "toPort": 8080})
    assert no_direct_ingress_to_hosts([host, direct]) == [
        "in: host security group admits 203.0.113.10/32 on port 8080 directly"]
    via_alb = Resource(direct.typ, "in", {"securityGroupId": "sg-dash", "referencedSecurityGroupId": "sg-alb",
                                         "fromPort": 8080, "toPort": 8080})
    alb = Resource(direct.typ, "alb-in", {"securityGroupId": "sg-alb", "cidrIpv4": "203.0.113.10/32", "fromPort": 443})
    assert no_direct_ingress_to_hosts([host, via_alb, alb]) == []
