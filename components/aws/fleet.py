"""The AWS fleet: the single host's launch settings on an Auto Scaling group behind an
Application Load Balancer, in service only once the model answers.

EC2 Auto Scaling and ELB do all the work (no scheduler, proxy or health daemon of ours):

- one launch template (AMI of the types' family, IMDSv2 with hop limit 1, the instance
  profile, encrypted gp3 root and weights volumes, the gzipped cloud-init of
  ``components/aws/bootstrap/cloud_init.py`` with a profile per type);
- the group over subnets in two or more zones, a mixed-instances policy over the ordered
  types (or the one type, with a warm pool), ELB health checks, instance refresh when the
  template changes, and a launch lifecycle hook that the host completes after its warm-up;
- the load balancer, listeners and security-group chain (``load_balancer.py``), and target
  tracking on ``ALBRequestCountPerTarget``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.api_key import endpoint_api_key
from components.aws.access import (
    FLEET_TYPE,
    HOST_TYPE,
    host_access,
    key_parameter_name,
    log_group_name,
    moved_from,
)
from components.aws.bootstrap.cloud_init import (
    KEY_RESTART_SPREAD_S,
    BootstrapSpec,
    FleetBoot,
    HostProfile,
    render_user_data_base64,
)
from components.aws.bootstrap_bucket import bootstrap_bucket
from components.aws.egress import FLEET_INTERFACE_SERVICES, METRICS_SERVICE
from components.aws.host import KEY_RELOAD_GRACE_S, sealed_access, shared_spec_fields
from components.aws.launch import HostImage, ResolvedAmi, metadata_options
from components.aws.load_balancer import FleetLoadBalancer, LoadBalancerArgs, TlsChoice
from components.aws.network import FleetPlacement
from components.aws.observability import FleetTargets, namespace, observability
from components.aws.schedule import fleet_schedule
from components.aws.stores import MirroredStores, bootstrap_bundle
from components.aws_limits import gp3_iops_for
from components.readiness.command import wait_for_endpoint, wait_for_rollout
from components.serving import ServingArgs
from components.settings import FleetScheduleEntry

WEIGHTS_DEVICE_NAME = "/dev/sdf"
"""The block device mapping's name; on Nitro the disk is NVMe and the host finds it by
its EBS model and serial (localai-host-profile), not by this name."""
LIFECYCLE_HEARTBEAT_TIMEOUT_S = 900
"""Without a heartbeat for this long the hook abandons the instance. The host records one
every 2 minutes while its warm-up runs (localai-lifecycle-heartbeat.timer), so this
catches a host that never got that far (cloud-init failed, no network) in 15 minutes."""
VOLUME_WAIT_S = 300
HEALTH_CHECK_GRACE_S = 60
"""With a launch lifecycle hook the grace period starts only once the hook completes
(EC2 Auto Scaling User Guide, "Set the health check grace period"), i.e. after the host's
warm-up answered; a minute covers the target group's first two checks."""
DELETE_TIMEOUT = "60m"
"""``pulumi destroy`` drains the group before deleting it (terraform-provider-aws,
internal/service/autoscaling/group.go, resourceGroupDelete -> drainGroup, waitGroupDrained
with the Delete timeout, 10 minutes by default); deregistration and a stopping GPU host
take longer than that on a busy fleet."""
LEGACY_TEMPLATE_FAMILY = "nvidia-dlami-24.04-x86_64"
"""The family whose launch template keeps the logical name every fleet had before families
were part of it (``<name>-launch-template``): the prod stack's GPU fleets see no change."""


_HOOK: dict[str, object] = {
    "lifecycle_transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
    "default_result": "ABANDON",
    "heartbeat_timeout": LIFECYCLE_HEARTBEAT_TIMEOUT_S,
}
"""The launch hook's settings, on the group at creation and on the hook resource after."""


@dataclass(frozen=True)
class SpotChoice:
    on_demand_base_capacity: int
    on_demand_percentage_above_base: int


