"""The AWS target: one EC2 VM running LocalAI, weights on an EBS volume that outlives it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.api_key import endpoint_api_key
from components.aws.access import (
    FLEET_TYPE,
    HOST_TYPE,
    hf_token_parameter_name,
    host_access,
    key_parameter_name,
    log_group_name,
    moved_from,
)
from components.aws.bootstrap.cloud_init import BootstrapSpec, render_user_data_base64
from components.aws.egress import (
    METRICS_SERVICE,
    SEALED_INTERFACE_SERVICES,
    SealedNetwork,
    sealed_network,
)
from components.aws.launch import (
    HostIdentity,
    HostImage,
    ResolvedAmi,
    metadata_options,
)
from components.aws.network import (
    MODIFIED_AT_TAG,
    Placement,
    endpoint_security_group,
    vpc_endpoints,
)
from components.aws.observability import namespace, observability
from components.aws.schedule import instance_schedule
from components.aws.stores import MirroredStores, bootstrap_bundle, store_access
from components.aws_limits import gp3_iops_for
from components.errors import ConfigError
from components.readiness.command import wait_for_endpoint
from components.serving import ServingArgs
from components.settings import ScheduleSettings
from components.sizing.instance_types import InstanceType

MOUNT_POINT = "/var/lib/localai"
ATTACH_DEVICE_NAME = "/dev/sdf"  # the API needs one; on Nitro the disk shows up as NVMe
KEY_RELOAD_GRACE_S = 180
"""After a key rotation the host loads the new key within about a minute (the key-watch
timer runs every 30 s, then LocalAI restarts with its weights on the volume): the wait
retries 401s that long."""
VOLUME_WAIT_S = 900  # on replacement the old host is stopped before the volume moves


@dataclass(frozen=True)
class AwsHostArgs:
    """Everything the host needs, already validated and sized."""

    serving: ServingArgs
    instance: InstanceType
    image: HostImage
    ami: ResolvedAmi
    cpu_image: str
    gpu_image: str
    gpu_capable: bool
    """Try the GPU at boot (the type has one and the stack did not ask for CPU)."""
    cpu_model_files: Mapping[str, str]
    gpu_model_files: Mapping[str, str]
    public: bool
    allowed_cidrs: Sequence[str]
    volume_size_gb: int
    volume_throughput: int
    root_volume_size_gb: int
    placement: Placement
    weights_manifest: str
    """What the host's fetcher downloads and verifies before LocalAI starts."""
    """The subnet, zone and VPC (:func:`components.aws.network.choose_subnet`)."""
    log_retention_days: int
    resource_prefix: str
    """Stable prefix for cloud-side names (SSM parameter, log group): project-stack."""
    ssh_key_name: str | None = None
    ssh_cidrs: Sequence[str] = ()
    create_vpc_endpoints: bool = False
    """Interface endpoints for SSM and logs plus an S3 gateway endpoint (``vpcEndpoints``)."""
    existing_volume_id: str | None = None
    """Attach this EBS volume (e.g. one kept by an earlier ``pulumi destroy``) instead of
    creating one; the stack never deletes it. ``placement`` is then in its zone."""
    tags: Mapping[str, str] = field(default_factory=dict)
    volume_modified_at: str | None = None
    """The weights volume's localai:modified-at tag (components/aws/network.py)."""
    sealed: MirroredStores | None = None
    """``egress none``: the mirrored stores the host reads (``cpu_image``, ``gpu_image`` and
    ``weights_manifest`` then point into them); the host reaches nothing but the VPC's
    endpoints (components/aws/egress.py)."""
    vpc_cidr: str = ""
    """The VPC's CIDR (a sealed host's endpoints admit HTTPS from it)."""
    schedule: ScheduleSettings | None = None
    """Stop and start times (components/aws/schedule.py)."""
    alarm_email: str | None = None
    """Subscribed to the alarms' topic (components/aws/observability.py)."""
    host_metrics: bool = True
    """Install the CloudWatch agent (metrics_agent.py) and alarm on the weights disk."""


