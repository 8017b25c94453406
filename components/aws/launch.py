"""How a LocalAI host is launched on EC2, separable from ``aws.ec2.Instance``.

AMI choice, IMDS, root volume and the instance role are decided here so that the
single-VM host and a later Auto Scaling fleet (launch template) share them instead
of copying them.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class HostImage:
    """Which AMI a host boots and what that AMI already carries."""

    ami_parameter: str
    gpu_ami: bool
    """The NVIDIA DLAMI (Docker + toolkit preinstalled) rather than plain Ubuntu."""

    @property
    def install_docker(self) -> bool:
        return not self.gpu_ami


def host_image(instance: InstanceType) -> HostImage:
    """Ubuntu 24.04 for CPU types (amd64 or arm64); the NVIDIA DLAMI for GPU types."""
    if instance.gpu_count > 0:
        if instance.arch != "x86_64":
            raise ConfigError(
                f"localai configuration is invalid:\n  - localai:instanceType = "
                f"{instance.name!r}: GPU instances are supported on x86_64 only"
            )
        return HostImage(DLAMI_AMI_PARAMETER, gpu_ami=True)
    ubuntu_arch = {"x86_64": "amd64", "arm64": "arm64"}[instance.arch]
    return HostImage(UBUNTU_AMI_PARAMETER.format(arch=ubuntu_arch), gpu_ami=False)


def resolve_ami(image: HostImage, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The AMI id the public SSM parameter points at now.

    ``insecure_value`` keeps a public AMI id from becoming a secret.
    """
    parameter = aws.ssm.get_parameter_output(
        name=image.ami_parameter,
        opts=pulumi.InvokeOutputOptions(parent=parent),
    )
    return parameter.insecure_value


def metadata_options() -> dict[str, object]:
    """IMDSv2 only; works for both ``Instance`` and ``LaunchTemplate`` args classes."""
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": IMDS_HOP_LIMIT,
        "instance_metadata_tags": "disabled",
    }


def root_volume_size_gb(instance: InstanceType, override: int | None) -> int:
    if override is not None:
        return override
    return GPU_ROOT_VOLUME_GB if instance.gpu_count > 0 else CPU_ROOT_VOLUME_GB


def managed_policy_arn(partition: str, name: str) -> str:
    """An AWS managed policy's ARN in ``partition`` (aws, aws-us-gov, aws-cn)."""
    return f"arn:{partition}:iam::aws:policy/{name}"


def host_policy_document(key_parameter_arn: str, log_group_arn: str) -> str:
    """Least privilege for the host: read its own key, write its own log group, and read
    no other parameter even though the SSM managed policy allows it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadEndpointApiKey",
                    "Effect": "Allow",
                    "Action": ["ssm:GetParameter"],
                    "Resource": [key_parameter_arn],
                },
                {
                    "Sid": "NoOtherParameters",
                    "Effect": "Deny",
                    "Action": PARAMETER_READS,
                    "NotResource": [key_parameter_arn],
                },
                {
                    "Sid": "ShipContainerLogs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": [f"{log_group_arn}:*", log_group_arn],
                },
            ],
        }
    )


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
        key_parameter_arn: pulumi.Input[str],
        log_group_arn: pulumi.Input[str],
        tags: dict[str, str],
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
            policy=pulumi.Output.all(key_parameter_arn, log_group_arn).apply(
                lambda arns: host_policy_document(arns[0], arns[1])
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
