"""What an EC2 LocalAI host reads and writes in AWS: its key and token in SSM, its log
group, and the role allowed those and nothing more. Shared by the single host and the fleet;
resources are the caller's children, named from the caller's name (URNs stay put)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
from pydantic import SecretStr

from components.aws.launch import HostIdentity
from components.aws_limits import resource_prefix_problems
from components.errors import ConfigError


def key_parameter_name(resource_prefix: str) -> str:
    return f"/localai/{resource_prefix}/api-key"


def hf_token_parameter_name(resource_prefix: str) -> str:
    return f"/localai/{resource_prefix}/hf-token"


def log_group_name(resource_prefix: str) -> str:
    return f"/localai/{resource_prefix}"


def check_names(resource_prefix: str) -> None:
    """Names built from ``<project>-<stack>`` within AWS's limits, before any resource."""
    problems = resource_prefix_problems(
        resource_prefix,
        key_parameter=key_parameter_name(resource_prefix),
        log_group=log_group_name(resource_prefix),
    )
    if problems:
        raise ConfigError(
            f"project and stack name '{resource_prefix}' are too long for AWS: "
            + "; ".join(problems)
            + ". Use a shorter stack name"
        )


def host_access(
    name: str,
    *,
    api_key: pulumi.Output[str],
    hf_token: SecretStr | None,
    resource_prefix: str,
    log_retention_days: int,
    tags: dict[str, str],
    parent: pulumi.Resource,
    lifecycle_group: str | None = None,
    aliases: list[pulumi.Alias] | None = None,
    metrics_namespace: str | None = None,
) -> tuple[aws.ssm.Parameter, aws.cloudwatch.LogGroup, HostIdentity]:
    """The key in SSM, the log group, and the role that may read/write only those (and,
    for a fleet, complete lifecycle actions on ``lifecycle_group`` only).

    The parameter and log group have fixed names, and Pulumi creates before it deletes:
    moving a stack from the single host to the fleet (or back) would create a second
    parameter of the same name and fail. ``aliases`` (the other component as parent)
    make them the same resources, moved, not replaced."""
    key_parameter = aws.ssm.Parameter(
        f"{name}-api-key",
        name=key_parameter_name(resource_prefix),
        type="SecureString",
        value=api_key,
        description="API key of the LocalAI endpoint (read by the host at start)",
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, aliases=aliases),
    )
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=log_group_name(resource_prefix),
        retention_in_days=log_retention_days,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, aliases=aliases),
    )
    parameter_arns = [key_parameter.arn]
    if hf_token is not None:
        token = aws.ssm.Parameter(
            f"{name}-hf-token",
            name=hf_token_parameter_name(resource_prefix),
            type="SecureString",
            value=pulumi.Output.secret(hf_token.get_secret_value()),
            description="Hugging Face token for gated model weights (read by the host)",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent, aliases=aliases),
        )
        parameter_arns.append(token.arn)
    identity = HostIdentity(
        f"{name}-identity",
        parameter_arns=parameter_arns,
        log_group_arn=log_group.arn,
        tags=tags,
        lifecycle_group=lifecycle_group,
        metrics_namespace=metrics_namespace,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key_parameter, log_group, identity


HOST_TYPE = "localai:aws:Host"
FLEET_TYPE = "localai:aws:Fleet"


def moved_from(component_type: str, name: str) -> list[pulumi.Alias]:
    """Aliases naming the same child under the other AWS component of the same name."""
    return [pulumi.Alias(parent=pulumi.create_urn(name, component_type))]
