"""Day two on AWS: each operation a user performs on a deployed stack, as a before/after
pair of program runs, and what must hold across it (issue 9).

Invariants checked on every pair: the weights volume keeps its URN and inputs (never
replaced, never shrunk); the host after the change boots an AMI of its own family.
"""

from __future__ import annotations

import pytest

from components.errors import ConfigError
from tests.components.aws.day_two import deploy, unchanged
from tests.support.pulumi_mocks import FAKE_AMI

INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
AWS = {"target": "aws", "allowedCidrs": '["203.0.113.0/24"]'}
UBUNTU_AMD64 = FAKE_AMI[
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
]
UBUNTU_ARM64 = FAKE_AMI[
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"
]
DLAMI = FAKE_AMI[
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
]


def with_type(instance_type: str, **extra: str) -> dict[str, str]:
    return {**AWS, "instanceType": instance_type, **extra}


def test_a_bigger_type_in_the_same_family_keeps_the_host_and_its_ami() -> None:
    before = deploy(with_type("c7i.xlarge"))
    after = deploy(with_type("c7i.2xlarge"))
    old, new = before.one(INSTANCE), after.one(INSTANCE)
    assert old.urn == new.urn, "same family: the same instance resource"
    assert new.inputs["ami"] == old.inputs["ami"] == UBUNTU_AMD64
    assert new.ignore_changes == ("ami",), "a new AMI release must not replace the host"
    assert unchanged(before, after, VOLUME)


@pytest.mark.parametrize(
    ("old_type", "new_type", "new_ami"),
    [
        ("c7i.xlarge", "c7g.xlarge", UBUNTU_ARM64),  # amd64 -> arm64
        ("c7g.xlarge", "c7i.xlarge", UBUNTU_AMD64),  # arm64 -> amd64
        ("c7i.xlarge", "g6.xlarge", DLAMI),  # CPU -> GPU
        ("g6.xlarge", "c7i.xlarge", UBUNTU_AMD64),  # GPU -> CPU
        ("g6.xlarge", "c7g.xlarge", UBUNTU_ARM64),
    ],
)
def test_a_change_of_family_is_a_new_host_on_that_familys_ami(
    old_type: str, new_type: str, new_ami: str
) -> None:
    """ignore_changes applies to replacements too: with one instance name, c7i -> c7g
    kept the amd64 AMI and c7i -> g6 booted Ubuntu without NVIDIA drivers (defect 1)."""
    before = deploy(with_type(old_type))
    after = deploy(with_type(new_type))
    old, new = before.one(INSTANCE), after.one(INSTANCE)
    assert old.urn != new.urn, "a new resource, which resolves its own AMI"
    assert new.inputs["ami"] == new_ami
    assert unchanged(before, after, VOLUME), "the weights volume moves over untouched"


def test_pinning_an_ami_replaces_the_host_with_it_and_unpinning_keeps_it() -> None:
    pinned = "ami-0fedcba9876543210"

    def known(mocks) -> None:
        mocks.extra_amis[pinned] = ("x86_64", 8)

    before = deploy(with_type("c7i.xlarge"))
    after = deploy(with_type("c7i.xlarge", amiId=pinned), setup=known)
    old, new = before.one(INSTANCE), after.one(INSTANCE)
    assert old.urn == new.urn
    assert new.inputs["ami"] == pinned
    assert new.ignore_changes == (), "with a pin, a changed AMI is a diff (replacement)"
    assert unchanged(before, after, VOLUME)
    assert after.result.outputs["amiId"] == pinned


def test_a_pinned_ami_of_another_architecture_is_refused_before_any_resource() -> None:
    def arm(mocks) -> None:
        mocks.extra_amis["ami-0aaaabbbbccccdddd"] = ("arm64", 8)

    with pytest.raises(
        ConfigError,
        match=r"localai:amiId = 'ami-0aaaabbbbccccdddd': it is an arm64 AMI, but the instance type needs x86_64",
    ):
        deploy(with_type("c7i.xlarge", amiId="ami-0aaaabbbbccccdddd"), setup=arm)


@pytest.mark.parametrize(("size", "ok"), [("74", False), ("75", True)])
def test_a_root_volume_smaller_than_the_amis_snapshot_is_refused(size: str, ok: bool) -> None:
    """The DLAMI's root snapshot (75 GiB in the mock) is larger than a CPU default; EC2
    would refuse at launch (defect 10)."""
    config = with_type("g6.xlarge", rootVolumeSizeGb=size)
    if ok:
        assert deploy(config).one(INSTANCE).inputs["rootBlockDevice"]["volumeSize"] == 75
        return
    with pytest.raises(
        ConfigError,
        match=r"localai:rootVolumeSizeGb = 74 GiB is smaller than the 75 GiB snapshot of AMI ami-0dlaminvidia000001",
    ):
        deploy(config)
