"""Where an EC2 LocalAI host sits and who may reach it: subnet placement, security groups.

Shared by the single host and the fleet; every function takes the component that owns
the invokes and resources as ``parent``, so logical names and URNs stay the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pulumi
import pulumi_aws as aws

from components.aws_limits import EBS_MODIFICATION_COOLDOWN_HOURS
from components.errors import ConfigError


@dataclass(frozen=True)
class Placement:
    """A subnet, its availability zone and its VPC, chosen before any resource."""

    subnet_id: str
    availability_zone: str
    vpc_id: str
    route_table_id: str | None = None
    """The subnet's route table (its own, else the VPC's main one)."""


MODIFIED_AT_TAG = "localai:modified-at"
"""On the weights volume: when `pulumi up` last changed its size or throughput (UTC, ISO
8601), so the next change can be held to EBS's six-hour cooldown before it is sent."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def volume_modified_at(
    deployed: DeployedVolume | None, size_gb: int, throughput: int, *, now: datetime
) -> str | None:
    """The volume's ``localai:modified-at`` after this `pulumi up`: now when it changes the
    size or the throughput, else what it was. A change within six hours of the last is
    refused: EBS would reject it after the rest of the stack was updated (EBS User Guide,
    "Requirements for EBS volume modifications")."""
    if deployed is None:
        return None
    changes = deployed.size_gb != size_gb or (
        deployed.throughput is not None and deployed.throughput != throughput
    )
    if not changes:
        return deployed.modified_at
    if deployed.modified_at is not None:
        try:
            last = datetime.fromisoformat(deployed.modified_at)
        except ValueError:
            last = None
        if last is not None:
            ready = last + timedelta(hours=EBS_MODIFICATION_COOLDOWN_HOURS)
            if now < ready:
                raise ConfigError(
                    "localai configuration cannot be applied yet:\n  - localai:volumeSizeGb / "
                    f"localai:volumeThroughput: the weights volume {deployed.volume_id} was "
                    f"modified at {last:%Y-%m-%d %H:%M} UTC, and EBS accepts the next change "
                    f"{EBS_MODIFICATION_COOLDOWN_HOURS} hours later: retry after "
                    f"{ready:%Y-%m-%d %H:%M} UTC (size {deployed.size_gb} -> {size_gb} GiB, "
                    f"throughput {deployed.throughput} -> {throughput} MiB/s)"
                )
    return now.replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class DeployedVolume:
    """The stack's weights volume as it is now (found by its tags), attached or not."""

    volume_id: str
    size_gb: int
    availability_zone: str
    throughput: int | None = None
    modified_at: str | None = None
    """When the package last changed its size or throughput (tag localai:modified-at)."""


NAT_TARGETS = (
    "nat_gateway_id",
    "instance_id",
    "network_interface_id",
    "transit_gateway_id",
    "vpc_endpoint_id",
    "core_network_arn",
)
"""Default-route targets that give a host without a public IP a way out: a NAT gateway,
a NAT instance (by instance or ENI), a transit gateway or Cloud WAN core network (central
egress), or a Gateway Load Balancer / Network Firewall endpoint (``vpce-``) in front of one
(inspection, then NAT)."""


def default_route_egress(routes: Sequence[object]) -> tuple[str, str]:
    """What the subnet's ``0.0.0.0/0`` route reaches: ``("igw", id)``, ``("nat", id)`` or
    ``("none", what it is)``. Only an internet gateway serves a public IP, and only a NAT
    path serves a host without one."""
    for route in routes:
        if getattr(route, "cidr_block", None) != "0.0.0.0/0":
            continue
        gateway = getattr(route, "gateway_id", "") or ""
        if gateway.startswith("igw-"):
            return "igw", gateway
        if gateway.startswith("vpce-"):  # a firewall endpoint as EC2 reports some routes
            return "nat", gateway
        for attribute in NAT_TARGETS:
            target = getattr(route, attribute, "") or ""
            if target:
                return "nat", target
        return "none", f"0.0.0.0/0 goes to {gateway or 'an unsupported target'}"
    return "none", "no 0.0.0.0/0 route"


