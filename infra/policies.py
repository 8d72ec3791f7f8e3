"""Policy rules: plain functions applied to every resource the program registers.

Each rule takes a :class:`Resource` (type token, logical name, inputs as Pulumi sends them: camelCase
keys, resolved values) and a :class:`PolicyContext`, and returns a list of violations (empty = ok).
:func:`check_all` runs every rule over a program's resources, plus the rules that need several
resources at once (a bucket and its encryption configuration).
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.access import SecureParameter, can_read, managed_policy
from infra.iam import UNSCOPABLE_ACTIONS


@dataclass(frozen=True)
class Resource:
    """One registered resource as the rules see it."""

    typ: str
    name: str
    inputs: Mapping[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class PolicyContext:
    """What the rules need to know about the stack."""

    required_tags: Mapping[str, str]
    open_cidrs: frozenset[str] = frozenset()
    """World-open CIDRs the config explicitly allowed (``allowPublicAccess``); normally empty."""
    secrets: tuple[str, ...] = ()
    """Secret values that must never appear in user data."""
    secret_readers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Intended readers: SecureString parameter name -> names of the IAM roles that may read it."""
    partition: str = "aws"
    region: str = ""
    account: str = ""

    def parameter_arn(self, name: str) -> str:
        """ARN of SSM parameter ``name`` (``/a/b``) in this stack's account and region."""
        return f"arn:{self.partition}:ssm:{self.region}:{self.account}:parameter{name}"


Rule = Callable[[Resource, PolicyContext], list[str]]

_WORLD = {"0.0.0.0/0", "::/0"}
_SECRET_ASSIGNMENT = re.compile(r"\b[A-Z_]*(PASSWORD|TOKEN|SECRET)[A-Z_]*=([^\s/$'\"][^\s'\"]{7,})")
_AWS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def no_world_ingress(res: Resource, ctx: PolicyContext) -> list[str]:
    """No ingress from 0.0.0.0/0 or ::/0 unless the config explicitly opened it."""
    cidrs: list[str] = []
    if res.typ == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        cidrs = [c for c in (res.inputs.get("cidrIpv4"), res.inputs.get("cidrIpv6")) if c]
    elif res.typ == "aws:ec2/securityGroupRule:SecurityGroupRule" and res.inputs.get("type") == "ingress":
        cidrs = _as_list(res.inputs.get("cidrBlocks")) + _as_list(res.inputs.get("ipv6CidrBlocks"))
    elif res.typ in ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"):
        for rule in _as_list(res.inputs.get("ingress")):
            cidrs += _as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks"))
    return [
        f"{res.name}: ingress from {cidr} (the whole internet) without allowPublicAccess"
        for cidr in cidrs
        if cidr in _WORLD and cidr not in ctx.open_cidrs
    ]


def imdsv2_required(res: Resource, ctx: PolicyContext) -> list[str]:
    """Instances and launch templates must require IMDSv2 session tokens."""
    if res.typ not in ("aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"):
        return []
    options = res.inputs.get("metadataOptions") or {}
    if options.get("httpTokens") != "required":
        got = options.get("httpTokens")
        return [f"{res.name}: metadataOptions.httpTokens must be 'required' (IMDSv2), got {got!r}"]
    return []


def encrypted(res: Resource, ctx: PolicyContext) -> list[str]:
    """Encryption in transit and at rest: Redis TLS + AUTH + at-rest, EBS and S3 objects encrypted."""
    problems: list[str] = []
    i = res.inputs
    if res.typ == "aws:elasticache/replicationGroup:ReplicationGroup":
        if i.get("transitEncryptionEnabled") is not True:
            problems.append(f"{res.name}: Redis without TLS in transit")
        if i.get("transitEncryptionMode") not in (None, "required"):
            problems.append(f"{res.name}: Redis TLS is not required (mode {i.get('transitEncryptionMode')!r})")
        if i.get("atRestEncryptionEnabled") is not True:
            problems.append(f"{res.name}: Redis without encryption at rest")
        if not i.get("authToken") and not i.get("authTokenWo") and not i.get("userGroupIds"):
            problems.append(f"{res.name}: Redis without AUTH")
    elif res.typ == "aws:ec2/instance:Instance":
        if (i.get("rootBlockDevice") or {}).get("encrypted") is not True:
            problems.append(f"{res.name}: root volume not encrypted")
        for device in _as_list(i.get("ebsBlockDevices")):
            if device.get("encrypted") is not True:
                problems.append(f"{res.name}: EBS volume {device.get('deviceName')} not encrypted")
    elif res.typ == "aws:ec2/launchTemplate:LaunchTemplate":
        mappings = _as_list(i.get("blockDeviceMappings"))
        if not mappings:
            problems.append(f"{res.name}: launch template does not define (encrypted) volumes")
        for mapping in mappings:
            if str((mapping.get("ebs") or {}).get("encrypted")).lower() != "true":
                problems.append(f"{res.name}: volume {mapping.get('deviceName')} not encrypted")
    elif res.typ == "aws:ebs/volume:Volume":
        if i.get("encrypted") is not True:
            problems.append(f"{res.name}: EBS volume not encrypted")
    elif res.typ == "aws:s3/bucketObjectv2:BucketObjectv2" and not (i.get("serverSideEncryption") or i.get("kmsKeyId")):
        problems.append(f"{res.name}: S3 object without server-side encryption")
    return problems


