"""The fleet's front door: an Application Load Balancer, its listeners, target group,
TLS certificate and the security-group chain (callers -> load balancer -> instances).

Every resource is a child of the fleet component and named from its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.egress import SealedNetwork
from components.aws.network import FleetPlacement
from components.aws_limits import ALB_TLS_POLICY

HTTPS_PORT = 443
HTTP_PORT = 80
UNHEALTHY_AFTER_CHECKS = 10
"""ELB's maximum: 10 failed checks 15 s apart (150 s) before a target is unhealthy, and the
group (ELB health checks) replaces it. A LocalAI restart (a key rotation, a GPU retry)
closes the port for the container's stop and start, well under that; a dead host is still
found within three minutes."""
HEALTH_CHECK_PATH = "/readyz"
"""LocalAI v2.24.0's /readyz answers a bare 200, without a key, as soon as the HTTP server
listens (core/http/routes/health.go; keys never protect it); it says nothing about the
model. Model readiness is the lifecycle hook's job: an instance is registered only after
its warm-up's completion on the default model succeeded (README "Scaling out")."""


def _cidr_ingress(
    prefix: str,
    group: aws.ec2.SecurityGroup,
    port: int,
    cidr: str,
    description: str,
    tags: dict[str, str],
) -> aws.vpc.SecurityGroupIngressRule:
    """TCP ``port`` from ``cidr``, named by the CIDR, not its position in a list: removing
    one network leaves the other rules be."""
    return aws.vpc.SecurityGroupIngressRule(
        f"{prefix}-{cidr.replace('/', '_')}",
        security_group_id=group.id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        cidr_ipv4=cidr,
        description=description,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=group),
    )


@dataclass(frozen=True)
class TlsChoice:
    """``certificate_arn`` given, or requested from ACM for ``domain_name`` in ``zone_id``;
    all None: plain HTTP (restricted to allowedCidrs, with a warning)."""

    certificate_arn: str | None = None
    domain_name: str | None = None
    zone_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.certificate_arn is not None or self.zone_id is not None


@dataclass(frozen=True)
class LoadBalancerArgs:
    placement: FleetPlacement
    port: int
    """The instances' API port."""
    allowed_cidrs: Sequence[str]
    internal: bool
    tls: TlsChoice
    idle_timeout_s: int
    deregistration_delay_s: int
    resource_prefix: str
    tags: dict[str, str]
    ssh_cidrs: Sequence[str] = ()
    sealed: SealedNetwork | None = None
    """``egress none``: the instances may reach these endpoints and S3 only."""