def _route_table(subnet_id: str, vpc_id: str) -> tuple[str | None, Sequence[object]]:
    """The subnet's route table and its routes: its explicit association, else the VPC's
    main table (the route-table data source errors on a subnet without an explicit
    association: terraform-provider-aws vpc_route_table_data_source.go, "no results")."""
    explicit = aws.ec2.get_route_tables(
        filters=[{"name": "association.subnet-id", "values": [subnet_id]}]
    ).ids
    if explicit:
        table_id = explicit[0]
    else:
        main = aws.ec2.get_route_tables(
            vpc_id=vpc_id, filters=[{"name": "association.main", "values": ["true"]}]
        ).ids
        if not main:
            return None, []
        table_id = main[0]
    return table_id, aws.ec2.get_route_table(route_table_id=table_id).routes


def vpc_cidr(vpc_id: str) -> str:
    """The VPC's primary IPv4 CIDR block."""
    return aws.ec2.get_vpc(id=vpc_id).cidr_block


def _offered_zones(instance_type: str) -> list[str]:
    """The zones of this region where EC2 offers ``instance_type``."""
    return aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[{"name": "instance-type", "values": [instance_type]}],
    ).locations


def _vpc_subnet_ids(vpc_id: str | None) -> list[str]:
    """``vpc_id``'s subnets, or the default VPC's default subnets, sorted by id."""
    if vpc_id is not None:
        filters = [{"name": "vpc-id", "values": [vpc_id]}]
    else:
        default_vpc = aws.ec2.get_vpc(default=True).id
        filters = [
            {"name": "vpc-id", "values": [default_vpc]},
            {"name": "default-for-az", "values": ["true"]},
        ]
    return sorted(aws.ec2.get_subnets(filters=filters).ids)


def check_route_out(where: str, kind: str, detail: str, *, allow_route_out: bool) -> str | None:
    """Why a sealed host cannot go into this subnet (None: it can). A 0.0.0.0/0 route to
    an internet or NAT gateway is refused unless ``allowRouteOut`` says it is intended:
    the security group still blocks it, but one rule then stands between the host and
    the internet."""
    if kind in ("igw", "nat") and not allow_route_out:
        return (
            f"{where}: its 0.0.0.0/0 route goes to {detail}, a way out for a host with "
            "egress none; pick a subnet without one, or set 'localai:allowRouteOut true' "
            "if it is intended (the security group still allows only the VPC endpoints)"
        )
    return None


def choose_subnet(
    *,
    instance_type: str,
    public: bool,
    subnet_id: str | None,
    vpc_id: str | None,
    zone: str | None,
    sealed: bool = False,
    allow_route_out: bool = False,
) -> Placement:
    """The subnet a host goes into, with plain invokes before any resource: the
    configured one, or the first (by id) of the VPC's candidates (the default VPC's
    default subnets unless ``vpc_id``) whose zone offers ``instance_type`` (and is
    ``zone``, where the weights volume is) and whose default route fits ``public``: an
    internet gateway for a public host, a NAT path for a private one; no way out at all for
    a ``sealed`` one (``egress none``) unless ``allow_route_out``. Raises ConfigError
    naming every candidate and what it lacks."""
    offered = set(_offered_zones(instance_type))
    candidates = [subnet_id] if subnet_id is not None else _vpc_subnet_ids(vpc_id)
    reasons = []
    for candidate in candidates:
        subnet = aws.ec2.get_subnet(id=candidate)
        where = f"{candidate} ({subnet.availability_zone})"
        if zone is not None and subnet.availability_zone != zone:
            reasons.append(f"{where}: the weights volume is in {zone}")
            continue
        if subnet.availability_zone not in offered:
            reasons.append(f"{where}: {instance_type} is not offered in that zone")
            continue
        table_id, routes = _route_table(candidate, subnet.vpc_id)
        kind, target = default_route_egress(routes)
        detail = target if kind == "none" else f"0.0.0.0/0 goes to {target}"
        if sealed:
            refused = check_route_out(where, kind, target, allow_route_out=allow_route_out)
            if refused is not None:
                reasons.append(refused)
                continue
            return Placement(candidate, subnet.availability_zone, subnet.vpc_id, table_id)
        if public and kind != "igw":
            reasons.append(
                f"{where}: a public host needs a 0.0.0.0/0 route to an internet gateway ({detail})"
            )
            continue
        if not public and kind != "nat":
            reasons.append(
                f"{where}: a private host needs a 0.0.0.0/0 route through a NAT gateway "
                "(or NAT instance or transit gateway) to install Docker, pull the image, "
                f"download the weights and reach SSM ({detail})"
            )
            continue
        return Placement(candidate, subnet.availability_zone, subnet.vpc_id, table_id)
    if not candidates:
        reasons.append("no subnet found (create a default VPC, or set localai:subnetId)")
    key = "localai:subnetId" if subnet_id is not None else "localai:vpcId or localai:subnetId"
    raise ConfigError(
        "localai configuration cannot be deployed: no subnet fits the host:\n"
        + "\n".join(f"  - {reason}" for reason in reasons)
        + f"\n  Set {key} to a subnet that fits"
        + (" (a private subnet with a NAT route)." if not (public or sealed) else ".")
    )