SECRET_MARKER = "4dabf18193072939515e22adb298388d"
"""Key Pulumi uses to mark a secret value in serialized inputs."""


def _user_data(res: Resource) -> str | None:
    raw = res.inputs.get("userData")
    if not raw:
        return None
    if isinstance(raw, dict) and SECRET_MARKER in raw:
        return SECRET_MARKER
    if res.typ == "aws:ec2/launchTemplate:LaunchTemplate":
        try:
            return base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return str(raw)
    return str(raw)


def no_secret_in_user_data(res: Resource, ctx: PolicyContext) -> list[str]:
    """User data holds no secret: none of the stack's secret values, no KEY=value for passwords or
    tokens (only SSM parameter names, which start with ``/``), no AWS keys, no private keys."""
    text = _user_data(res)
    if text is None:
        return []
    if text == SECRET_MARKER:
        return [f"{res.name}: user data is built from a secret value"]
    problems = [f"{res.name}: user data contains a secret value" for secret in ctx.secrets if secret and secret in text]
    for match in _SECRET_ASSIGNMENT.finditer(text):
        problems.append(f"{res.name}: user data assigns a literal secret to {match.group(0).split('=')[0]}")
    if _AWS_KEY.search(text):
        problems.append(f"{res.name}: user data contains an AWS access key id")
    if _PRIVATE_KEY.search(text):
        problems.append(f"{res.name}: user data contains a private key")
    return problems


def _statements(document: Any) -> list[dict[str, Any]]:
    doc = json.loads(document) if isinstance(document, str) else document
    return _as_list((doc or {}).get("Statement"))


def iam_scoped(res: Resource, ctx: PolicyContext) -> list[str]:
    """IAM Allow statements name their resources; ``*`` only for actions that cannot be scoped;
    no wildcard actions; AWS-managed policies only when a pinned copy of their document is in the repo
    (``infra/managed_policies``), so :func:`secrets_only_for_readers` can evaluate what they grant."""
    problems: list[str] = []
    if res.typ in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
        for stmt in _statements(res.inputs.get("policy")):
            if stmt.get("Effect") != "Allow":
                continue
            actions = [str(a) for a in _as_list(stmt.get("Action"))]
            resources = [str(r) for r in _as_list(stmt.get("Resource"))]
            sid = stmt.get("Sid", "?")
            if "NotAction" in stmt or "NotResource" in stmt:
                problems.append(f"{res.name}/{sid}: NotAction/NotResource grants too much")
            for action in actions:
                if action == "*" or action.endswith(":*"):
                    problems.append(f"{res.name}/{sid}: wildcard action {action}")
            if not resources:
                problems.append(f"{res.name}/{sid}: statement names no resource")
            for resource in resources:
                broad = resource == "*" or re.fullmatch(r"arn:[^:]+:[^:]+:[^:]*:[^:]*:\*", resource)
                if broad:
                    unscoped = sorted(set(actions) - UNSCOPABLE_ACTIONS)
                    if unscoped:
                        problems.append(f"{res.name}/{sid}: {', '.join(unscoped)} on {resource} (not a named ARN)")
    elif res.typ == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        arn = str(res.inputs.get("policyArn", ""))
        if ":iam::aws:policy/" in arn and managed_policy(arn.rsplit("/", 1)[-1]) is None:
            problems.append(f"{res.name}: AWS-managed policy {arn} has no pinned document in infra/managed_policies")
    return problems