class AwsHost(pulumi.ComponentResource):
    """One EC2 instance serving LocalAI's OpenAI-compatible API."""

    base_url: pulumi.Output[str]
    api_key: pulumi.Output[str]
    health_url: pulumi.Output[str]
    instance_id: pulumi.Output[str]
    ami_id: pulumi.Output[str]
    volume_id: pulumi.Output[str]
    public_ip: pulumi.Output[str | None]
    private_ip: pulumi.Output[str]
    region: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    ssm_port_forward: pulumi.Output[str]
    """The full `aws ssm start-session ...` port-forward command."""
    dashboard_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: AwsHostArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(HOST_TYPE, name, None, opts)
        serving = args.serving
        tags = {"localai:stack": args.resource_prefix, **args.tags}
        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        moved = moved_from(FLEET_TYPE, name)
        self.api_key = endpoint_api_key(name, serving.api_key, parent=self, aliases=moved)

        placement = args.placement
        key_parameter, log_group, identity = host_access(
            name,
            api_key=self.api_key,
            hf_token=args.serving.hf_token,
            resource_prefix=args.resource_prefix,
            log_retention_days=args.log_retention_days,
            tags=tags,
            parent=self,
            aliases=moved,
            metrics_namespace=namespace(args.resource_prefix) if args.host_metrics else None,
        )
        sealed, endpoints = None, []
        if args.sealed is not None:
            sealed, endpoints = sealed_access(
                name,
                args.sealed,
                subnets=[placement],
                vpc_cidr=args.vpc_cidr,
                role_name=identity.role_name,
                tags=tags,
                parent=self,
                # The CloudWatch agent's PutMetricData (its .deb comes through the S3
                # gateway endpoint, like the weights).
                services=(
                    (*SEALED_INTERFACE_SERVICES, METRICS_SERVICE)
                    if args.host_metrics
                    else SEALED_INTERFACE_SERVICES
                ),
                # Its files come as a bundle from the bucket (bootstrap_spec).
                bundles=True,
            )
        security_group = endpoint_security_group(
            name,
            port=serving.port,
            allowed_cidrs=args.allowed_cidrs,
            ssh_cidrs=args.ssh_cidrs,
            vpc_id=placement.vpc_id,
            resource_prefix=args.resource_prefix,
            tags=tags,
            parent=self,
            egress=sealed.host_egress() if sealed is not None else None,
        )
        if sealed is None and args.create_vpc_endpoints:
            endpoints = [
                *vpc_endpoints(
                    name,
                    placement=placement,
                    host_security_group=security_group,
                    tags=tags,
                    parent=self,
                )
            ]
        volume_id = self._weights_volume(name, args, tags)
        spec = pulumi.Output.all(volume_id, self.region, log_group.name, key_parameter.name).apply(
            lambda v: bootstrap_spec(args, *v)
        )
        if args.sealed is not None:
            endpoints.append(
                bootstrap_bundle(name, args.sealed.bucket, spec, tags=tags, parent=self)
            )
        instance = self._create_instance(
            name,
            args,
            tags,
            placement=placement,
            security_group=security_group,
            identity=identity,
            boot_after=[*identity.policies, *endpoints],
            user_data=spec.apply(render_user_data_base64),
        )
        attachment = aws.ec2.VolumeAttachment(
            f"{name}-weights-attachment",
            device_name=ATTACH_DEVICE_NAME,
            volume_id=volume_id,
            instance_id=instance.id,
            # On replacement: stop the old host (clean unmount), detach, then attach.
            stop_instance_before_detaching=True,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        endpoint_host, ready_after = self._create_address(name, args, tags, instance, attachment)
        if args.schedule is not None:
            instance_schedule(name, args.schedule, instance_id=instance.id, tags=tags, parent=self)
        dashboard = observability(
            name,
            resource_prefix=args.resource_prefix,
            log_group_name=log_group.name,
            region=self.region,
            alarm_email=args.alarm_email,
            tags=tags,
            parent=self,
            instance_id=instance.id,
            gpu=args.gpu_capable,
            host_metrics=args.host_metrics,
        )
        self.dashboard_name = dashboard.dashboard_name

        self.base_url = pulumi.Output.format("http://{0}:{1}/v1", endpoint_host, serving.port)
        self.health_url = pulumi.Output.format("http://{0}:{1}/readyz", endpoint_host, serving.port)
        self.instance_id = instance.id
        self.ami_id = instance.ami
        self.volume_id = volume_id
        self.private_ip = instance.private_ip
        self.log_group_name = log_group.name
        self.ssm_port_forward = pulumi.Output.all(instance.id, self.region).apply(
            lambda v: ssm_port_forward_command(v[0], v[1], serving.port)
        )
        # The key's version is a trigger: a rotated key re-runs the wait, which then proves
        # the host loaded it (localai-key-watch.timer) and refuses any other key.
        self._check_readiness(
            name,
            args,
            triggers=[instance.id, volume_id, key_parameter.version],
            after=ready_after,
        )

        self.register_outputs(
            {
                "base_url": self.base_url,
                "api_key": self.api_key,
                "health_url": self.health_url,
                "instance_id": self.instance_id,
                "ami_id": self.ami_id,
                "volume_id": self.volume_id,
                "public_ip": self.public_ip,
                "private_ip": self.private_ip,
                "region": self.region,
                "log_group_name": self.log_group_name,
                "ssm_port_forward": self.ssm_port_forward,
                "dashboard_name": self.dashboard_name,
            }
        )

    def _create_instance(
        self,
        name: str,
        args: AwsHostArgs,
        tags: dict[str, str],
        *,
        placement: Placement,
        security_group: aws.ec2.SecurityGroup,
        identity: HostIdentity,
        boot_after: list[pulumi.Resource],
        user_data: pulumi.Output[str],
    ) -> aws.ec2.Instance:
        # user_data is gzip + base64: cloud-init unpacks it, and EC2's 16 KiB limit then
        # holds about twice the models. check_user_data() has already rendered it once.
        return aws.ec2.Instance(
            args.image.instance_name(name),
            ami=args.ami.ami_id,
            instance_type=args.instance.name,
            subnet_id=placement.subnet_id,
            vpc_security_group_ids=[security_group.id],
            iam_instance_profile=identity.instance_profile_name,
            associate_public_ip_address=args.public,
            key_name=args.ssh_key_name,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**metadata_options()),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3",
                volume_size=args.root_volume_size_gb,
                encrypted=True,
                delete_on_termination=True,
            ),
            user_data_base64=user_data,
            user_data_replace_on_change=True,
            tags={**tags, "Name": args.resource_prefix},
            volume_tags=None,
            # A new AMI release must not replace a running host by surprise: the AMI is
            # ignored after creation unless localai:amiId pins it (README "Updating the
            # AMI"). A change of family is a new instance name (HostImage.instance_name).
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=[] if args.ami.pinned else ["ami"],
                depends_on=boot_after,
            ),
        )

    def _create_address(
        self,
        name: str,
        args: AwsHostArgs,
        tags: dict[str, str],
        instance: aws.ec2.Instance,
        attachment: aws.ec2.VolumeAttachment,
    ) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
        """The host the endpoint URL names, and what must exist before it answers:
        an Elastic IP when public (stable across replacements), else the SSM forward."""
        if not args.public:
            self.public_ip = pulumi.Output.from_input(None)
            return pulumi.Output.from_input("127.0.0.1"), [attachment]
        address = aws.ec2.Eip(
            f"{name}-address",
            domain="vpc",
            tags={**tags, "Name": args.resource_prefix},
            opts=pulumi.ResourceOptions(parent=self),
        )
        association = aws.ec2.EipAssociation(
            f"{name}-address-association",
            allocation_id=address.allocation_id,
            instance_id=instance.id,
            opts=pulumi.ResourceOptions(parent=address),
        )
        self.public_ip = address.public_ip
        return address.public_ip, [association, attachment]

    def _check_readiness(
        self,
        name: str,
        args: AwsHostArgs,
        *,
        triggers: list[pulumi.Input[object]],
        after: list[pulumi.Resource],
    ) -> None:
        """Public: ``pulumi up`` waits for the default model. Private: say how to check."""
        serving = args.serving
        if args.public and serving.wait_for_ready:
            wait_for_endpoint(
                f"{name}-ready",
                base_url=self.base_url,
                api_key=self.api_key,
                model=serving.default_model,
                timeout_s=serving.ready_timeout_seconds,
                triggers=triggers,
                parent=self,
                depends_on=after,
                extra_args=[
                    "--auth-grace",
                    str(KEY_RELOAD_GRACE_S),
                    "--check-other-key-refused",
                ],
                hint=(
                    "Check that this machine's address is in localai:allowedCidrs, and the "
                    "host's log: aws logs tail "
                    f"{log_group_name(args.resource_prefix)} --follow (or set "
                    "localai:waitForReady false)."
                ),
            )
        elif not args.public:
            self.ssm_port_forward.apply(
                lambda cmd: (
                    pulumi.log.info(
                        "private endpoint: readiness is not checked from here. Forward the "
                        f"port with `{cmd}`, then "
                        f"`curl -fsS http://127.0.0.1:{serving.port}/readyz` "
                        "and run examples/python/chat.py",
                        resource=self,
                    )
                    if not pulumi.runtime.is_dry_run()
                    else None
                )
            )

    def _weights_volume(
        self, name: str, args: AwsHostArgs, tags: dict[str, str]
    ) -> pulumi.Output[str]:
        """The weights volume's id: the configured existing one, or a new one.

        A new volume depends on the subnet's AZ only, never on the instance: changing
        the instance type, AMI or user data replaces the instance, not the volume."""
        if args.existing_volume_id is not None:
            return pulumi.Output.from_input(args.existing_volume_id)
        volume = aws.ebs.Volume(
            f"{name}-weights",
            availability_zone=args.placement.availability_zone,
            size=args.volume_size_gb,
            type="gp3",
            # gp3 refuses throughput > IOPS x 0.25: 3,000 (included) up to 750 MiB/s.
            iops=gp3_iops_for(args.volume_throughput),
            throughput=args.volume_throughput,
            encrypted=True,
            tags={
                **tags,
                "Name": f"{args.resource_prefix}-weights",
                "localai:role": "weights",
                **(
                    {MODIFIED_AT_TAG: args.volume_modified_at}
                    if args.volume_modified_at is not None
                    else {}
                ),
            },
            opts=pulumi.ResourceOptions(
                parent=self, retain_on_delete=args.serving.keep_volume_on_destroy
            ),
        )
        return volume.id


