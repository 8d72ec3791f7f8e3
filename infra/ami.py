"""The current Amazon Linux 2023 AMI, resolved from AWS's public SSM parameter at deploy time."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"


def al2023_parameter(architecture: str) -> str:
    """Name of the public SSM parameter holding the newest AL2023 AMI id for ``x86_64`` or ``arm64``."""
    if architecture not in ("x86_64", "arm64"):
        raise ValueError(f"unknown architecture {architecture!r}")
    return AL2023_PARAMETER.format(arch=architecture)


def al2023_ami(architecture: str, parent: pulumi.Resource | None = None) -> pulumi.Output[str]:
    """The AMI id (never hard-coded): a new AL2023 release shows up as a new launch template version."""
    result = aws.ssm.get_parameter_output(
        name=al2023_parameter(architecture), opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    return result.value
