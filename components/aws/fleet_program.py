"""Settings -> :class:`~components.aws.fleet.AwsFleetArgs`: every decision the fleet needs
(types, AMI, per-type sizing, subnets, volume, timings, TLS) made before any resource, so
bad input stops ``pulumi preview`` with a message naming the key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.access import check_names
from components.aws.bootstrap.cloud_init import HostProfile
from components.aws.deployed_fleet import check_fleet_change, deployed_fleet
from components.aws.fleet import (
    AwsFleet,
    AwsFleetArgs,
    SpotChoice,
    WarmPoolChoice,
    autoscaling_group_name,
    check_fleet_user_data,
)
from components.aws.host import host_sources, store_outputs
from components.aws.launch import (
    check_root_volume,
    host_image,
    resolve_host_ami,
    root_volume_size_gb,
)
from components.aws.load_balancer import TlsChoice
from components.aws.network import choose_fleet_subnets
from components.aws_limits import asg_name_problems
from components.errors import ConfigError
from components.models.catalog import ModelConfig
from components.models.facts import ModelFacts
from components.serving import ServingArgs
from components.settings import FleetSettings, Settings
from components.sizing.cost import HOURS_PER_MONTH
from components.sizing.fleet import ALB_HOURLY_USD, fleet_hourly_cost, fleet_timings
from components.sizing.instance_types import InstanceType, lookup
from components.sizing.planner import SizingPlan
from components.sizing.resources import HostResources
from components.weights.manifest import weights_manifest

Facts = list[tuple[str, ModelFacts | None]]
PlanFn = Callable[..., SizingPlan]
RenderFn = Callable[..., dict[str, str]]


def _invalid(key: str, problem: str) -> ConfigError:
    return ConfigError(f"localai configuration is invalid:\n  - localai:fleet.{key}: {problem}")


def fleet_types(settings: Settings, fleet: FleetSettings) -> list[InstanceType]:
    """The ordered types, all of one architecture and one AMI family."""
    types = [lookup(name) for name in fleet.instance_types]
    arches = {t.arch for t in types}
    if len(arches) > 1:
        listing = ", ".join(f"{t.name} ({t.arch})" for t in types)
        raise _invalid(
            "instanceTypes",
            f"one launch template boots one AMI, so its types must share an architecture; "
            f"got {listing}. Use x86_64 or arm64 types only",
        )
    sealed = settings.egress == "none"
    families = {host_image(t, sealed=sealed).family for t in types}
    if len(families) > 1:
        gpu = [t.name for t in types if t.gpu_count]
        cpu = [t.name for t in types if not t.gpu_count]
        raise _invalid(
            "instanceTypes",
            f"GPU types ({', '.join(gpu)}) boot the NVIDIA DLAMI and CPU types "
            f"({', '.join(cpu)}) plain Ubuntu; one launch template boots one AMI, so list "
            "GPU types or CPU types",
        )
    return types


def plan_each_type(
    settings: Settings,
    types: list[InstanceType],
    models: list[ModelConfig],
    facts: Facts,
    plan: PlanFn,
) -> dict[str, SizingPlan]:
    """The planner's answer for every type; every type that cannot hold the models is
    named with the planner's numbers, all at once."""
    plans: dict[str, SizingPlan] = {}
    failures: list[str] = []
    for instance in types:
        use_gpu = instance.gpu_count > 0 and settings.accelerator != "cpu"
        try:
            plans[instance.name] = plan(
                settings,
                HostResources.from_instance_type(instance),
                models,
                facts,
                use_gpu=use_gpu,
            )
        except ConfigError as exc:  # the planner's SizingError, as the program words it
            failures.append(f"{instance.name}: {str(exc).removeprefix('localai sizing: ')}")
    if failures:
        raise ConfigError(
            "localai configuration is invalid:\n  - localai:fleet.instanceTypes: "
            "every type must hold the models; these cannot:\n"
            + "\n".join(f"      {failure}" for failure in failures)
        )
    return plans


