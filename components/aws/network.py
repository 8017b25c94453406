"""Where an EC2 LocalAI host sits and who may reach it: subnet placement, security groups.

Shared by the single host and the fleet; every function takes the component that owns
the invokes and resources as ``parent``, so logical names and URNs stay the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.errors import ConfigError


@dataclass(frozen=True)
class Placement:
    """A subnet, its availability zone and its VPC."""

    subnet_id: pulumi.Output[str]
    availability_zone: pulumi.Output[str]
    vpc_id: pulumi.Output[str]


def place_host(
    *,
    subnet_id: str | None,
    vpc_id: str | None,
    zone: str | None,
    parent: pulumi.Resource,
) -> Placement:
    """The configured subnet, or one in the default VPC (``vpc_id``'s VPC when given),
    in ``zone`` when there is one (an existing weights volume's zone)."""
    invoke_opts = pulumi.InvokeOutputOptions(parent=parent)
    if subnet_id is not None:
        chosen: pulumi.Output[str] = pulumi.Output.from_input(subnet_id)
    else:
        if vpc_id is not None:
            vpc = aws.ec2.get_vpc_output(id=vpc_id, opts=invoke_opts)
            filters = [{"name": "vpc-id", "values": [vpc.id]}]
        else:
            vpc = aws.ec2.get_vpc_output(default=True, opts=invoke_opts)
            filters = [
                {"name": "vpc-id", "values": [vpc.id]},
                {"name": "default-for-az", "values": ["true"]},
            ]
        if zone is not None:
            filters.append({"name": "availability-zone", "values": [zone]})
        subnets = aws.ec2.get_subnets_output(filters=filters, opts=invoke_opts)
        chosen = subnets.ids.apply(_first_subnet)
    subnet = aws.ec2.get_subnet_output(id=chosen, opts=invoke_opts)
    return Placement(chosen, subnet.availability_zone, subnet.vpc_id)


def _first_subnet(ids: list[str]) -> str:
    if not ids:
        raise pulumi.RunError(
            "no subnet found for the LocalAI host: set localai:subnetId (or localai:vpcId "
            "with at least one subnet, or create a default VPC)"
        )
    return sorted(ids)[0]


def existing_volume_zone(volume_id: str, subnet_id: str | None) -> str:
    """The availability zone of an existing weights volume, checked against a configured
    subnet before any resource is declared (an EBS volume attaches only in its zone)."""
    found = aws.ebs.get_volume(filters=[{"name": "volume-id", "values": [volume_id]}])
    zone = found.availability_zone
    if subnet_id is not None:
        subnet_zone = aws.ec2.get_subnet(id=subnet_id).availability_zone
        if subnet_zone != zone:
            raise ConfigError(
                f"localai configuration is invalid:\n  - localai:weightsVolumeId = "
                f"{volume_id!r} is in {zone} but localai:subnetId {subnet_id} is in "
                f"{subnet_zone}: an EBS volume attaches only within its availability zone. "
                "Pick a subnet in that zone, or unset localai:subnetId"
            )
    return zone


def deployed_weights_volume_gb(resource_prefix: str) -> tuple[str, int] | None:
    """The weights volume this stack has attached now, and its size (plain invokes, before
    any resource), found by the tags the host gives it; None before the first deploy."""
    found = aws.ebs.get_ebs_volumes(
        filters=[
            {"name": "tag:localai:stack", "values": [resource_prefix]},
            {"name": "tag:localai:role", "values": ["weights"]},
            {"name": "status", "values": ["in-use"]},
        ]
    )
    sizes = [
        (volume_id, aws.ebs.get_volume(filters=[{"name": "volume-id", "values": [volume_id]}]).size)
        for volume_id in sorted(found.ids)
    ]
    return max(sizes, key=lambda item: item[1], default=None)


def endpoint_security_group(
    name: str,
    *,
    port: int,
    allowed_cidrs: Sequence[str],
    ssh_cidrs: Sequence[str],
    vpc_id: pulumi.Input[str],
    resource_prefix: str,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> aws.ec2.SecurityGroup:
    """The API port from ``allowed_cidrs`` only (and SSH when opted in); all egress."""
    ingress = [_ingress_rule(port, cidr, "LocalAI API") for cidr in allowed_cidrs]
    ingress += [_ingress_rule(22, cidr, "SSH (opted in)") for cidr in ssh_cidrs]
    return aws.ec2.SecurityGroup(
        f"{name}-sg",
        description="LocalAI endpoint: API port from allowedCidrs only",
        vpc_id=vpc_id,
        ingress=ingress,
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                protocol="-1",
                from_port=0,
                to_port=0,
                cidr_blocks=["0.0.0.0/0"],
                ipv6_cidr_blocks=["::/0"],
                description="image pulls, model downloads, SSM, CloudWatch",
            )
        ],
        tags={**tags, "Name": f"{resource_prefix}-endpoint"},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _ingress_rule(port: int, cidr: str, description: str) -> aws.ec2.SecurityGroupIngressArgs:
    # IPv4 only: settings refuse IPv6 CIDRs (the host has no IPv6 address).
    return aws.ec2.SecurityGroupIngressArgs(
        protocol="tcp", from_port=port, to_port=port, cidr_blocks=[cidr], description=description
    )