def sealed_access(
    name: str,
    stores: MirroredStores,
    *,
    subnets: Sequence[Placement],
    vpc_cidr: str,
    role_name: pulumi.Input[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
    services: Sequence[str] = SEALED_INTERFACE_SERVICES,
    bundles: bool = False,
) -> tuple[SealedNetwork, list[pulumi.Resource]]:
    """``egress none`` for the single host and the fleet alike: the VPC endpoints, the
    role's read access to the stores and the bucket's policy; and everything of them the
    hosts must boot after."""
    network = sealed_network(
        name, subnets=subnets, vpc_cidr=vpc_cidr, tags=tags, parent=parent, services=services
    )
    access = store_access(
        name,
        stores,
        role_name=role_name,
        s3_endpoint=network.s3_endpoint,
        parent=parent,
        bundles=bundles,
    )
    return network, [*network.endpoints, *access]


def host_sources(
    stores: MirroredStores | None, *, cpu_image: str, gpu_image: str, manifest: str
) -> tuple[str, str, str]:
    """The CPU image, GPU image and weights manifest a host uses: the upstream ones, or
    (``egress none``) its stores'. A sealed host without a GPU never pulls its GPU image
    (its conf leaves it empty): the CPU image stands in, an image of the same registry."""
    if stores is None:
        return cpu_image, gpu_image, manifest
    return stores.cpu_image, stores.gpu_image or stores.cpu_image, stores.weights_manifest


def store_outputs(stores: MirroredStores | None) -> dict[str, str]:
    """A sealed stack's extra outputs: where its image and weights are mirrored."""
    if stores is None:
        return {}
    return {"imageRepository": stores.repository, "weightsBucket": stores.bucket}


def check_user_data(args: AwsHostArgs) -> None:
    """Render the bootstrap once with placeholder ids, so a spec that cannot work (too
    many models for EC2's user-data limit, a reserved env var) stops the preview with a
    clear message before any resource exists."""
    placeholder = bootstrap_spec(
        args,
        "vol-00000000000000000",
        "us-east-1",
        log_group_name(args.resource_prefix),
        key_parameter_name(args.resource_prefix),
    )
    try:
        render_user_data_base64(placeholder)
    except ValueError as exc:
        raise ConfigError(f"localai configuration cannot be deployed to EC2: {exc}") from None


def weights_device_path(volume_id: str) -> str:
    """The stable NVMe path of an EBS volume on Nitro (the serial is the volume id)."""
    return "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + volume_id.replace("-", "")


def ssm_port_forward_command(instance_id: str, region: str, port: int) -> str:
    return (
        f"aws ssm start-session --region {region} --target {instance_id} "
        "--document-name AWS-StartPortForwardingSession "
        f"--parameters portNumber={port},localPortNumber={port}"
    )


def shared_spec_fields(
    serving: ServingArgs,
    *,
    image: HostImage,
    cpu_image: str,
    gpu_image: str,
    weights_manifest: str,
    resource_prefix: str,
    region: str,
    log_group: str,
    key_parameter: str,
    ecr_registry: str = "",
) -> dict[str, object]:
    """The BootstrapSpec fields the single host and every fleet host have in common."""
    return {
        "mount_point": MOUNT_POINT,
        "cpu_image": cpu_image,
        "gpu_image": gpu_image,
        "install_docker": image.install_docker,
        "port": serving.port,
        "api_key_parameter": key_parameter,
        "region": region,
        "log_group": log_group,
        "default_model": serving.default_model,
        "parallel_requests": serving.parallel_requests,
        "extra_env": serving.server_env(),
        "weights_manifest": weights_manifest,
        "keep_removed_weights": serving.keep_removed_weights,
        "hf_token_parameter": (
            hf_token_parameter_name(resource_prefix) if serving.hf_token is not None else ""
        ),
        "ecr_registry": ecr_registry,
    }


def bootstrap_spec(
    args: AwsHostArgs, volume_id: str, region: str, log_group: str, key_parameter: str
) -> BootstrapSpec:
    serving = args.serving
    return BootstrapSpec(
        volume_device=weights_device_path(volume_id),
        gpu_capable=args.gpu_capable,
        cpu_models=dict(args.cpu_model_files),
        gpu_models=dict(args.gpu_model_files),
        cpu_limit=serving.cpu_limit,
        memory_limit_mb=serving.memory_limit_mb,
        threads=serving.threads,
        volume_wait_s=VOLUME_WAIT_S,
        never_format=args.existing_volume_id is not None,
        metrics_namespace=namespace(args.resource_prefix) if args.host_metrics else "",
        **shared_spec_fields(
            serving,
            image=args.image,
            cpu_image=args.cpu_image,
            gpu_image=args.gpu_image,
            weights_manifest=args.weights_manifest,
            resource_prefix=args.resource_prefix,
            region=region,
            log_group=log_group,
            key_parameter=key_parameter,
            ecr_registry=args.sealed.registry if args.sealed is not None else "",
        ),
        # A sealed host (the DLAMI: its aws CLI is there at first boot) fetches its files
        # from the stack's bucket: with the agent, ECR and s3_get they exceed 16 KiB.
        bundle_bucket=args.sealed.bucket if args.sealed is not None else "",
    )