@dataclass(frozen=True)
class WarmPoolChoice:
    min_size: int
    max_prepared_capacity: int | None
    reuse_on_scale_in: bool


@dataclass(frozen=True)
class AwsFleetArgs:
    """Everything the fleet needs, already validated and sized per type."""

    serving: ServingArgs
    instance_types: Sequence[str]
    """In order of preference."""
    profiles: Mapping[str, HostProfile]
    image: HostImage
    ami: ResolvedAmi
    cpu_image: str
    gpu_image: str
    placement: FleetPlacement
    weights_manifest: str
    volume_size_gb: int
    volume_throughput: int
    root_volume_size_gb: int
    log_retention_days: int
    resource_prefix: str
    min_size: int
    max_size: int
    desired_size: int | None
    target_requests_per_minute: int
    idle_timeout_s: int
    deregistration_delay_s: int
    min_healthy_percentage: int
    allowed_cidrs: Sequence[str]
    internal: bool
    tls: TlsChoice
    weights_snapshot_id: str | None = None
    snapshot_kms_key_arn: str | None = None
    """The snapshot's customer-managed KMS key, which Auto Scaling's role needs a grant on."""
    spot: SpotChoice | None = None
    warm_pool: WarmPoolChoice | None = None
    ssh_key_name: str | None = None
    ssh_cidrs: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    sealed: MirroredStores | None = None
    """``egress none``: the stores the hosts read (``cpu_image``, ``gpu_image`` and
    ``weights_manifest`` point into them); the hosts reach only the VPC's endpoints."""
    schedule: Sequence[FleetScheduleEntry] = ()
    """Scheduled actions; when any, they own the group's sizes after creation."""
    alarm_email: str | None = None
    """Subscribed to the alarms' topic (components/aws/observability.py)."""


def autoscaling_group_name(resource_prefix: str) -> str:
    """Fixed before the group exists: the hosts' user data and role name it."""
    return resource_prefix


def lifecycle_hook_name(resource_prefix: str) -> str:
    return f"{resource_prefix}-model-ready"


SNAPSHOT_KEY_OPERATIONS = (
    "Encrypt",
    "Decrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "DescribeKey",
    "CreateGrant",
)
"""What the service-linked role needs on the key (the guide's create-grant example)."""


def autoscaling_service_role_arn(partition: str, account: str) -> str:
    return (
        f"arn:{partition}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/"
        "AWSServiceRoleForAutoScaling"
    )


def refresh_max_healthy_percentage(min_healthy_percentage: int) -> int:
    """AWS refuses an instance refresh whose max and min healthy percentages are more than
    100 points apart (EC2 Auto Scaling API Reference, RefreshPreferences,
    MaxHealthyPercentage); launch before terminate as far as that allows."""
    return min(200, min_healthy_percentage + 100)


def launch_template_name(name: str, family: str) -> str:
    """The launch template's logical name. Its AMI is kept after creation (a new AMI
    release must not roll the fleet on an unrelated change), and Pulumi applies
    ``ignore_changes`` to a replacement too: a name per AMI family makes a change of family
    (CPU <-> GPU types, amd64 <-> arm64) a new template with a fresh AMI of that family."""
    if family == LEGACY_TEMPLATE_FAMILY:
        return f"{name}-launch-template"
    return f"{name}-launch-template-{family}"


