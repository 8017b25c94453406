"""``localai:egress none``: a host that reaches only AWS's regional services, through the
VPC's own endpoints, and nothing on the internet.

What the host calls, read from its scripts (components/aws/bootstrap/files/ and
components/weights/): ``aws ssm get-parameter`` (the key), Session Manager (ssm,
ssmmessages, ec2messages), ``aws logs`` and Docker's awslogs driver (logs), ``aws ecr
get-login-password`` (ecr.api), the image's manifest (ecr.dkr) and its layers (S3, behind
ECR), and the weights (``s3_get``: S3). Everything else is on the link-local and VPC
addresses that security groups do not filter (IMDS, the Amazon DNS resolver, Time Sync:
VPC User Guide, "Security group rules", the list of traffic security groups ignore).

So the host's security group allows out only HTTPS to the interface endpoints' security
group and HTTPS to S3's prefix list (the gateway endpoint on the subnet's route table).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.network import Placement
from components.errors import ConfigError

SEALED_INTERFACE_SERVICES = ("ssm", "ssmmessages", "ec2messages", "logs", "ecr.api", "ecr.dkr")
"""Interface endpoints a sealed host needs (see the module's docstring for each)."""
METRICS_SERVICE = "monitoring"
"""CloudWatch's metrics API (``monitoring.<region>.amazonaws.com``): a sealed host whose
CloudWatch agent publishes host metrics needs its interface endpoint."""
FLEET_INTERFACE_SERVICES = (*SEALED_INTERFACE_SERVICES, "autoscaling")
"""A fleet host also completes its launch lifecycle action and sends heartbeats
(``aws autoscaling complete-lifecycle-action``, localai-lifecycle.sh)."""
HTTPS = 443


@dataclass(frozen=True)
class SealedNetwork:
    """The endpoints a sealed host reaches, and what its security group may send to."""

    endpoint_security_group: aws.ec2.SecurityGroup
    interface_endpoints: list[aws.ec2.VpcEndpoint]
    s3_endpoint: aws.ec2.VpcEndpoint

    @property
    def endpoints(self) -> list[aws.ec2.VpcEndpoint]:
        return [*self.interface_endpoints, self.s3_endpoint]

    def fleet_egress_rules(
        self, name: str, security_group: aws.ec2.SecurityGroup, tags: dict[str, str]
    ) -> list[aws.vpc.SecurityGroupEgressRule]:
        """The same two rules as separate resources, for the fleet's instances' group
        (whose rules are all separate resources)."""
        opts = pulumi.ResourceOptions(parent=security_group)
        return [
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-instances-out-endpoints",
                security_group_id=security_group.id,
                ip_protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                referenced_security_group_id=self.endpoint_security_group.id,
                description="VPC interface endpoints (SSM, logs, ECR, Auto Scaling)",
                tags=tags,
                opts=opts,
            ),
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-instances-out-s3",
                security_group_id=security_group.id,
                ip_protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                prefix_list_id=self.s3_endpoint.prefix_list_id,
                description="S3 through the gateway endpoint (weights, image layers)",
                tags=tags,
                opts=opts,
            ),
        ]

    def host_egress(self) -> list[aws.ec2.SecurityGroupEgressArgs]:
        """The host's only egress rules: HTTPS to the endpoints, HTTPS to S3's prefix list."""
        return [
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                security_groups=[self.endpoint_security_group.id],
                description="VPC interface endpoints (SSM, logs, ECR)",
            ),
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                prefix_list_ids=[self.s3_endpoint.prefix_list_id],
                description="S3 through the gateway endpoint (weights, image layers)",
            ),
        ]


def check_ssh_inside_vpc(ssh_cidrs: Sequence[str], vpc_cidr: str) -> None:
    """A sealed host answers nothing outside its VPC: SSH only from inside it (a bastion's
    subnet); settings already refused public networks."""
    vpc = ipaddress.ip_network(vpc_cidr)
    outside = [c for c in ssh_cidrs if not ipaddress.ip_network(c).subnet_of(vpc)]
    if outside:
        raise ConfigError(
            f"localai configuration is invalid:\n  - localai:sshCidrs = {outside}: outside the "
            f"VPC ({vpc_cidr}), which a host with localai:egress none cannot answer; list "
            "networks inside it (a bastion's), or use SSM Session Manager"
        )


def sealed_network(
    name: str,
    *,
    subnets: Sequence[Placement],
    vpc_cidr: str,
    tags: dict[str, str],
    parent: pulumi.Resource,
    services: Sequence[str] = SEALED_INTERFACE_SERVICES,
) -> SealedNetwork:
    """The interface endpoints (private DNS) in the hosts' subnets (one per zone) behind a
    security group that admits HTTPS from the VPC, and the S3 gateway endpoint on their
    route tables. The endpoints' group admits the VPC's CIDR rather than the hosts' group,
    so the hosts' group can name this one in its egress without a cycle. The hosts boot
    after all of them (their ``depends_on``)."""
    no_table = [p.subnet_id for p in subnets if p.route_table_id is None]
    if no_table:
        raise ConfigError(
            f"localai configuration cannot be deployed: subnet {', '.join(no_table)} has no "
            "route table (neither its own nor the VPC's main one) for the S3 gateway endpoint"
        )
    vpc_id = subnets[0].vpc_id
    endpoint_sg = aws.ec2.SecurityGroup(
        f"{name}-sealed-endpoints-sg",
        description="LocalAI VPC endpoints: HTTPS from the VPC",
        vpc_id=vpc_id,
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                cidr_blocks=[vpc_cidr],
                description="the VPC (the LocalAI hosts)",
            )
        ],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    interface = [
        aws.ec2.VpcEndpoint(
            f"{name}-endpoint-{service.replace('.', '-')}",
            vpc_id=vpc_id,
            service_name=aws.ec2.get_vpc_endpoint_service_output(
                service=service, service_type="Interface", opts=invoke
            ).service_name,
            vpc_endpoint_type="Interface",
            subnet_ids=[p.subnet_id for p in subnets],
            security_group_ids=[endpoint_sg.id],
            private_dns_enabled=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for service in services
    ]
    s3 = aws.ec2.VpcEndpoint(
        f"{name}-endpoint-s3",
        vpc_id=vpc_id,
        service_name=aws.ec2.get_vpc_endpoint_service_output(
            service="s3", service_type="Gateway", opts=invoke
        ).service_name,
        vpc_endpoint_type="Gateway",
        route_table_ids=sorted({str(p.route_table_id) for p in subnets}),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return SealedNetwork(endpoint_sg, interface, s3)