def deployed_weights_volume(resource_prefix: str) -> DeployedVolume | None:
    """The weights volume this stack has attached now, its size and zone (plain invokes,
    before any resource), found by the tags the host gives it; None before the first
    deploy. The host stays in that zone and the volume never shrinks."""
    found = aws.ebs.get_ebs_volumes(
        filters=[
            {"name": "tag:localai:stack", "values": [resource_prefix]},
            {"name": "tag:localai:role", "values": ["weights"]},
            # "available" too: between a host's replacement and the new host's attachment
            # the volume is detached, and a shrink or a zone change must still be refused.
            {"name": "status", "values": ["in-use", "available"]},
        ]
    )
    volumes = []
    for volume_id in sorted(found.ids):
        volume = aws.ebs.get_volume(filters=[{"name": "volume-id", "values": [volume_id]}])
        volumes.append(
            DeployedVolume(
                volume_id,
                volume.size,
                volume.availability_zone,
                volume.throughput,
                (volume.tags or {}).get(MODIFIED_AT_TAG),
            )
        )
    return max(volumes, key=lambda v: v.size_gb, default=None)


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
    egress: list[aws.ec2.SecurityGroupEgressArgs] | None = None,
) -> aws.ec2.SecurityGroup:
    """The API port from ``allowed_cidrs`` only (and SSH when opted in); all egress, or
    only ``egress`` (a sealed host's: components/aws/egress.py)."""
    ingress = [_ingress_rule(port, cidr, "LocalAI API") for cidr in allowed_cidrs]
    ingress += [_ingress_rule(22, cidr, "SSH (opted in)") for cidr in ssh_cidrs]
    return aws.ec2.SecurityGroup(
        f"{name}-sg",
        description="LocalAI endpoint: API port from allowedCidrs only",
        vpc_id=vpc_id,
        ingress=ingress,
        egress=egress
        if egress is not None
        else [
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


INTERFACE_ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages", "logs")
"""What the host reaches AWS for: its key and Session Manager (ssm, ssmmessages,
ec2messages; SSM User Guide, "Use VPC endpoints") and CloudWatch Logs (the awslogs driver)."""


def vpc_endpoints(
    name: str,
    *,
    placement: Placement,
    host_security_group: aws.ec2.SecurityGroup,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> list[aws.ec2.VpcEndpoint]:
    """Interface endpoints for SSM and CloudWatch Logs in the host's subnet (private DNS,
    HTTPS from the host only) and an S3 gateway endpoint on its route table: SSM and logs
    traffic stays in the VPC. The Docker install, image pull and weight downloads still
    need the NAT route. Private DNS needs the VPC's DNS support and hostnames on, and
    fails if another endpoint of the same service already has private DNS in the VPC."""
    endpoint_sg = aws.ec2.SecurityGroup(
        f"{name}-endpoints-sg",
        description="LocalAI VPC endpoints: HTTPS from the LocalAI host only",
        vpc_id=placement.vpc_id,
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp",
                from_port=443,
                to_port=443,
                security_groups=[host_security_group.id],
                description="LocalAI host",
            )
        ],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    endpoints = [
        aws.ec2.VpcEndpoint(
            f"{name}-endpoint-{service}",
            vpc_id=placement.vpc_id,
            service_name=aws.ec2.get_vpc_endpoint_service_output(
                service=service, service_type="Interface", opts=invoke
            ).service_name,
            vpc_endpoint_type="Interface",
            subnet_ids=[placement.subnet_id],
            security_group_ids=[endpoint_sg.id],
            private_dns_enabled=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for service in INTERFACE_ENDPOINT_SERVICES
    ]
    if placement.route_table_id is not None:
        endpoints.append(
            aws.ec2.VpcEndpoint(
                f"{name}-endpoint-s3",
                vpc_id=placement.vpc_id,
                service_name=aws.ec2.get_vpc_endpoint_service_output(
                    service="s3", service_type="Gateway", opts=invoke
                ).service_name,
                vpc_endpoint_type="Gateway",
                route_table_ids=[placement.route_table_id],
                tags=tags,
                opts=pulumi.ResourceOptions(parent=parent),
            )
        )
    return endpoints


@dataclass(frozen=True)
class FleetPlacement:
    """Where a fleet runs: one subnet per zone for the instances and for the load balancer."""

    vpc_id: str
    vpc_cidr: str
    instance_subnets: tuple[Placement, ...]
    load_balancer_subnets: tuple[Placement, ...]
    public_ips: bool
    """The instances' subnets reach the internet through an internet gateway, so the
    instances need public IPs to download (their security group admits only the load
    balancer)."""
    types_by_zone: dict[str, tuple[str, ...]]
    """Zone -> the fleet's types EC2 offers there (the group skips the others)."""

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(p.availability_zone for p in self.instance_subnets)


MIN_FLEET_ZONES = 2
"""An Application Load Balancer needs subnets in at least two zones (ELB User Guide,
"Subnets for your load balancer"), and one zone's outage must not stop the fleet."""


def _one_per_zone(placements: list[Placement]) -> list[Placement]:
    # An ALB takes at most one subnet per zone; the first by id wins.
    chosen: dict[str, Placement] = {}
    for placement in sorted(placements, key=lambda p: p.subnet_id):
        chosen.setdefault(placement.availability_zone, placement)
    return sorted(chosen.values(), key=lambda p: p.availability_zone)


def _describe(subnet_ids: list[str]) -> list[tuple[Placement, str]]:
    """Each subnet with what its default route reaches ("igw", "nat" or "none: ...")."""
    described = []
    for subnet_id in subnet_ids:
        subnet = aws.ec2.get_subnet(id=subnet_id)
        table_id, routes = _route_table(subnet_id, subnet.vpc_id)
        kind, target = default_route_egress(routes)
        placement = Placement(subnet_id, subnet.availability_zone, subnet.vpc_id, table_id)
        described.append((placement, kind if kind != "none" else f"none: {target}"))
    return described


def choose_fleet_subnets(
    *,
    instance_types: list[str],
    subnet_ids: list[str] | None,
    load_balancer_subnet_ids: list[str] | None,
    vpc_id: str | None,
    internal: bool,
    sealed: bool = False,
    allow_route_out: bool = False,
) -> FleetPlacement:
    """The fleet's subnets, with plain invokes before any resource. Instances go to the
    candidates (``fleet.subnetIds``, else the VPC's subnets: the default VPC's default
    subnets unless ``localai:vpcId``) whose zone offers at least one of the types and
    whose default route leads out: NAT subnets if two zones have them, else internet-
    gateway subnets with public IPs. The load balancer goes to ``loadBalancerSubnetIds``,
    else to the instance subnets (internal) or the internet-gateway subnets (internet-
    facing) in the same zones. ``sealed`` (``egress none``) instances go to subnets with no
    way out (or any, with ``allow_route_out``) and never get public IPs. Raises ConfigError
    naming every subnet and what it lacks."""
    offered: dict[str, list[str]] = {}
    for instance_type in instance_types:
        for zone in _offered_zones(instance_type):
            offered.setdefault(zone, []).append(instance_type)
    candidates = sorted(subnet_ids) if subnet_ids is not None else _vpc_subnet_ids(vpc_id)
    described = _describe(candidates)
    reasons: list[str] = []
    vpcs = {p.vpc_id for p, _ in described}
    if len(vpcs) > 1:
        raise ConfigError(
            "localai configuration is invalid:\n  - localai:fleet.subnetIds are in "
            f"several VPCs ({', '.join(sorted(vpcs))}): list subnets of one VPC"
        )
    usable: dict[str, list[Placement]] = {"igw": [], "nat": [], "sealed": []}
    for placement, kind in described:
        where = f"{placement.subnet_id} ({placement.availability_zone})"
        if placement.availability_zone not in offered:
            reasons.append(f"{where}: none of {', '.join(instance_types)} is offered there")
        elif sealed:
            if kind == "igw":
                usable["igw"].append(placement)  # for an internet-facing load balancer
            detail = {"igw": "an internet gateway", "nat": "a NAT path"}.get(kind, "")
            refused = check_route_out(where, kind, detail, allow_route_out=allow_route_out)
            if refused is None:
                usable["sealed"].append(placement)
            else:
                reasons.append(refused)
        elif kind not in usable:
            reasons.append(
                f"{where}: no way out for downloads and SSM ({kind.removeprefix('none: ')})"
            )
        else:
            usable[kind].append(placement)
    nat, igw = _one_per_zone(usable["nat"]), _one_per_zone(usable["igw"])
    instances, public_ips = (nat, False) if len(nat) >= MIN_FLEET_ZONES else (igw, True)
    if sealed:
        instances, public_ips = _one_per_zone(usable["sealed"]), False
    if load_balancer_subnet_ids is not None:
        lb_described = _describe(sorted(load_balancer_subnet_ids))
        if not internal:
            for placement, kind in lb_described:
                if kind != "igw":
                    reasons.append(
                        f"{placement.subnet_id} ({placement.availability_zone}): an "
                        "internet-facing load balancer needs a 0.0.0.0/0 route to an "
                        f"internet gateway ({kind})"
                    )
        balancer = _one_per_zone([p for p, kind in lb_described if internal or kind == "igw"])
    else:
        balancer = instances if internal else igw
        if sealed and not internal and len(igw) < MIN_FLEET_ZONES:
            reasons.append(
                "an internet-facing load balancer in front of sealed instances needs "
                "subnets with an internet gateway route: set fleet.loadBalancerSubnetIds "
                "(or fleet.internal true)"
            )
    lb_zones = {p.availability_zone for p in balancer}
    # An ALB routes only to targets in its enabled zones.
    instances = [p for p in instances if p.availability_zone in lb_zones]
    if len(instances) < MIN_FLEET_ZONES or len(balancer) < MIN_FLEET_ZONES:
        reasons.append(
            f"the instances can use {len(instances)} zone(s) and the load balancer "
            f"{len(balancer)} of the same zones; both need at least {MIN_FLEET_ZONES}"
        )
        raise ConfigError(
            "localai configuration cannot be deployed: the fleet needs subnets in two "
            "zones:\n"
            + "\n".join(f"  - {reason}" for reason in reasons)
            + "\n  Set localai:fleet.subnetIds (and loadBalancerSubnetIds) to subnets in "
            "two or more zones"
        )
    vpc = aws.ec2.get_vpc(id=next(iter(vpcs)))
    zones = {p.availability_zone for p in instances}
    return FleetPlacement(
        vpc_id=vpc.id,
        vpc_cidr=vpc.cidr_block,
        instance_subnets=tuple(instances),
        load_balancer_subnets=tuple(balancer),
        public_ips=public_ips,
        types_by_zone={z: tuple(offered[z]) for z in sorted(zones)},
    )
