"""Network: a VPC over (up to) three availability zones, public subnets and optional private subnets + NAT."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from infra.config import InfraConfig
from infra.tags import Tagger

AZ_COUNT = 3


class NetworkError(RuntimeError):
    """The region cannot host the network as configured."""


def subnet_cidrs(vpc_cidr: str, count: int) -> tuple[list[str], list[str]]:
    """(public, private) CIDRs: the VPC split in 16 equal blocks; public take 0.., private take 8.."""
    network = ipaddress.ip_network(vpc_cidr)
    blocks = list(network.subnets(prefixlen_diff=4))
    return [str(b) for b in blocks[:count]], [str(b) for b in blocks[8 : 8 + count]]


class Network(pulumi.ComponentResource):
    """VPC, internet gateway, a public subnet per AZ and, when ``natGateway`` is on, private subnets behind
    one NAT gateway (hosts that need no inbound access then live there). The VPC's default security group
    is emptied so nothing can use it by accident; an S3 gateway endpoint keeps bundle downloads off NAT.
    """

    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    app_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, cfg: InfraConfig, tags: Tagger, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jobfleet:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones(state="available", opts=pulumi.InvokeOptions(parent=self))
        names = sorted(zones.names)[:AZ_COUNT]
        if len(names) < 2:
            raise NetworkError(f"region {cfg.region} offers {len(names)} available zone(s); the fleet needs 2 or more")
        public_cidrs, private_cidrs = subnet_cidrs(cfg.vpc_cidr, len(names))

        vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=cfg.vpc_cidr, enable_dns_hostnames=True, enable_dns_support=True,
            tags=tags("vpc"), opts=child,
        )
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags("default-sg-locked"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags("igw"), opts=child)
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=tags("public-rt"), opts=child)
        aws.ec2.Route(
            f"{name}-public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id, opts=child,
        )
        route_tables = [public_rt]
        self.public_subnet_ids = []
        public_subnets = []
        for index, (zone, cidr) in enumerate(zip(names, public_cidrs, strict=True)):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{index}", vpc_id=vpc.id, cidr_block=cidr, availability_zone=zone,
                map_public_ip_on_launch=True, tags=tags(f"public-{zone}"), opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rta", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child
            )
            public_subnets.append(subnet)
            self.public_subnet_ids.append(subnet.id)

        self.private_subnet_ids = []
        if cfg.nat_gateway:
            eip = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", tags=tags("nat-eip"), opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat", allocation_id=eip.id, subnet_id=public_subnets[0].id, tags=tags("nat"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            private_rt = aws.ec2.RouteTable(f"{name}-private-rt", vpc_id=vpc.id, tags=tags("private-rt"), opts=child)
            aws.ec2.Route(
                f"{name}-private-default", route_table_id=private_rt.id, destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id, opts=child,
            )
            route_tables.append(private_rt)
            for index, (zone, cidr) in enumerate(zip(names, private_cidrs, strict=True)):
                subnet = aws.ec2.Subnet(
                    f"{name}-private-{index}", vpc_id=vpc.id, cidr_block=cidr, availability_zone=zone,
                    map_public_ip_on_launch=False, tags=tags(f"private-{zone}"), opts=child,
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-private-{index}-rta", subnet_id=subnet.id, route_table_id=private_rt.id, opts=child
                )
                self.private_subnet_ids.append(subnet.id)

        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint", vpc_id=vpc.id, service_name=f"com.amazonaws.{cfg.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[rt.id for rt in route_tables], tags=tags("s3-endpoint"),
            opts=child,
        )
        self.vpc_id = vpc.id
        self.zones = names
        # Where hosts without inbound internet traffic go: private subnets when there is a NAT.
        self.app_subnet_ids = self.private_subnet_ids or self.public_subnet_ids
        self.register_outputs({"vpc_id": vpc.id, "public_subnet_ids": self.public_subnet_ids})