def fleet_bootstrap_spec(
    args: AwsFleetArgs, region: str, log_group: str, key_parameter: str, bundle_bucket: str
) -> BootstrapSpec:
    """The cloud-init spec every fleet instance boots (the first type's profile fills the
    per-host fields; each instance switches to its own type's profile at boot)."""
    first = args.profiles[args.instance_types[0]]
    return BootstrapSpec(
        volume_device="",
        gpu_capable=first.gpu_capable,
        cpu_models=dict(first.cpu_models),
        gpu_models=dict(first.gpu_models),
        cpu_limit=first.cpu_limit,
        memory_limit_mb=first.memory_limit_mb,
        threads=first.threads,
        volume_wait_s=VOLUME_WAIT_S,
        **shared_spec_fields(
            args.serving,
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
        bundle_bucket=bundle_bucket,
        metrics_namespace=namespace(args.resource_prefix),
        fleet=FleetBoot(
            profiles={t: args.profiles[t] for t in args.instance_types},
            autoscaling_group=autoscaling_group_name(args.resource_prefix),
            lifecycle_hook=lifecycle_hook_name(args.resource_prefix),
        ),
    )


def check_fleet_user_data(args: AwsFleetArgs) -> str:
    """Render once with placeholder values so a spec that cannot work stops the preview
    (ValueError: the caller turns it into a ConfigError)."""
    return render_user_data_base64(
        fleet_bootstrap_spec(
            args,
            "us-east-1",
            log_group_name(args.resource_prefix),
            key_parameter_name(args.resource_prefix),
            args.sealed.bucket if args.sealed is not None else "localai-bootstrap-placeholder",
        )
    )


class AwsFleet(pulumi.ComponentResource):
    """An autoscaled LocalAI fleet behind an Application Load Balancer."""

    base_url: pulumi.Output[str]
    health_url: pulumi.Output[str]
    api_key: pulumi.Output[str]
    autoscaling_group_name: pulumi.Output[str]
    load_balancer_dns_name: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]
    region: pulumi.Output[str]
    ami_id: pulumi.Output[str]
    """What the launch template boots (kept across AMI releases unless pinned)."""

    def __init__(
        self, name: str, args: AwsFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(FLEET_TYPE, name, None, opts)
        serving = args.serving
        tags = {"localai:stack": args.resource_prefix, **args.tags}
        group_name = autoscaling_group_name(args.resource_prefix)
        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        moved = moved_from(HOST_TYPE, name)
        self.api_key = endpoint_api_key(name, serving.api_key, parent=self, aliases=moved)
        key_parameter, log_group, identity = host_access(
            name,
            api_key=self.api_key,
            hf_token=serving.hf_token,
            resource_prefix=args.resource_prefix,
            log_retention_days=args.log_retention_days,
            tags=tags,
            parent=self,
            lifecycle_group=group_name,
            aliases=moved,
            metrics_namespace=namespace(args.resource_prefix),
        )
        sealed, boot_after = None, []
        if args.sealed is not None:
            sealed, boot_after = sealed_access(
                name,
                args.sealed,
                subnets=args.placement.instance_subnets,
                vpc_cidr=args.placement.vpc_cidr,
                role_name=identity.role_name,
                tags=tags,
                parent=self,
                services=(*FLEET_INTERFACE_SERVICES, METRICS_SERVICE),
                bundles=True,
            )
        front = FleetLoadBalancer(
            name,
            LoadBalancerArgs(
                placement=args.placement,
                port=serving.port,
                allowed_cidrs=args.allowed_cidrs,
                internal=args.internal,
                tls=args.tls,
                idle_timeout_s=args.idle_timeout_s,
                deregistration_delay_s=args.deregistration_delay_s,
                resource_prefix=args.resource_prefix,
                tags=tags,
                ssh_cidrs=args.ssh_cidrs,
                sealed=sealed,
            ),
            parent=self,
        )
        # Every fleet's files travel as a bundle (bootstrap/bundle.py): a sealed fleet's in
        # its mirrored bucket, an open fleet's in a bucket of its own.
        if args.sealed is not None:
            bundle_bucket: pulumi.Input[str] = args.sealed.bucket
        else:
            bucket, bucket_access = bootstrap_bucket(
                name, role_name=identity.role_name, tags=tags, parent=self
            )
            bundle_bucket = bucket.bucket
            boot_after += bucket_access
        spec = pulumi.Output.all(
            self.region, log_group.name, key_parameter.name, bundle_bucket
        ).apply(lambda v: fleet_bootstrap_spec(args, *v))
        user_data = spec.apply(render_user_data_base64)
        boot_after.append(bootstrap_bundle(name, bundle_bucket, spec, tags=tags, parent=self))
        template = self._launch_template(
            name, args, tags, user_data, identity.instance_profile_name, front
        )
        grants = self._snapshot_key_grant(name, args)
        group = self._group(
            name,
            args,
            tags,
            template,
            front,
            depends_on=[*identity.policies, *front.listeners, *grants, *boot_after],
        )
        fleet_schedule(name, args.schedule, group_name=group.name, parent=self)
        dashboard = observability(
            name,
            resource_prefix=args.resource_prefix,
            log_group_name=log_group.name,
            region=self.region,
            alarm_email=args.alarm_email,
            tags=tags,
            parent=self,
            fleet=FleetTargets(
                load_balancer=front.load_balancer.arn_suffix,
                target_group=front.target_group.arn_suffix,
            ),
            gpu=any(p.gpu_capable for p in args.profiles.values()),
            host_metrics=True,
        )
        self.dashboard_name = dashboard.dashboard_name
        hook = aws.autoscaling.LifecycleHook(
            f"{name}-model-ready-hook",
            name=lifecycle_hook_name(args.resource_prefix),
            autoscaling_group_name=group.name,
            **_HOOK,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.autoscaling.Policy(
            f"{name}-requests-per-instance",
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                predefined_metric_specification=aws.autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type="ALBRequestCountPerTarget",
                    resource_label=front.resource_label,
                ),
                target_value=float(args.target_requests_per_minute),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.base_url = front.base_url
        self.health_url = front.health_url
        self.autoscaling_group_name = group.name
        self.load_balancer_dns_name = front.load_balancer.dns_name
        self.log_group_name = log_group.name
        self.ami_id = template.image_id
        if args.serving.wait_for_ready:
            # The provider starts the instance refresh and returns; this waits for it.
            wait_for_rollout(
                f"{name}-rollout",
                group=autoscaling_group_name(args.resource_prefix),
                region=self.region,
                timeout_s=args.serving.ready_timeout_seconds,
                log_group=log_group.name,
                triggers=[template.latest_version],
                parent=self,
                depends_on=[group, hook],
            )
        self._check_readiness(name, args, group, key_parameter, front)
        self.register_outputs(
            {
                "base_url": self.base_url,
                "api_key": self.api_key,
                "health_url": self.health_url,
                "autoscaling_group_name": self.autoscaling_group_name,
                "load_balancer_dns_name": self.load_balancer_dns_name,
                "log_group_name": self.log_group_name,
                "dashboard_name": self.dashboard_name,
                "region": self.region,
                "ami_id": self.ami_id,
            }
        )

    def _snapshot_key_grant(self, name: str, args: AwsFleetArgs) -> list[pulumi.Resource]:
        """Let Auto Scaling's service-linked role use the snapshot's customer-managed key,
        or every launch fails with Client.InternalError (EC2 Auto Scaling User Guide,
        "Required AWS KMS key policy for use with encrypted volumes")."""
        if args.snapshot_kms_key_arn is None:
            return []
        opts = pulumi.InvokeOutputOptions(parent=self)
        role = pulumi.Output.all(
            aws.get_partition_output(opts=opts).partition,
            aws.get_caller_identity_output(opts=opts).account_id,
        ).apply(lambda v: autoscaling_service_role_arn(v[0], v[1]))
        return [
            aws.kms.Grant(
                f"{name}-snapshot-key-grant",
                key_id=args.snapshot_kms_key_arn,
                grantee_principal=role,
                operations=list(SNAPSHOT_KEY_OPERATIONS),
                opts=pulumi.ResourceOptions(parent=self),
            )
        ]

    def _launch_template(
        self,
        name: str,
        args: AwsFleetArgs,
        tags: dict[str, str],
        user_data: pulumi.Output[str],
        instance_profile_name: pulumi.Output[str],
        front: FleetLoadBalancer,
    ) -> aws.ec2.LaunchTemplate:
        weights = aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
            volume_type="gp3",
            volume_size=args.volume_size_gb,
            iops=gp3_iops_for(args.volume_throughput),
            throughput=args.volume_throughput,
            encrypted="true",
            delete_on_termination="true",
            snapshot_id=args.weights_snapshot_id,
        )
        instance_tags = {**tags, "Name": args.resource_prefix}
        return aws.ec2.LaunchTemplate(
            launch_template_name(name, args.image.family),
            description="LocalAI fleet host (components/aws/fleet.py)",
            image_id=args.ami.ami_id,
            instance_type=args.instance_types[0],
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(
                name=instance_profile_name
            ),
            key_name=args.ssh_key_name,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**metadata_options()),
            network_interfaces=[
                aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                    device_index=0,
                    associate_public_ip_address=("true" if args.placement.public_ips else "false"),
                    security_groups=[front.instance_security_group.id],
                    delete_on_termination="true",
                )
            ],
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=args.ami.root_device_name,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_type="gp3",
                        volume_size=args.root_volume_size_gb,
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                ),
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=WEIGHTS_DEVICE_NAME, ebs=weights
                ),
            ],
            user_data=user_data,
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type="instance", tags=instance_tags
                ),
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type="volume", tags={**instance_tags, "localai:role": "fleet-host"}
                ),
            ],
            update_default_version=True,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Kept until the family changes (a new template) or localai:amiId pins one.
                ignore_changes=[] if args.ami.pinned else ["imageId"],
            ),
        )

    def _group(
        self,
        name: str,
        args: AwsFleetArgs,
        tags: dict[str, str],
        template: aws.ec2.LaunchTemplate,
        front: FleetLoadBalancer,
        depends_on: list[pulumi.Resource],
    ) -> aws.autoscaling.Group:
        version = template.latest_version.apply(str)
        if args.warm_pool is not None:
            # AWS refuses a warm pool on a mixed-instances group (settings checked: one type).
            launch = {
                "launch_template": aws.autoscaling.GroupLaunchTemplateArgs(
                    id=template.id, version=version
                )
            }
        else:
            launch = {"mixed_instances_policy": self._mixed_instances(args, template.id, version)}
        warm_pool = (
            aws.autoscaling.GroupWarmPoolArgs(
                pool_state="Stopped",
                min_size=args.warm_pool.min_size,
                max_group_prepared_capacity=args.warm_pool.max_prepared_capacity,
                instance_reuse_policy=aws.autoscaling.GroupWarmPoolInstanceReusePolicyArgs(
                    reuse_on_scale_in=args.warm_pool.reuse_on_scale_in
                ),
            )
            if args.warm_pool is not None
            else None
        )
        ready = args.serving.wait_for_ready and args.min_size > 0
        return aws.autoscaling.Group(
            f"{name}-group",
            name=autoscaling_group_name(args.resource_prefix),
            min_size=args.min_size,
            max_size=args.max_size,
            desired_capacity=args.desired_size,
            vpc_zone_identifiers=[p.subnet_id for p in args.placement.instance_subnets],
            target_group_arns=[front.target_group.arn],
            health_check_type="ELB",
            health_check_grace_period=HEALTH_CHECK_GRACE_S,
            # The provider's capacity wait stops at the first failed scaling activity unless
            # told otherwise (group.go, waitGroupCapacitySatisfied); a zone out of capacity
            # or an unfulfilled Spot request is one, and the group recovers from it by itself
            # in another zone or type (terraform-provider-aws #33665).
            ignore_failed_scaling_activities=True,
            capacity_rebalance=args.spot is not None,
            # The hook must exist before the first instance launches, so the group is
            # created with it; `initial_lifecycle_hook` is ForceNew (group.go schema) and
            # the group's name is fixed, so a later change would try to create a second
            # group of that name: the hook is ignored here after creation and kept up to
            # date by the LifecycleHook resource of the same name (PutLifecycleHook
            # creates or updates).
            initial_lifecycle_hooks=[
                aws.autoscaling.GroupInitialLifecycleHookArgs(
                    name=lifecycle_hook_name(args.resource_prefix), **_HOOK
                )
            ],
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=args.min_healthy_percentage,
                    max_healthy_percentage=refresh_max_healthy_percentage(
                        args.min_healthy_percentage
                    ),
                    skip_matching=True,
                ),
            ),
            warm_pool=warm_pool,
            # `pulumi up` returns once min_size instances passed their hook (model answered)
            # and the load balancer's health check; "0" does not wait.
            wait_for_capacity_timeout=(f"{args.serving.ready_timeout_seconds}s" if ready else "0"),
            min_elb_capacity=args.min_size if ready else None,
            tags=[
                aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True)
                for k, v in sorted({**tags, "Name": args.resource_prefix}.items())
            ],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                # Scaling moves the desired capacity, and a schedule all three sizes:
                # `pulumi up` must not undo them.
                ignore_changes=[
                    *(["desiredCapacity"] if args.desired_size is None or args.schedule else []),
                    *(["minSize", "maxSize"] if args.schedule else []),
                    "initialLifecycleHooks",
                ],
                custom_timeouts=pulumi.CustomTimeouts(delete=DELETE_TIMEOUT),
            ),
            **launch,
        )

    @staticmethod
    def _mixed_instances(
        args: AwsFleetArgs, template_id: pulumi.Output[str], version: pulumi.Output[str]
    ) -> aws.autoscaling.GroupMixedInstancesPolicyArgs:
        spot = args.spot
        distribution = aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
            on_demand_allocation_strategy="prioritized",
            on_demand_base_capacity=spot.on_demand_base_capacity if spot else 0,
            on_demand_percentage_above_base_capacity=(
                spot.on_demand_percentage_above_base if spot else 100
            ),
            spot_allocation_strategy="price-capacity-optimized" if spot else None,
        )
        return aws.autoscaling.GroupMixedInstancesPolicyArgs(
            instances_distribution=distribution,
            launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                launch_template_specification=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                    launch_template_id=template_id,
                    version=version,
                ),
                overrides=[
                    aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(
                        instance_type=t
                    )
                    for t in args.instance_types
                ],
            ),
        )

    def _check_readiness(
        self,
        name: str,
        args: AwsFleetArgs,
        group: aws.autoscaling.Group,
        key_parameter: aws.ssm.Parameter,
        front: FleetLoadBalancer,
    ) -> None:
        """From outside, through the load balancer: the same one-token check as the host."""
        serving = args.serving
        if args.internal or not serving.wait_for_ready or args.min_size == 0:
            return
        wait_for_endpoint(
            f"{name}-ready",
            base_url=self.base_url,
            api_key=self.api_key,
            model=serving.default_model,
            timeout_s=serving.ready_timeout_seconds,
            triggers=[group.arn, key_parameter.version],
            parent=self,
            # The base URL names the alias record when there is one: resolve it only then.
            depends_on=[group, *front.dns_records],
            extra_args=[
                "--auth-grace",
                str(KEY_RELOAD_GRACE_S + KEY_RESTART_SPREAD_S),
                "--check-other-key-refused",
            ],
            hint=(
                "Check that this machine's address is in localai:allowedCidrs, the group's "
                f"activity (aws autoscaling describe-scaling-activities --auto-scaling-group-name "
                f"{autoscaling_group_name(args.resource_prefix)}) and the hosts' log: aws logs "
                f"tail {log_group_name(args.resource_prefix)} --follow"
            ),
        )
