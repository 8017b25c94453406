"""How a LocalAI host is launched on EC2, separable from ``aws.ec2.Instance``.

AMI choice, IMDS, root volume and the instance role are decided here so that the
single-VM host and a later Auto Scaling fleet (launch template) share them instead
of copying them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.errors import ConfigError
from components.sizing.instance_types import InstanceType

UBUNTU_AMI_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id"
)
DLAMI_AMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
)
"""AWS Deep Learning Base OSS NVIDIA Driver GPU AMI: driver, Docker and the NVIDIA
container toolkit preinstalled."""

SSM_MANAGED_POLICY_NAME = "AmazonSSMManagedInstanceCore"
"""Session Manager and the agent. It also allows ``ssm:GetParameter(s)`` on ``*``, which the
host policy's explicit Deny narrows to the stack's own key (an explicit Deny wins over any
Allow: IAM User Guide, "Policy evaluation logic")."""
PARAMETER_READS = [
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
]
CPU_ROOT_VOLUME_GB = 30
GPU_ROOT_VOLUME_GB = 100  # the DLAMI's own snapshot is large; CUDA images are ~10 GB
IMDS_HOP_LIMIT = 1
"""1 keeps the instance role's credentials out of reach of containers on the Docker
bridge; the Docker daemon itself (awslogs driver, image pulls) runs on the host."""


LEGACY_FAMILY = "ubuntu-24.04-amd64"
"""The family whose instance keeps the logical name every host had before families were
part of it (``<name>-instance``), so stacks deployed on it see no change."""


@dataclass(frozen=True)
class HostImage:
    """Which AMI a host boots and what that AMI already carries."""

    ami_parameter: str
    gpu_ami: bool
    """The NVIDIA DLAMI (Docker + toolkit preinstalled) rather than plain Ubuntu."""
    family: str
    """OS, flavour and architecture (``ubuntu-24.04-arm64``): the instance's logical name
    carries it, so a change of family is a new instance that resolves its own AMI."""
    arch: str
    """EC2's name for the architecture: ``x86_64`` or ``arm64``."""

    @property
    def install_docker(self) -> bool:
        return not self.gpu_ami

    def instance_name(self, name: str) -> str:
        """The instance's logical name. The AMI is ignored after creation (a new release
        must not replace a running host), and Pulumi applies ``ignore_changes`` to a
        replacement too: a changed instance type would keep an AMI of the wrong family.
        A new name per family makes a family change a new resource with a fresh AMI."""
        if self.family == LEGACY_FAMILY:
            return f"{name}-instance"
        return f"{name}-instance-{self.family}"


@dataclass(frozen=True)
class ResolvedAmi:
    """The AMI a new host of this family boots, looked up before any resource."""

    ami_id: str
    architecture: str
    root_snapshot_gib: int
    pinned: bool
    """``localai:amiId`` chose it (no ignore_changes: changing the pin replaces the host)."""
    root_device_name: str = "/dev/sda1"
    """Where the AMI's root snapshot maps (a launch template's root mapping must name it)."""


def host_image(instance: InstanceType, *, sealed: bool = False) -> HostImage:
    """Ubuntu 24.04 for CPU types (amd64 or arm64); the NVIDIA DLAMI for GPU types, and for
    x86_64 CPU types of a sealed host (``egress none``), which cannot install Docker or the
    aws CLI at boot: the DLAMI ships both (it boots on CPU types; the driver stays idle)."""
    if instance.gpu_count > 0 or (sealed and instance.arch == "x86_64"):
        if instance.arch != "x86_64":
            raise ConfigError(
                f"localai configuration is invalid:\n  - localai:instanceType = "
                f"{instance.name!r}: GPU instances are supported on x86_64 only"
            )
        return HostImage(DLAMI_AMI_PARAMETER, True, "nvidia-dlami-24.04-x86_64", "x86_64")
    ubuntu_arch = {"x86_64": "amd64", "arm64": "arm64"}[instance.arch]
    return HostImage(
        UBUNTU_AMI_PARAMETER.format(arch=ubuntu_arch),
        False,
        f"ubuntu-24.04-{ubuntu_arch}",
        instance.arch,
    )


