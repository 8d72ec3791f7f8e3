"""Worker ASG warm pool (issue 14): stopped, pre-installed instances the autoscaler sizes with PutWarmPool.

Enabled by ``jobfleet:warmPoolMax`` > 0. The pool's instances are ``Stopped`` and reused on scale-in; its
prepared capacity starts at the group's minimum and then belongs to the autoscaler (ignored by Pulumi,
like the desired capacity). The group's one launch lifecycle hook (``infra.fleet.lifecycle_hooks``) holds
every launch - into the pool and from it into service. With a warm pool the host's ``jobfleet-launch-hook``
answers it on every boot: on the first boot the user data has installed the app (so a pool instance is
installed once, when it enters the pool), the worker slots start only when the target lifecycle state is
not ``Warmed:*``, and the hook is completed either way; a failed bootstrap still abandons the launch.
"""

from __future__ import annotations

import pulumi_aws as aws

from infra.config import InfraConfig


def warm_pool_enabled(cfg: InfraConfig) -> bool:
    """Whether the stack asks for a warm pool."""
    return cfg.warm_pool_max > 0


def warm_pool_args(cfg: InfraConfig) -> aws.autoscaling.GroupWarmPoolArgs | None:
    """The group's ``warm_pool`` block (None without a warm pool)."""
    if not warm_pool_enabled(cfg):
        return None
    return aws.autoscaling.GroupWarmPoolArgs(
        pool_state="Stopped",
        min_size=0,
        max_group_prepared_capacity=cfg.min_instances,  # then PutWarmPool by the autoscaler
        instance_reuse_policy=aws.autoscaling.GroupWarmPoolInstanceReusePolicyArgs(reuse_on_scale_in=True),
    )


def warm_pool_ignored(cfg: InfraConfig) -> list[str]:
    """Group properties the autoscaler owns once deployed (PutWarmPool); none without a warm pool."""
    return ["warmPool.maxGroupPreparedCapacity"] if warm_pool_enabled(cfg) else []
