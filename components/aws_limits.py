"""The AWS limits this package depends on, in one place, each with its source.

Pure data and pure checks (no Pulumi, no AWS calls): settings validation, the host and the
fleet read them from here, and tests/components/aws/test_limits.py hits both sides of each.
Where AWS has raised a limit recently, the value here is the one every region accepts.
"""

from __future__ import annotations

import math

# -- EBS gp3 ------------------------------------------------------------------------------
# Source: EC2 API reference, CreateVolume (Iops: "gp3: 3,000 - 16,000 IOPS"; Throughput:
# "Valid Range: Minimum value of 125. Maximum value of 1000"), and the EBS User Guide,
# "General Purpose SSD volumes": 3,000 IOPS and 125 MiB/s are included at any size; at most
# 500 provisioned IOPS per GiB and 0.25 MiB/s of throughput per provisioned IOPS. AWS raised
# the gp3 ceilings to 80,000 IOPS / 2,000 MiB/s in 2025 (ModifyVolume now documents 2,000);
# the classic ceilings below are accepted everywhere.
GP3_MIN_SIZE_GIB = 1
GP3_MAX_SIZE_GIB = 16_384
GP3_BASELINE_IOPS = 3_000
GP3_MAX_IOPS = 16_000
GP3_MAX_IOPS_PER_GIB = 500
GP3_BASELINE_THROUGHPUT_MIBS = 125
GP3_MAX_THROUGHPUT_MIBS = 1_000
GP3_MAX_THROUGHPUT_PER_IOPS_MIBS = 0.25
EBS_MODIFICATION_COOLDOWN_HOURS = 6
"""EBS User Guide, "Requirements for EBS volume modifications": after a modification, wait
at least six hours before modifying the same volume again."""


def gp3_iops_for(throughput_mibs: int) -> int:
    """The IOPS a gp3 volume needs for ``throughput_mibs``: the included 3,000, or
    ``throughput / 0.25`` when that is more (AWS refuses throughput > IOPS x 0.25)."""
    needed = math.ceil(throughput_mibs / GP3_MAX_THROUGHPUT_PER_IOPS_MIBS)
    return max(GP3_BASELINE_IOPS, needed)


def gp3_problems(size_gib: int, iops: int, throughput_mibs: int) -> list[str]:
    """Every gp3 rule ``(size, iops, throughput)`` breaks, each with the numbers."""
    problems = []
    if not GP3_MIN_SIZE_GIB <= size_gib <= GP3_MAX_SIZE_GIB:
        problems.append(
            f"size {size_gib} GiB is outside gp3's {GP3_MIN_SIZE_GIB}-{GP3_MAX_SIZE_GIB} GiB"
        )
    if not GP3_BASELINE_IOPS <= iops <= GP3_MAX_IOPS:
        problems.append(f"{iops} IOPS is outside gp3's {GP3_BASELINE_IOPS}-{GP3_MAX_IOPS}")
    if iops > GP3_MAX_IOPS_PER_GIB * size_gib:
        problems.append(
            f"{iops} IOPS needs at least {math.ceil(iops / GP3_MAX_IOPS_PER_GIB)} GiB "
            f"(gp3 allows {GP3_MAX_IOPS_PER_GIB} IOPS per GiB; the volume has {size_gib})"
        )
    if not GP3_BASELINE_THROUGHPUT_MIBS <= throughput_mibs <= GP3_MAX_THROUGHPUT_MIBS:
        problems.append(
            f"throughput {throughput_mibs} MiB/s is outside gp3's "
            f"{GP3_BASELINE_THROUGHPUT_MIBS}-{GP3_MAX_THROUGHPUT_MIBS} MiB/s"
        )
    if throughput_mibs > iops * GP3_MAX_THROUGHPUT_PER_IOPS_MIBS:
        problems.append(
            f"throughput {throughput_mibs} MiB/s needs at least "
            f"{math.ceil(throughput_mibs / GP3_MAX_THROUGHPUT_PER_IOPS_MIBS)} IOPS "
            f"(gp3 allows {GP3_MAX_THROUGHPUT_PER_IOPS_MIBS} MiB/s per IOPS; {iops} given)"
        )
    return problems


# -- EC2 user data ---------------------------------------------------------------------------
# Source: EC2 User Guide, "Run commands when you launch an EC2 instance with user data input":
# "User data is limited to 16 KB, in raw form, before it is base64-encoded."
USER_DATA_LIMIT_BYTES = 16_384

# -- Tags -----------------------------------------------------------------------------------
# Source: "Tagging your AWS resources" (Tagging Best Practices / tag restrictions): at most 50
# user tags per resource; key up to 128 Unicode characters, value up to 256; the "aws:" prefix
# is reserved for AWS.
MAX_TAGS_PER_RESOURCE = 50
TAG_KEY_MAX_CHARS = 128
TAG_VALUE_MAX_CHARS = 256
RESERVED_TAG_PREFIX = "aws:"
PACKAGE_TAGS_PER_RESOURCE = 3
"""Tags this package adds to one resource at most: ``localai:stack``, ``Name``,
``localai:role``."""


PACKAGE_TAG_PREFIX = "localai:"
"""The package's own tag keys (``localai:stack``, ``localai:role``)."""


