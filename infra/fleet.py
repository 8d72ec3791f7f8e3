"""Worker fleet: launch template + Auto Scaling group whose desired capacity belongs to the autoscaler."""

from __future__ import annotations

import base64

import pulumi
import pulumi_aws as aws

from infra.ami import al2023_ami
from infra.config import InfraConfig
from infra.host import METADATA_OPTIONS
from infra.tags import Tagger
from infra.warm_pool import warm_pool_args, warm_pool_ignored

DRAIN_HOOK = "jobfleet-drain"
"""Name of the termination lifecycle hook the worker hosts complete after draining."""
LAUNCH_HOOK = "jobfleet-launch"
"""Name of the launch lifecycle hook a worker host completes (CONTINUE) only after its self-check passes."""


def lifecycle_hooks(
    name: str, cfg: InfraConfig, group_name: pulumi.Input[str], parent: pulumi.Resource
) -> tuple[aws.autoscaling.LifecycleHook, aws.autoscaling.LifecycleHook]:
    """The launch and drain hooks as their own resources, so a changed timeout updates them in place.

    (``initial_lifecycle_hooks`` on the group apply only when the group is created.)

    - launch: the host answers CONTINUE after a passing self-check, ABANDON when its bootstrap fails; no
      answer within ``bootDeadline`` abandons it too, so a half-booted host never stays InService.
    - drain: holds a terminating host until its workers finished or re-queued their jobs.
    """
    opts = pulumi.ResourceOptions(parent=parent)
    launch = aws.autoscaling.LifecycleHook(
        f"{name}-launch-hook", name=LAUNCH_HOOK, autoscaling_group_name=group_name,
        lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING", heartbeat_timeout=cfg.boot_deadline,
        default_result="ABANDON", opts=opts,
    )
    drain = aws.autoscaling.LifecycleHook(
        f"{name}-drain-hook", name=DRAIN_HOOK, autoscaling_group_name=group_name,
        lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING", heartbeat_timeout=cfg.lifecycle_timeout,
        default_result="CONTINUE", opts=opts,
    )
    return launch, drain


def asg_name(cfg: InfraConfig) -> str:
    """The worker group's name, fixed so IAM policies can name its ARN before it exists."""
    return f"{cfg.project}-{cfg.stack}-workers"


class WorkerFleet(pulumi.ComponentResource):
    """Launch template (AL2023 from SSM, IMDSv2, no key pair, encrypted root) and the worker ASG.

    - ``desired_capacity`` is set once and then ignored: only the autoscaler changes it.
    - New instances are protected from scale-in: the autoscaler picks idle victims itself.
    - Lifecycle hooks (:func:`lifecycle_hooks`): a launch hook answered after the host's self-check,
      a termination hook that holds a leaving instance until its workers drained.
    - Any launch template change (new code bundle, new AMI) starts a rolling instance refresh.
    - ``useSpot`` switches to a mixed instances policy with capacity rebalancing.
    """

    launch_template: aws.ec2.LaunchTemplate
    group: aws.autoscaling.Group
    name: str

    def __init__(
        self,
        name: str,
        cfg: InfraConfig,
        *,
        subnet_ids: list[pulumi.Output[str]],
        security_group_id: pulumi.Input[str],
        profile_arn: pulumi.Input[str],
        user_data: pulumi.Input[str],
        tags: Tagger,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:compute:WorkerFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.name = asg_name(cfg)
        encoded = pulumi.Output.from_input(user_data).apply(lambda text: base64.b64encode(text.encode()).decode())
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"jobfleet {cfg.stack} worker host",
            image_id=al2023_ami(cfg.architecture, self),
            instance_type=cfg.worker_instance_types[0],
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile_arn),
            vpc_security_group_ids=[security_group_id],
            user_data=encoded,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint=METADATA_OPTIONS.http_endpoint,
                http_tokens="required",
                http_put_response_hop_limit=1,
                # the drain loop reads autoscaling/target-lifecycle-state from IMDS
                instance_metadata_tags="disabled",
            ),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_type="gp3", volume_size=cfg.root_volume_gb, encrypted="true", delete_on_termination="true"
                ),
            )],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags.role("worker", "worker"))
                for kind in ("instance", "volume")
            ],
            update_default_version=True,
            tags=tags("worker-lt"),
            opts=child,
        )
        template = aws.autoscaling.GroupLaunchTemplateArgs(
            id=self.launch_template.id, version=self.launch_template.latest_version.apply(str)
        )
        mixed = None
        if cfg.use_spot:
            mixed = aws.autoscaling.GroupMixedInstancesPolicyArgs(
                instances_distribution=aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
                    on_demand_base_capacity=cfg.on_demand_base,
                    on_demand_percentage_above_base_capacity=0,
                    spot_allocation_strategy="price-capacity-optimized",
                ),
                launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                        launch_template_id=self.launch_template.id,
                        version=self.launch_template.latest_version.apply(str),
                    ),
                    overrides=[
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=kind)
                        for kind in cfg.worker_instance_types
                    ],
                ),
            )
        warmup = str(int(cfg.boot_time) + 30)
        self.group = aws.autoscaling.Group(
            f"{name}-asg",
            name=self.name,
            min_size=cfg.min_instances,
            max_size=cfg.max_instances,
            desired_capacity=cfg.min_instances,
            vpc_zone_identifiers=subnet_ids,
            launch_template=None if mixed else template,
            mixed_instances_policy=mixed,
            capacity_rebalance=cfg.use_spot,
            protect_from_scale_in=True,
            health_check_type="EC2",
            health_check_grace_period=int(cfg.boot_time) + 30,
            default_instance_warmup=int(cfg.boot_time) + 30,
            termination_policies=["OldestLaunchTemplate", "Default"],
            warm_pool=warm_pool_args(cfg),  # issue 14: see infra/warm_pool.py (launch hook: lifecycle_hooks())
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=90,
                    max_healthy_percentage=110,
                    instance_warmup=warmup,
                    scale_in_protected_instances="Refresh",
                    standby_instances="Terminate",
                    skip_matching=True,
                    auto_rollback=False,
                ),
            ),
            enabled_metrics=[
                aws.autoscaling.Metric.GROUP_DESIRED_CAPACITY, aws.autoscaling.Metric.GROUP_IN_SERVICE_INSTANCES,
                aws.autoscaling.Metric.GROUP_PENDING_INSTANCES, aws.autoscaling.Metric.GROUP_TERMINATING_INSTANCES,
            ],
            tags=[
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in tags.role("worker", "worker").items()
            ],
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity", *warm_pool_ignored(cfg)]),
        )
        self.launch_hook, self.drain_hook = lifecycle_hooks(name, cfg, self.group.name, self)
        self.register_outputs({"asg_name": self.group.name, "launch_template_id": self.launch_template.id})
