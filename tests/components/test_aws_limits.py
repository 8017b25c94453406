"""components/aws_limits.py: both sides of every AWS limit this package depends on."""

from __future__ import annotations

import pytest

from components import aws_limits as limits
from components.aws_limits import gp3_iops_for, gp3_problems, tag_problems


@pytest.mark.parametrize(
    ("throughput", "iops"),
    [
        (125, 3000),  # the included baseline
        (750, 3000),  # 3000 x 0.25 = 750: still the baseline
        (751, 3004),  # one MiB/s more needs ceil(751 / 0.25) IOPS
        (1000, 4000),
    ],
)
def test_iops_follow_throughput_at_a_quarter_mib_per_iops(throughput: int, iops: int) -> None:
    assert gp3_iops_for(throughput) == iops
    assert gp3_problems(40, iops, throughput) == []


def test_a_gp3_volume_at_every_ceiling_is_accepted() -> None:
    assert gp3_problems(16_384, 16_000, 1_000) == []
    assert gp3_problems(6, 3_000, 125) == []  # 6 x 500 = 3000 IOPS allowed


@pytest.mark.parametrize(
    ("size", "iops", "throughput", "fragment"),
    [
        (16_385, 3000, 125, "size 16385 GiB is outside"),
        (40, 2_999, 125, "2999 IOPS is outside gp3's 3000-16000"),
        (40, 16_001, 125, "16001 IOPS is outside"),
        (5, 3_000, 125, "3000 IOPS needs at least 6 GiB"),
        (40, 3000, 124, "throughput 124 MiB/s is outside gp3's 125-1000 MiB/s"),
        (40, 4004, 1001, "throughput 1001 MiB/s is outside"),
        (40, 3000, 751, "throughput 751 MiB/s needs at least 3004 IOPS"),
    ],
)
def test_each_gp3_rule_is_refused_just_past_its_limit(
    size: int, iops: int, throughput: int, fragment: str
) -> None:
    problems = gp3_problems(size, iops, throughput)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_a_zero_size_volume_is_refused_for_its_size_and_its_iops() -> None:
    assert gp3_problems(0, 3000, 125) == [
        "size 0 GiB is outside gp3's 1-16384 GiB",
        "3000 IOPS needs at least 6 GiB (gp3 allows 500 IOPS per GiB; the volume has 0)",
    ]


def test_tags_leave_room_for_the_packages_own() -> None:
    room = limits.MAX_TAGS_PER_RESOURCE - limits.PACKAGE_TAGS_PER_RESOURCE
    assert room == 47
    assert tag_problems({f"k{i}": "v" for i in range(47)}) == []
    problems = tag_problems({f"k{i}": "v" for i in range(48)})
    assert problems == [
        "48 tags; AWS allows 50 per resource and this package adds up to 3, so at most 47"
    ]


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({"k" * 129: "v"}, "must be 1-128 characters"),
        ({"": "v"}, "must be 1-128 characters"),
        ({"team": "v" * 257}, "the value is over 256 characters"),
        ({"aws:owner": "me"}, "the 'aws:' prefix is reserved"),
        ({"AWS:owner": "me"}, "the 'aws:' prefix is reserved"),
    ],
)
def test_each_tag_rule_is_refused(tags: dict[str, str], fragment: str) -> None:
    problems = tag_problems(tags)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_tags_at_the_length_limits_are_accepted() -> None:
    assert tag_problems({"k" * 128: "v" * 256, "x": ""}) == []


def test_cloudwatch_retention_values_are_the_documented_ones() -> None:
    assert limits.CLOUDWATCH_RETENTION_DAYS == (
        1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
        1096, 1827, 2192, 2557, 2922, 3288, 3653,
    )  # fmt: skip


def test_user_data_limit_is_16_kib_raw() -> None:
    assert limits.USER_DATA_LIMIT_BYTES == 16 * 1024


def _names(prefix: str) -> list[str]:
    return limits.resource_prefix_problems(
        prefix, key_parameter=f"/localai/{prefix}/api-key", log_group=f"/localai/{prefix}"
    )


def test_a_prefix_at_the_name_tag_limit_is_accepted_and_one_more_is_not() -> None:
    # The longest Name tag is <prefix>-endpoint (9 characters): 247 + 9 = 256.
    assert _names("p" * 247) == []
    assert _names("p" * 248) == [
        f"the Name tag {'p' * 40}... would be 257 characters (AWS allows 256)"
    ]


def test_log_group_and_parameter_limits_are_checked_on_their_own() -> None:
    assert (
        limits.resource_prefix_problems("p", key_parameter="/a/b", log_group="/" + "g" * 511) == []
    )
    assert limits.resource_prefix_problems(
        "p", key_parameter="/a/b", log_group="/" + "g" * 512
    ) == ["the log group name would be 513 characters (CloudWatch allows 512)"]
    room = limits.SSM_PARAMETER_ARN_MAX_CHARS - limits.LONGEST_PARAMETER_ARN_PREFIX
    assert (
        limits.resource_prefix_problems("p", key_parameter="/" + "k" * (room - 1), log_group="/g")
        == []
    )
    assert (
        len(limits.resource_prefix_problems("p", key_parameter="/" + "k" * room, log_group="/g"))
        == 1
    )
    fifteen = "/" + "/".join(["l"] * 15)
    assert limits.resource_prefix_problems("p", key_parameter=fifteen, log_group="/g") == []
    assert limits.resource_prefix_problems("p", key_parameter=fifteen + "/l", log_group="/g") == [
        "the key parameter has 16 levels (SSM allows 15)"
    ]


def test_a_stack_name_too_long_for_aws_stops_before_any_resource() -> None:
    from components.errors import ConfigError
    from tests.components.aws.day_two import deploy

    with pytest.raises(
        ConfigError,
        match=r"project and stack name 'localai-s{10}.*' are too long for AWS: the Name tag",
    ):
        deploy({"target": "aws", "allowedCidrs": '["203.0.113.0/24"]'}, stack="s" * 240)