@functools.cache
def accepts_tags(typ: str) -> bool:
    """Whether the pulumi_aws resource class for a type token takes ``tags``."""
    if not typ.startswith("aws:"):
        return False
    module_path, _, class_name = typ.split(":", 1)[1].partition(":")
    module = module_path.split("/")[0]
    try:
        package = importlib.import_module("pulumi_aws" if module == "index" else f"pulumi_aws.{module}")
        cls = getattr(package, class_name)
    except (ImportError, AttributeError):
        return False
    return "tags" in inspect.signature(cls._internal_init).parameters


def tagged(res: Resource, ctx: PolicyContext) -> list[str]:
    """Every taggable resource carries the project, stack and cost-allocation tags."""
    if not accepts_tags(res.typ):
        return []
    raw = res.inputs.get("tags")
    # Auto Scaling group tags are a list of {key, value, propagateAtLaunch}
    tags = {t.get("key"): t.get("value") for t in raw} if isinstance(raw, list) else dict(raw or {})
    return [
        f"{res.name}: tag {key}={value!r} missing (has {tags.get(key)!r})"
        for key, value in ctx.required_tags.items()
        if tags.get(key) != value
    ]


def buckets_encrypted(resources: Iterable[Resource]) -> list[str]:
    """Every S3 bucket has a server-side encryption configuration and blocks public access."""
    items = list(resources)
    encrypted_ids = {
        r.inputs.get("bucket") for r in items
        if r.typ == "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    }
    blocked_ids = {
        r.inputs.get("bucket") for r in items
        if r.typ == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
        and all(r.inputs.get(k) is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                  "restrictPublicBuckets"))
    }
    problems = []
    for bucket in (r for r in items if r.typ == "aws:s3/bucket:Bucket"):
        if bucket.id not in encrypted_ids:
            problems.append(f"{bucket.name}: bucket without server-side encryption configuration")
        if bucket.id not in blocked_ids:
            problems.append(f"{bucket.name}: bucket without a full public access block")
    return problems


def lifecycle_hooks_managed(resources: Iterable[Resource]) -> list[str]:
    """Auto Scaling groups get their hooks as ``LifecycleHook`` resources (``initialLifecycleHooks`` only
    apply at creation, so a changed timeout would never reach the group), including a launch hook whose
    default result is ABANDON (a host that never passes its self-check is replaced, not kept InService)."""
    items = list(resources)
    problems = []
    hooks = [r for r in items if r.typ == "aws:autoscaling/lifecycleHook:LifecycleHook"]
    for group in (r for r in items if r.typ == "aws:autoscaling/group:Group"):
        if group.inputs.get("initialLifecycleHooks"):
            problems.append(f"{group.name}: initialLifecycleHooks apply only when the group is created; "
                            "use aws.autoscaling.LifecycleHook resources")
        name = group.inputs.get("name")
        mine = [h for h in hooks if h.inputs.get("autoscalingGroupName") == name]
        if not any(h.inputs.get("lifecycleTransition") == "autoscaling:EC2_INSTANCE_LAUNCHING"
                   and h.inputs.get("defaultResult") == "ABANDON" for h in mine):
            problems.append(f"{group.name}: no launch lifecycle hook defaulting to ABANDON")
    return problems


_TLS_POLICIES = ("ELBSecurityPolicy-TLS13-", "ELBSecurityPolicy-TLS-1-2-")


def https_only(res: Resource, ctx: PolicyContext) -> list[str]:
    """Load balancer listeners: HTTPS with a certificate and a TLS 1.2+ policy, or HTTP that only redirects
    to HTTPS (no plain HTTP from the internet)."""
    if res.typ != "aws:lb/listener:Listener":
        return []
    i = res.inputs
    if i.get("protocol") == "HTTPS":
        problems = [] if i.get("certificateArn") else [f"{res.name}: HTTPS listener without a certificate"]
        if not str(i.get("sslPolicy", "")).startswith(_TLS_POLICIES):
            problems.append(f"{res.name}: TLS policy {i.get('sslPolicy')!r} allows protocols older than TLS 1.2")
        return problems
    actions = _as_list(i.get("defaultActions"))
    redirects = all(a.get("type") == "redirect" and (a.get("redirect") or {}).get("protocol") == "HTTPS"
                    for a in actions)
    return [] if actions and redirects else [f"{res.name}: {i.get('protocol')} listener that does not only "
                                             "redirect to HTTPS"]


