"""What the stack's fleet looks like in AWS now, read before any resource is declared, and
the changes to it that cannot work in one ``pulumi up`` or that replace every instance.

Plain invokes of the group by its fixed name: before the first deploy there is none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi_aws as aws

from components.errors import ConfigError

OWN_TAG_KEYS = frozenset({"Name", "localai:stack"})
"""Tags the package sets on the group itself; a user's change is to the others."""


@dataclass(frozen=True)
class DeployedFleet:
    instance_types: tuple[str, ...]
    """The mixed-instances policy's overrides in order; empty for a single-type group."""
    warm_pool: bool
    ports: tuple[int, ...]
    """The instance port of each attached target group."""
    tags: Mapping[str, str] = field(default_factory=dict)


def deployed_fleet(group_name: str) -> DeployedFleet | None:
    found = aws.autoscaling.get_ami_ids(names=[group_name])  # aws_autoscaling_groups
    if group_name not in (found.names or []):
        return None
    group = aws.autoscaling.get_group(name=group_name)
    overrides: list[str] = []
    for policy in group.mixed_instances_policies or []:
        for template in policy.launch_templates or []:
            overrides.extend(o.instance_type for o in template.overrides or [])
    ports = tuple(
        int(aws.lb.get_target_group(arn=arn).port) for arn in group.target_group_arns or []
    )
    return DeployedFleet(
        instance_types=tuple(overrides),
        warm_pool=bool(group.warm_pools),
        ports=ports,
        tags={t.key: t.value for t in group.tags or []},
    )


def check_fleet_change(
    deployed: DeployedFleet | None,
    *,
    instance_types: Sequence[str],
    port: int,
    tags: Mapping[str, str],
) -> list[str]:
    """Refuse what fails half-way; return warnings for what replaces every instance."""
    if deployed is None:
        return []
    if deployed.warm_pool and len(instance_types) > 1:
        # The provider updates the group (UpdateAutoScalingGroup with the mixed-instances
        # policy) before it deletes the warm pool (terraform-provider-aws, internal/service/
        # autoscaling/group.go, resourceGroupUpdate: the warm_pool change comes last), and
        # AWS refuses a mixed-instances policy on a group with a warm pool.
        raise ConfigError(
            "localai configuration cannot be applied in one step:\n  - localai:fleet."
            f"instanceTypes: the deployed fleet has a warm pool, which AWS refuses beside "
            f"several instance types ({', '.join(instance_types)}). First remove "
            "fleet.warmPool and run `pulumi up` with the one type the fleet has, then add the "
            "other types"
        )
    if deployed.ports and port not in deployed.ports:
        raise ConfigError(
            "localai configuration is invalid:\n  - localai:port = "
            f"{port}: the deployed fleet serves on {', '.join(map(str, deployed.ports))}. A "
            "target group's port cannot change in place: its replacement would health-check "
            "every running instance on a port it does not listen on, and the group would "
            "replace them all at once. Callers never see this port (they use the load "
            f"balancer's 443/80): keep localai:port {deployed.ports[0]}"
        )
    warnings = []
    if deployed.instance_types and tuple(instance_types) != deployed.instance_types:
        warnings.append(
            f"fleet.instanceTypes changes from {', '.join(deployed.instance_types)} to "
            f"{', '.join(instance_types)}: the instance refresh replaces every instance, one "
            "batch at a time (minHealthyPercentage)"
        )
    old_tags = {k: v for k, v in deployed.tags.items() if k not in OWN_TAG_KEYS}
    new_tags = {k: v for k, v in tags.items() if k not in OWN_TAG_KEYS}
    if old_tags != new_tags:
        warnings.append(
            "localai:tags changes: instances and their volumes carry the tags from the "
            "launch template, so its new version starts an instance refresh that replaces "
            "every instance, one batch at a time (minHealthyPercentage)"
        )
    return warnings