class FleetLoadBalancer:
    """Not a component of its own: its resources are the fleet's children (one unit)."""

    def __init__(self, name: str, args: LoadBalancerArgs, parent: pulumi.Resource) -> None:
        opts = pulumi.ResourceOptions(parent=parent)
        tags = args.tags
        callers = list(args.allowed_cidrs) or [args.placement.vpc_cidr]
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-lb-sg",
            description="LocalAI load balancer: listeners from allowedCidrs only",
            vpc_id=args.placement.vpc_id,
            tags={**tags, "Name": f"{args.resource_prefix}-load-balancer"},
            opts=opts,
        )
        ports = [HTTPS_PORT, HTTP_PORT] if args.tls.enabled else [HTTP_PORT]
        for port in ports:
            for cidr in callers:
                _cidr_ingress(
                    f"{name}-lb-in-{port}",
                    self.security_group,
                    port,
                    cidr,
                    "HTTPS from allowedCidrs" if port == HTTPS_PORT else "HTTP from allowedCidrs",
                    tags,
                )
        self.instance_security_group = aws.ec2.SecurityGroup(
            f"{name}-instances-sg",
            description="LocalAI fleet instances: API port from the load balancer only",
            vpc_id=args.placement.vpc_id,
            tags={**tags, "Name": f"{args.resource_prefix}-instances"},
            opts=opts,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-instances-in-api",
            security_group_id=self.instance_security_group.id,
            ip_protocol="tcp",
            from_port=args.port,
            to_port=args.port,
            referenced_security_group_id=self.security_group.id,
            description="LocalAI API from the load balancer",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self.instance_security_group),
        )
        for cidr in args.ssh_cidrs:
            _cidr_ingress(
                f"{name}-instances-in-ssh",
                self.instance_security_group,
                22,
                cidr,
                "SSH (opted in)",
                tags,
            )
        if args.sealed is not None:
            args.sealed.fleet_egress_rules(name, self.instance_security_group, tags)
        else:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-instances-out",
                security_group_id=self.instance_security_group.id,
                ip_protocol="-1",
                cidr_ipv4="0.0.0.0/0",
                description="image pulls, model downloads, SSM, CloudWatch, Auto Scaling",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self.instance_security_group),
            )
        # The provider revokes a new group's default allow-all egress (terraform-provider-
        # aws, resource aws_security_group, Create): the load balancer may reach the
        # instances' API port and nothing else.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-lb-out-api",
            security_group_id=self.security_group.id,
            ip_protocol="tcp",
            from_port=args.port,
            to_port=args.port,
            referenced_security_group_id=self.instance_security_group.id,
            description="to the instances' API port",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self.security_group),
        )
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-lb",
            load_balancer_type="application",
            internal=args.internal,
            security_groups=[self.security_group.id],
            subnets=[p.subnet_id for p in args.placement.load_balancer_subnets],
            idle_timeout=args.idle_timeout_s,
            drop_invalid_header_fields=True,
            tags={**tags, "Name": args.resource_prefix},
            opts=opts,
        )
        self.target_group = aws.lb.TargetGroup(
            f"{name}-targets",
            port=args.port,
            protocol="HTTP",
            target_type="instance",
            vpc_id=args.placement.vpc_id,
            deregistration_delay=args.deregistration_delay_s,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                path=HEALTH_CHECK_PATH,
                protocol="HTTP",
                matcher="200",
                interval=15,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=UNHEALTHY_AFTER_CHECKS,
            ),
            tags=tags,
            opts=opts,
        )
        forward = [
            aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=self.target_group.arn)
        ]
        self.listeners: list[aws.lb.Listener] = []
        self.dns_records: list[aws.route53.Record] = []
        """The alias record OPENAI_BASE_URL names, when the stack creates one."""
        self.host: pulumi.Output[str] = self.load_balancer.dns_name
        redirect = [
            aws.lb.ListenerDefaultActionArgs(
                type="redirect",
                redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301"
                ),
            )
        ]
        if args.tls.enabled:
            certificate_arn = self._certificate(name, args, tags, opts)
            self.listeners.append(
                aws.lb.Listener(
                    f"{name}-https",
                    load_balancer_arn=self.load_balancer.arn,
                    port=HTTPS_PORT,
                    protocol="HTTPS",
                    ssl_policy=ALB_TLS_POLICY,
                    certificate_arn=certificate_arn,
                    default_actions=forward,
                    tags=tags,
                    opts=opts,
                )
            )
        self.listeners.append(
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=self.load_balancer.arn,
                port=HTTP_PORT,
                protocol="HTTP",
                default_actions=redirect if args.tls.enabled else forward,
                tags=tags,
                # One port-80 listener in both modes, updated in place when TLS is turned
                # on or off: two logical names would create the new listener before
                # deleting the old one, and ELB refuses a second listener on a port
                # (DuplicateListener). Stacks deployed with TLS before knew it by the alias.
                opts=pulumi.ResourceOptions(
                    parent=parent, aliases=[pulumi.Alias(name=f"{name}-http-redirect")]
                ),
            )
        )
        if args.tls.enabled:
            assert args.tls.domain_name is not None  # settings: TLS needs domainName
            self.host = pulumi.Output.from_input(args.tls.domain_name)
            if args.tls.zone_id is not None:
                alias = aws.route53.Record(
                    f"{name}-alias",
                    zone_id=args.tls.zone_id,
                    name=args.tls.domain_name,
                    type="A",
                    aliases=[
                        aws.route53.RecordAliasArgs(
                            name=self.load_balancer.dns_name,
                            zone_id=self.load_balancer.zone_id,
                            evaluate_target_health=True,
                        )
                    ],
                    opts=opts,
                )
                self.dns_records.append(alias)
        scheme = "https" if args.tls.enabled else "http"
        self.base_url = pulumi.Output.format("{0}://{1}/v1", scheme, self.host)
        self.health_url = pulumi.Output.format("{0}://{1}{2}", scheme, self.host, HEALTH_CHECK_PATH)
        # ALBRequestCountPerTarget's label: "app/<lb>/<id>/targetgroup/<tg>/<id>" (EC2 Auto
        # Scaling API Reference, PredefinedMetricSpecification.ResourceLabel).
        self.resource_label = pulumi.Output.concat(
            self.load_balancer.arn_suffix, "/", self.target_group.arn_suffix
        )

    def _certificate(
        self,
        name: str,
        args: LoadBalancerArgs,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        if args.tls.certificate_arn is not None:
            return pulumi.Output.from_input(args.tls.certificate_arn)
        assert args.tls.domain_name is not None and args.tls.zone_id is not None
        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            domain_name=args.tls.domain_name,
            validation_method="DNS",
            tags=tags,
            opts=opts,
        )
        # One name, so one validation option (ACM lists one per name on the certificate).
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-certificate-validation",
            zone_id=args.tls.zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=300,
            allow_overwrite=True,
            opts=pulumi.ResourceOptions(parent=certificate),
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate-validated",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=pulumi.ResourceOptions(parent=certificate),
        )
        return validation.certificate_arn