def no_direct_ingress_to_hosts(resources: Iterable[Resource]) -> list[str]:
    """No security group of an instance or launch template admits a CIDR: hosts are reached only from other
    security groups (the ALB, each other) or through Session Manager, never straight from an address range."""
    items = list(resources)
    host_groups: set[str] = set()
    for r in items:
        if r.typ in ("aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"):
            host_groups.update(str(g) for g in _as_list(r.inputs.get("vpcSecurityGroupIds")))
    return [
        f"{r.name}: host security group admits {r.inputs.get('cidrIpv4') or r.inputs.get('cidrIpv6')} on port "
        f"{r.inputs.get('fromPort')} directly"
        for r in items
        if r.typ == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
        and str(r.inputs.get("securityGroupId")) in host_groups
        and (r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6"))
    ]


_EVERYTHING = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
"""What an attached policy whose document is unknown is assumed to grant."""


def role_documents(resources: Iterable[Resource]) -> dict[str, list[Any]]:
    """Per role name: its inline policy documents and the (pinned) documents of its attached policies."""
    docs: dict[str, list[Any]] = {}
    for res in resources:
        role = str(res.inputs.get("role", ""))
        if res.typ == "aws:iam/rolePolicy:RolePolicy":
            docs.setdefault(role, []).append(res.inputs.get("policy"))
        elif res.typ == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
            arn = str(res.inputs.get("policyArn", ""))
            pinned = managed_policy(arn.rsplit("/", 1)[-1]) if ":iam::aws:policy/" in arn else None
            docs.setdefault(role, []).append(pinned or _EVERYTHING)
        elif res.typ == "aws:iam/role:Role":
            docs.setdefault(str(res.inputs.get("name", res.name)), [])
            for inline in _as_list(res.inputs.get("inlinePolicies")):
                docs.setdefault(str(res.inputs.get("name", res.name)), []).append(inline.get("policy"))
            for arn in _as_list(res.inputs.get("managedPolicyArns")):
                pinned = managed_policy(str(arn).rsplit("/", 1)[-1]) if ":iam::aws:policy/" in str(arn) else None
                docs[str(res.inputs.get("name", res.name))].append(pinned or _EVERYTHING)
    return docs


def secrets_only_for_readers(resources: Iterable[Resource], ctx: PolicyContext) -> list[str]:
    """Each role can read exactly the SecureString parameters ``ctx.secret_readers`` gives it.

    Evaluates every role's effective permissions (inline policies plus the pinned documents of attached
    AWS-managed policies, see :mod:`infra.access`) for reading each parameter's value: an SSM read
    action and ``kms:Decrypt`` for that parameter's encryption context. A parameter under the
    AWS-managed ``aws/ssm`` key can be decrypted by any role of the account that may call SSM.
    """
    items = list(resources)
    docs = role_documents(items)
    key_policies = [r.inputs.get("policy") for r in items if r.typ == "aws:kms/key:Key"]
    problems: list[str] = []
    for res in items:
        if res.typ != "aws:ssm/parameter:Parameter" or res.inputs.get("type") != "SecureString":
            continue
        name = str(res.inputs.get("name"))
        if name not in ctx.secret_readers:
            problems.append(f"{res.name}: SecureString {name} has no declared readers")
            continue
        key = res.inputs.get("keyId")
        key_arn = None if not key or str(key) in ("alias/aws/ssm", "aws/ssm") else str(key)
        policy = {"Statement": [s for doc in key_policies for s in (json.loads(doc) if isinstance(doc, str)
                                                                    else doc or {}).get("Statement", [])]}
        parameter = SecureParameter(ctx.parameter_arn(name), key_arn, policy)
        for role, role_docs in sorted(docs.items()):
            principal = f"arn:{ctx.partition}:iam::{ctx.account}:role/{role}"
            readable = can_read(role_docs, principal, parameter)
            if readable and role not in ctx.secret_readers[name]:
                problems.append(f"{res.name}: role {role} can read {name}, which is not its secret")
            elif not readable and role in ctx.secret_readers[name]:
                problems.append(f"{res.name}: role {role} cannot read its own secret {name}")
    return problems


RULES: tuple[Rule, ...] = (
    no_world_ingress, imdsv2_required, encrypted, no_secret_in_user_data, iam_scoped, tagged, https_only,
)


def check_all(resources: Iterable[Resource], ctx: PolicyContext) -> list[str]:
    """Every violation of every rule over ``resources``."""
    items = list(resources)
    problems = [problem for res in items for rule in RULES for problem in rule(res, ctx)]
    return (problems + buckets_encrypted(items) + secrets_only_for_readers(items, ctx)
            + lifecycle_hooks_managed(items) + no_direct_ingress_to_hosts(items))