def resolve_host_ami(image: HostImage, pinned_ami_id: str | None) -> ResolvedAmi:
    """Look up the AMI (the pin, or what the family's public SSM parameter names now) and
    its root snapshot, with plain invokes, so a wrong AMI stops the preview."""
    if pinned_ami_id is None:
        ami_id = aws.ssm.get_parameter(name=image.ami_parameter).insecure_value
    else:
        ami_id = pinned_ami_id
    found = aws.ec2.get_ami(filters=[{"name": "image-id", "values": [ami_id]}], most_recent=True)
    root = next(
        (m for m in found.block_device_mappings if m.device_name == found.root_device_name),
        None,
    )
    size = int((root.ebs or {}).get("volume_size") or 0) if root is not None else 0
    resolved = ResolvedAmi(
        ami_id,
        found.architecture,
        size,
        pinned_ami_id is not None,
        found.root_device_name or "/dev/sda1",
    )
    if resolved.architecture != image.arch:
        raise ConfigError(
            f"localai configuration is invalid:\n  - localai:amiId = {ami_id!r}: it is an "
            f"{resolved.architecture} AMI, but the instance type needs {image.arch} "
            f"({image.family}); pin an AMI of that family or unset localai:amiId"
        )
    return resolved


def check_root_volume(root_gib: int, ami: ResolvedAmi, *, explicit: bool) -> None:
    """EC2 refuses a root volume smaller than the AMI's snapshot, at launch time."""
    if root_gib < ami.root_snapshot_gib:
        key = "localai:rootVolumeSizeGb" if explicit else "the default root volume"
        raise ConfigError(
            f"localai configuration is invalid:\n  - {key} = {root_gib} GiB is smaller than "
            f"the {ami.root_snapshot_gib} GiB snapshot of AMI {ami.ami_id}: EC2 would refuse "
            f"to launch; use at least {ami.root_snapshot_gib}"
        )


def metadata_options() -> dict[str, object]:
    """IMDSv2 only; works for both ``Instance`` and ``LaunchTemplate`` args classes."""
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": IMDS_HOP_LIMIT,
        "instance_metadata_tags": "disabled",
    }


def root_volume_size_gb(
    instance: InstanceType, override: int | None, *, gpu_ami: bool = False
) -> int:
    if override is not None:
        return override
    return GPU_ROOT_VOLUME_GB if instance.gpu_count > 0 or gpu_ami else CPU_ROOT_VOLUME_GB


def managed_policy_arn(partition: str, name: str) -> str:
    """An AWS managed policy's ARN in ``partition`` (aws, aws-us-gov, aws-cn)."""
    return f"arn:{partition}:iam::aws:policy/{name}"


LIFECYCLE_ACTIONS = [
    "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
]


def autoscaling_group_arn_pattern(partition: str, region: str, account: str, group: str) -> str:
    """The group's ARN with its id wildcarded: ``autoScalingGroup:<uuid>:autoScalingGroupName/
    <name>`` (Service Authorization Reference, Amazon EC2 Auto Scaling, resource type
    autoScalingGroup); the name is fixed before the group exists, the uuid is not."""
    return (
        f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:"
        f"autoScalingGroupName/{group}"
    )