def tag_problems(tags: dict[str, str]) -> list[str]:
    """Every tag rule the user's ``tags`` break (leaving room for the package's own)."""
    problems = []
    room = MAX_TAGS_PER_RESOURCE - PACKAGE_TAGS_PER_RESOURCE
    if len(tags) > room:
        problems.append(
            f"{len(tags)} tags; AWS allows {MAX_TAGS_PER_RESOURCE} per resource and this "
            f"package adds up to {PACKAGE_TAGS_PER_RESOURCE}, so at most {room}"
        )
    for key, value in tags.items():
        if not 1 <= len(key) <= TAG_KEY_MAX_CHARS:
            problems.append(f"tag key {key[:40]!r} must be 1-{TAG_KEY_MAX_CHARS} characters")
        if len(value) > TAG_VALUE_MAX_CHARS:
            problems.append(f"tag {key!r}: the value is over {TAG_VALUE_MAX_CHARS} characters")
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(f"tag key {key!r}: the 'aws:' prefix is reserved for AWS")
        if key.lower().startswith(PACKAGE_TAG_PREFIX):
            problems.append(
                f"tag key {key!r}: the '{PACKAGE_TAG_PREFIX}' prefix is this package's own "
                "(localai:stack finds the stack's weights volume; another value would let a "
                "stack lose its volume or adopt another stack's)"
            )
    return problems


# -- CloudWatch Logs --------------------------------------------------------------------------
# Source: CloudWatch Logs API reference, PutRetentionPolicy, retentionInDays: "Possible values
# are: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
# 2922, 3288, and 3653." CreateLogGroup, logGroupName: 1-512 characters of [.-_/#A-Za-z0-9].
CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
LOG_GROUP_NAME_MAX_CHARS = 512

# -- SSM Parameter Store -------------------------------------------------------------------------
# Source: Systems Manager User Guide, "Parameter Store quotas" / PutParameter Name: a
# parameter hierarchy has at most 15 levels; the name, including the full ARN, at most
# 1011 characters.
SSM_PARAMETER_MAX_LEVELS = 15
SSM_PARAMETER_ARN_MAX_CHARS = 1011
LONGEST_PARAMETER_ARN_PREFIX = len("arn:aws-us-gov:ssm:ap-southeast-100:123456789012:parameter")
"""The longest ``arn:<partition>:ssm:<region>:<account>:parameter`` this package could see."""
NAME_TAG_SUFFIXES = ("-weights", "-endpoint")
"""What the package appends to ``<project>-<stack>`` in ``Name`` tags."""


def resource_prefix_problems(prefix: str, *, key_parameter: str, log_group: str) -> list[str]:
    """Every AWS name limit that names built from ``<project>-<stack>`` would break."""
    problems = []
    longest_tag = prefix + max(NAME_TAG_SUFFIXES, key=len)
    if len(longest_tag) > TAG_VALUE_MAX_CHARS:
        problems.append(
            f"the Name tag {longest_tag[:40]}... would be {len(longest_tag)} characters "
            f"(AWS allows {TAG_VALUE_MAX_CHARS})"
        )
    if len(log_group) > LOG_GROUP_NAME_MAX_CHARS:
        problems.append(
            f"the log group name would be {len(log_group)} characters "
            f"(CloudWatch allows {LOG_GROUP_NAME_MAX_CHARS})"
        )
    if LONGEST_PARAMETER_ARN_PREFIX + len(key_parameter) > SSM_PARAMETER_ARN_MAX_CHARS:
        problems.append(
            f"the key parameter's ARN could be "
            f"{LONGEST_PARAMETER_ARN_PREFIX + len(key_parameter)} characters (SSM allows "
            f"{SSM_PARAMETER_ARN_MAX_CHARS})"
        )
    levels = key_parameter.strip("/").count("/") + 1
    if levels > SSM_PARAMETER_MAX_LEVELS:
        problems.append(
            f"the key parameter has {levels} levels (SSM allows {SSM_PARAMETER_MAX_LEVELS})"
        )
    return problems


# -- EC2 Auto Scaling and Elastic Load Balancing ----------------------------------------------
# Source: EC2 Auto Scaling API Reference, LaunchTemplate (MixedInstancesPolicy): "Overrides
# ... Array Members: Maximum number of 40 items" (verify).
ASG_MAX_INSTANCE_TYPES = 40
# Source: EC2 Auto Scaling API Reference, CreateAutoScalingGroup: AutoScalingGroupName
# "Length Constraints: Minimum length of 1. Maximum length of 255"; LifecycleHookName 1-255,
# pattern [A-Za-z0-9\-_\/]+ (PutLifecycleHook).
ASG_NAME_MAX_CHARS = 255
# Source: PutLifecycleHook: HeartbeatTimeout "from 30 to 7200 seconds"; the global timeout
# is 48 hours or 100 x HeartbeatTimeout, whichever is smaller (User Guide, "Amazon EC2 Auto
# Scaling lifecycle hooks", "Lifecycle action timeout").
LIFECYCLE_HEARTBEAT_MIN_S = 30
LIFECYCLE_HEARTBEAT_MAX_S = 7200
# Source: ELB API Reference, LoadBalancerAttribute: idle_timeout.timeout_seconds "The range
# is 1-4000 seconds. The default is 60 seconds"; TargetGroupAttribute:
# deregistration_delay.timeout_seconds "The range is 0-3600 seconds. The default value is 300".
ALB_IDLE_TIMEOUT_MAX_S = 4000
TARGET_DEREGISTRATION_MAX_S = 3600
ALB_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""The ALB policy AWS recommends: TLS 1.3 and 1.2 only, forward secrecy (ELB User Guide,
"Security policies for your Application Load Balancer")."""


def asg_name_problems(name: str) -> list[str]:
    """The group and its lifecycle hook are named from ``<project>-<stack>`` (the host
    needs both names in its user data, before the group exists)."""
    if len(name) > ASG_NAME_MAX_CHARS:
        return [
            f"the Auto Scaling group name would be {len(name)} characters (AWS allows "
            f"{ASG_NAME_MAX_CHARS})"
        ]
    return []