def build_fleet(
    settings: Settings,
    *,
    prefix: str,
    stack: str,
    models: list[ModelConfig],
    facts: Facts,
    plan: PlanFn,
    render: RenderFn,
    serving: Callable[[SizingPlan], ServingArgs],
    volume_size: Callable[[], int],
    contract: Callable[[pulumi.Output[str], pulumi.Output[str]], dict[str, Any]],
    speed_estimates: Callable[[SizingPlan], dict[str, Any]],
    costs: Callable[..., dict[str, Any]],
    dashboard: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    fleet = settings.fleet
    assert fleet is not None
    sealed = settings.egress == "none"
    types = fleet_types(settings, fleet)
    image = host_image(types[0], sealed=sealed)
    if sealed and image.install_docker:
        raise _invalid(
            "instanceTypes",
            f"{types[0].name} is {types[0].arch}, and with localai:egress none the hosts boot "
            "the x86_64 NVIDIA DLAMI (it ships Docker and the aws CLI, which a sealed host "
            "cannot install); use x86_64 types",
        )
    ami = resolve_host_ami(image, settings.ami_id)
    root_gb = max(
        root_volume_size_gb(t, settings.root_volume_size_gb, gpu_ami=image.gpu_ami) for t in types
    )
    check_root_volume(root_gb, ami, explicit=settings.root_volume_size_gb is not None)
    plans = plan_each_type(settings, types, models, facts, plan)
    for name, sizing in plans.items():
        for warning in sizing.warnings:
            pulumi.log.warn(f"{name}: {warning}")
    check_names(prefix)
    problems = asg_name_problems(autoscaling_group_name(prefix))
    if problems:
        raise ConfigError(f"project and stack name '{prefix}' are too long: {'; '.join(problems)}")
    for warning in check_fleet_change(
        deployed_fleet(autoscaling_group_name(prefix)),
        instance_types=[t.name for t in types],
        port=settings.port,
        tags=settings.tags,
    ):
        pulumi.log.warn(warning)
    profiles = {
        name: HostProfile(
            cpu_limit=sizing.cpu_limit,
            memory_limit_mb=sizing.memory_limit_mb,
            threads=sizing.threads,
            gpu_capable=sizing.use_gpu,
            cpu_models=render(
                models, threads=sizing.threads, gpu_layers={m.name: 0 for m in models}
            ),
            gpu_models=(
                render(models, threads=sizing.threads, gpu_layers=sizing.gpu_layers)
                if sizing.use_gpu
                else {}
            ),
        )
        for name, sizing in plans.items()
    }
    first = plans[types[0].name]
    # One base settings file for every type: one model at a time if any type needs it.
    single_active = any(p.single_active_backend for p in plans.values())
    serving_args = serving(dataclasses.replace(first, single_active_backend=single_active))
    placement = choose_fleet_subnets(
        instance_types=[t.name for t in types],
        subnet_ids=fleet.subnet_ids,
        load_balancer_subnet_ids=fleet.load_balancer_subnet_ids,
        vpc_id=settings.vpc_id,
        internal=fleet.internal,
        sealed=sealed,
        allow_route_out=settings.allow_route_out,
    )
    manifest = weights_manifest(models, dict(facts))
    stores = None
    if sealed:
        from components.aws.egress import check_ssh_inside_vpc
        from components.aws.stores import find_mirrored

        check_ssh_inside_vpc(settings.ssh_cidrs, placement.vpc_cidr)

        stores = find_mirrored(
            prefix,
            stack=stack,
            cpu_image=settings.cpu_image,
            gpu_image=settings.cuda_image if any(p.use_gpu for p in plans.values()) else None,
            manifest=manifest,
        )
    snapshot = (
        aws.ebs.get_snapshot(snapshot_ids=[fleet.weights_snapshot_id], most_recent=True)
        if fleet.weights_snapshot_id is not None
        else None
    )
    volume_gb = _with_snapshot(volume_size(), settings, fleet.weights_snapshot_id, snapshot)
    snapshot_key = _customer_managed_key(snapshot)
    contexts = [settings.context_size or m.context_size for m in models]
    timings = fleet_timings(plans, max(contexts), fleet.target_requests_per_minute)
    tls = TlsChoice(fleet.certificate_arn, fleet.domain_name, fleet.hosted_zone_id)
    if not tls.enabled:
        pulumi.log.warn(
            "localai:fleet has no certificate: the load balancer speaks plain HTTP (from "
            "allowedCidrs only), so prompts, answers and the API key cross the network in "
            "clear. Set fleet.domainName and fleet.hostedZoneId (or fleet.certificateArn)"
        )
    cpu_image, gpu_image, host_manifest = host_sources(
        stores, cpu_image=settings.cpu_image, gpu_image=settings.cuda_image, manifest=manifest
    )
    args = AwsFleetArgs(
        serving=serving_args,
        instance_types=[t.name for t in types],
        profiles=profiles,
        image=image,
        ami=ami,
        cpu_image=cpu_image,
        gpu_image=gpu_image,
        placement=placement,
        weights_manifest=host_manifest,
        volume_size_gb=volume_gb,
        volume_throughput=settings.volume_throughput,
        root_volume_size_gb=root_gb,
        log_retention_days=settings.log_retention_days,
        resource_prefix=prefix,
        min_size=fleet.min_size,
        max_size=fleet.max_size,
        desired_size=fleet.desired_size,
        target_requests_per_minute=timings.target_requests_per_minute,
        idle_timeout_s=timings.idle_timeout_s,
        deregistration_delay_s=timings.deregistration_delay_s,
        min_healthy_percentage=fleet.min_healthy_percentage,
        allowed_cidrs=settings.allowed_cidrs,
        internal=fleet.internal,
        tls=tls,
        weights_snapshot_id=fleet.weights_snapshot_id,
        snapshot_kms_key_arn=snapshot_key,
        spot=(
            SpotChoice(
                fleet.spot.on_demand_base_capacity, fleet.spot.on_demand_percentage_above_base
            )
            if fleet.spot is not None
            else None
        ),
        warm_pool=(
            WarmPoolChoice(
                fleet.warm_pool.min_size,
                fleet.warm_pool.max_prepared_capacity,
                fleet.warm_pool.reuse_on_scale_in,
            )
            if fleet.warm_pool is not None
            else None
        ),
        ssh_key_name=settings.ssh_key_name,
        ssh_cidrs=settings.ssh_cidrs,
        tags=settings.tags,
        sealed=stores,
        schedule=tuple(fleet.schedule),
        alarm_email=settings.alarm_email,
    )
    try:
        check_fleet_user_data(args)
    except ValueError as exc:
        raise ConfigError(f"localai configuration cannot be deployed to EC2: {exc}") from None
    target = AwsFleet("localai", args)
    first_type = types[0]
    return {
        **contract(target.base_url, target.api_key),
        "healthUrl": target.health_url,
        "autoScalingGroupName": target.autoscaling_group_name,
        "loadBalancerDnsName": target.load_balancer_dns_name,
        "instanceTypes": ",".join(t.name for t in types),
        "amiId": target.ami_id,
        "amiParameter": image.ami_parameter,
        **store_outputs(stores),
        "logGroup": target.log_group_name,
        "region": target.region,
        **dashboard(target.region, prefix, target.dashboard_name),
        "targetRequestsPerMinute": timings.target_requests_per_minute,
        "loadBalancerIdleTimeoutSeconds": timings.idle_timeout_s,
        "hourlyCostUsdAtMinSize": round(
            fleet_hourly_cost(fleet.min_size, first_type.hourly_usd), 4
        ),
        "hourlyCostUsdAtMaxSize": round(
            fleet_hourly_cost(fleet.max_size, first_type.hourly_usd), 4
        ),
        **speed_estimates(first),
        **costs(
            plans,
            {t.name: t.hourly_usd for t in types},
            host_hours_per_month=_instance_hours(fleet),
            fixed_hourly_usd=ALB_HOURLY_USD,
        ),
    }


def _instance_hours(fleet: FleetSettings) -> float:
    """The fleet's instance-hours a month at its minimum: ``minSize`` hosts all month, or
    what the schedule leaves (components/schedule/hours.py)."""
    if not fleet.schedule:
        return fleet.min_size * HOURS_PER_MONTH
    from components.schedule.cron import parse_unix
    from components.schedule.hours import ScheduledSize, instance_hours_per_month

    actions = [
        (parse_unix(e.recurrence), ScheduledSize(e.min_size, e.max_size, e.desired_size))
        for e in fleet.schedule
    ]
    desired = fleet.desired_size if fleet.desired_size is not None else fleet.min_size
    return instance_hours_per_month(
        actions, min_size=fleet.min_size, max_size=fleet.max_size, desired=desired
    )


def _with_snapshot(
    size_gb: int,
    settings: Settings,
    snapshot_id: str | None,
    snapshot: aws.ebs.GetSnapshotResult | None,
) -> int:
    """EC2 refuses a volume smaller than its snapshot: grow to it, or refuse an explicit
    volumeSizeGb below it."""
    if snapshot is None:
        return size_gb
    if size_gb >= snapshot.volume_size:
        return size_gb
    if settings.volume_size_gb is not None:
        raise ConfigError(
            f"localai configuration is invalid:\n  - localai:volumeSizeGb = "
            f"{settings.volume_size_gb}: snapshot {snapshot_id} (fleet.weightsSnapshotId) is "
            f"{snapshot.volume_size} GiB and a volume cannot be smaller; use at least "
            f"{snapshot.volume_size}"
        )
    return int(snapshot.volume_size)


def _customer_managed_key(snapshot: aws.ebs.GetSnapshotResult | None) -> str | None:
    """The ARN of the customer-managed KMS key that encrypts the snapshot, if it is one:
    Auto Scaling launches with its service-linked role, which needs a grant on such a key
    (EC2 Auto Scaling User Guide, "Required AWS KMS key policy for use with encrypted
    volumes"); an AWS-managed key (aws/ebs) needs none."""
    if snapshot is None or not snapshot.encrypted or not snapshot.kms_key_id:
        return None
    key = aws.kms.get_key(key_id=snapshot.kms_key_id)
    return key.arn if key.key_manager == "CUSTOMER" else None