def host_policy_document(
    parameter_arns: list[str],
    log_group_arn: str,
    lifecycle_group_arn: str | None = None,
    metrics_namespace: str | None = None,
) -> str:
    """Least privilege for the host: read its own parameters (the key; the Hugging Face
    token when there is one), write its own log group, and read no other parameter even
    though the SSM managed policy allows it. A fleet host may also complete (and extend)
    lifecycle actions on its own group, ``lifecycle_group_arn``, and no other.

    IAM cannot narrow that to the host's own instance: CompleteLifecycleAction and
    RecordLifecycleActionHeartbeat take the group as their only resource, and their
    condition keys are the group's tags (Service Authorization Reference, Amazon EC2 Auto
    Scaling); the instance id is a request parameter no condition key exposes. A host of
    the group can therefore complete another host's action; it holds the same role and key,
    so this grants it nothing it lacks.

    With ``metrics_namespace``, the CloudWatch agent may publish metrics to that namespace
    only (PutMetricData has no resource; its ``cloudwatch:namespace`` condition key is the
    narrowing IAM offers). Nothing else the agent could call is granted: with only
    ``InstanceId`` appended it reads IMDS, not the EC2 API (bootstrap/metrics_agent.py)."""
    statements = _host_statements(parameter_arns, log_group_arn)
    if metrics_namespace is not None:
        statements.append(
            {
                "Sid": "PublishHostMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace}},
            }
        )
    if lifecycle_group_arn is not None:
        statements.append(
            {
                "Sid": "CompleteOwnLifecycleHook",
                "Effect": "Allow",
                "Action": list(LIFECYCLE_ACTIONS),
                "Resource": [lifecycle_group_arn],
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _host_statements(parameter_arns: list[str], log_group_arn: str) -> list[dict[str, object]]:
    return [
        {
            "Sid": "ReadEndpointApiKey",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": list(parameter_arns),
        },
        {
            "Sid": "NoOtherParameters",
            "Effect": "Deny",
            "Action": PARAMETER_READS,
            "NotResource": list(parameter_arns),
        },
        {
            "Sid": "ShipContainerLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group_arn}:*", log_group_arn],
        },
    ]


ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


class HostIdentity(pulumi.ComponentResource):
    """IAM role + instance profile: SSM Session Manager, the key, the log group."""

    role_name: pulumi.Output[str]
    instance_profile_name: pulumi.Output[str]
    policies: list[pulumi.Resource]
    """What the role may do: an instance depends on these, not only on the profile, or
    its first boot runs before the role can read the key."""

    def __init__(
        self,
        name: str,
        *,
        parameter_arns: Sequence[pulumi.Input[str]],
        log_group_arn: pulumi.Input[str],
        tags: dict[str, str],
        lifecycle_group: str | None = None,
        metrics_namespace: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("localai:aws:HostIdentity", name, None, opts)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=ASSUME_ROLE_POLICY,
            description="LocalAI host: SSM Session Manager, its API key, its log group",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        ssm_core = aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core",
            role=role.name,
            policy_arn=partition.partition.apply(
                lambda p: managed_policy_arn(p, SSM_MANAGED_POLICY_NAME)
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        host_access = aws.iam.RolePolicy(
            f"{name}-host-access",
            role=role.name,
            policy=pulumi.Output.all(log_group_arn, *parameter_arns).apply(
                lambda arns: host_policy_document(
                    list(arns[1:]), arns[0], metrics_namespace=metrics_namespace
                )
            )
            if lifecycle_group is None
            else pulumi.Output.all(
                log_group_arn,
                partition.partition,
                aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region,
                aws.get_caller_identity_output(
                    opts=pulumi.InvokeOutputOptions(parent=self)
                ).account_id,
                *parameter_arns,
            ).apply(
                lambda v: host_policy_document(
                    list(v[4:]),
                    v[0],
                    autoscaling_group_arn_pattern(v[1], v[2], v[3], lifecycle_group),
                    metrics_namespace,
                )
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        profile = aws.iam.InstanceProfile(
            f"{name}-profile",
            role=role.name,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role_name = role.name
        self.policies = [ssm_core, host_access]
        self.instance_profile_name = profile.name
        self.register_outputs(
            {"role_name": self.role_name, "instance_profile_name": self.instance_profile_name}
        )
