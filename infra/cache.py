"""Redis: an ElastiCache replication group (Valkey by default) with TLS, AUTH and encryption at rest."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.firewall import REDIS_PORT
from infra.tags import Tagger


def parameter_group_family(engine: str, version: str) -> str:
    """The default parameter group family for an engine version (``valkey8``, ``redis7``)."""
    return f"{engine}{version.split('.')[0]}"


class Redis(pulumi.ComponentResource):
    """Replication group in the app subnets, admitted only by the app hosts' security groups.

    With more than one node the group has a replica in another AZ, automatic failover and Multi-AZ.
    """

    group: aws.elasticache.ReplicationGroup
    endpoint: pulumi.Output[str]
    port: int = REDIS_PORT

    def __init__(
        self, name: str, cfg: InfraConfig, subnet_ids: list[pulumi.Output[str]], security_group_id: pulumi.Input[str],
        tags: Tagger, opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jobfleet:data:Redis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets", subnet_ids=subnet_ids, description=f"jobfleet {cfg.stack} Redis subnets",
            tags=tags("redis-subnets"), opts=child,
        )
        replicated = cfg.redis_nodes > 1
        self.group = aws.elasticache.ReplicationGroup(
            f"{name}-group",
            description=f"jobfleet {cfg.stack} job queue ({cfg.redis_engine})",
            engine=cfg.redis_engine,
            engine_version=cfg.redis_engine_version,
            parameter_group_name=f"default.{parameter_group_family(cfg.redis_engine, cfg.redis_engine_version)}",
            node_type=cfg.redis_node_type,
            num_cache_clusters=cfg.redis_nodes,
            port=REDIS_PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[security_group_id],
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            auth_token_wo=cfg.redis_auth_token,  # write-only: not kept in the Pulumi state
            auth_token_wo_version=cfg.secrets_version,
            auth_token_update_strategy="ROTATE",
            automatic_failover_enabled=replicated,
            multi_az_enabled=replicated,
            snapshot_retention_limit=1,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags("redis"),
            opts=child,
        )
        self.endpoint = self.group.primary_endpoint_address
        self.register_outputs({"endpoint": self.endpoint})
