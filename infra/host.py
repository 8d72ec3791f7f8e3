"""A single hardened EC2 host: AL2023, IMDSv2 only, no SSH key, encrypted gp3 root, role tags."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.ami import al2023_ami
from infra.config import InfraConfig, instance_architecture
from infra.tags import Tagger

METADATA_OPTIONS = aws.ec2.InstanceMetadataOptionsArgs(
    http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1, instance_metadata_tags="disabled"
)


def host_instance(
    name: str,
    *,
    role: str,
    cfg: InfraConfig,
    role_tag: str | None = None,
    instance_type: str,
    subnet_id: pulumi.Input[str],
    security_group_id: pulumi.Input[str],
    profile_name: pulumi.Input[str],
    user_data: pulumi.Input[str],
    tags: Tagger,
    parent: pulumi.Resource,
) -> aws.ec2.Instance:
    """An instance whose user data change replaces it (a new release means a fresh host).

    ``role_tag`` (default ``role``) is the ``jobfleet:role`` tag value Prometheus discovers the host by.
    """
    tag = role_tag or role
    return aws.ec2.Instance(
        name,
        ami=al2023_ami(instance_architecture(instance_type), parent),
        instance_type=instance_type,
        subnet_id=subnet_id,
        vpc_security_group_ids=[security_group_id],
        iam_instance_profile=profile_name,
        user_data=user_data,
        user_data_replace_on_change=True,
        metadata_options=METADATA_OPTIONS,
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
            volume_type="gp3", volume_size=cfg.root_volume_gb, encrypted=True, delete_on_termination=True,
            tags=tags.role(f"{role}-root", tag),
        ),
        monitoring=False,
        tags=tags.role(role, tag),
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["ami"]),
    )
