"""Day two on AWS: each operation a user performs on a deployed stack, as a before/after
pair of program runs, and what must hold across it (issue 9).

Invariants checked on every pair: the weights volume keeps its URN and inputs (never
replaced, never shrunk); the host after the change boots an AMI of its own family.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from components.aws import network
from components.errors import ConfigError
from tests.components.aws.day_two import deploy, reveal, touched, unchanged
from tests.support.pulumi_mocks import FAKE_AMI, PRIVATE_SUBNET

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


def deployed_volume(size_gib: int, zone: str = "us-east-1a"):
    """The stack's attached weights volume, where the first deploy put it (us-east-1a)."""

    def setup(mocks) -> None:
        mocks.deployed_volumes["vol-0deployed000000001"] = (size_gib, zone)

    return setup


def changed_inputs(before, after, typ: str) -> dict[str, tuple]:
    old, new = before.one(typ), after.one(typ)
    assert old.urn == new.urn, f"{typ} must keep its URN"
    keys = set(old.inputs) | set(new.inputs)
    old_inputs, new_inputs = reveal(old.inputs), reveal(new.inputs)
    return {
        k: (old_inputs.get(k), new_inputs.get(k))
        for k in keys
        if old_inputs.get(k) != new_inputs.get(k)
    }


def test_removing_a_model_never_shrinks_the_deployed_volume() -> None:
    """The computed size drops when a model goes (20 GiB for phi alone); EBS refuses to
    shrink, so the deployed 40 GiB stays (defect 5)."""
    models = '["phi-3.5-mini-instruct", "llama-3.1-8b-instruct"]'
    before = deploy({**AWS, "models": models, "volumeSizeGb": "40"})
    after = deploy(AWS, setup=deployed_volume(40))
    assert before.one(VOLUME).inputs["size"] == after.one(VOLUME).inputs["size"] == 40
    assert unchanged(before, after, VOLUME)


def test_a_first_deploy_sizes_the_volume_from_the_models() -> None:
    assert deploy(AWS).one(VOLUME).inputs["size"] == 20


def test_asking_for_less_than_the_deployed_volume_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"localai:volumeSizeGb = 30: the weights volume vol-0deployed000000001 is 40 GiB and EBS volumes cannot shrink",
    ):
        deploy({**AWS, "volumeSizeGb": "30"}, setup=deployed_volume(40))
    assert (
        deploy({**AWS, "volumeSizeGb": "40"}, setup=deployed_volume(40)).one(VOLUME).inputs["size"]
        == 40
    )


def test_a_volume_too_small_for_the_weights_is_refused_with_the_numbers() -> None:
    # phi 2,393,231,072 B + llama 4,920,734,016 B + nomic 146,146,432 B = 7,460,111,520 B;
    # x 1.1 = 8,206,122,672 B = 7.64 GiB -> 8 GiB at least.
    models = '["phi-3.5-mini-instruct", "llama-3.1-8b-instruct"]'
    with pytest.raises(
        ConfigError,
        match=r"localai:volumeSizeGb = 7: the weights need 8 GiB \(phi-3.5-mini-instruct 2.39 GB \+ llama-3.1-8b-instruct 4.92 GB \+ nomic-embed-text-v1.5 0.15 GB, plus 10% for the filesystem\); use at least 8",
    ):
        deploy({**AWS, "models": models, "volumeSizeGb": "7"})
    assert deploy({**AWS, "models": models, "volumeSizeGb": "8"}).one(VOLUME).inputs["size"] == 8


def test_growing_the_volume_changes_only_its_size_and_records_when() -> None:
    before = deploy({**AWS, "volumeSizeGb": "40"})
    after = deploy({**AWS, "volumeSizeGb": "60"}, setup=deployed_volume(40))
    changed = changed_inputs(before, after, VOLUME)
    assert set(changed) == {"size", "tags"} and changed["size"] == (40, 60)
    old_tags, new_tags = changed["tags"]
    assert set(new_tags) - set(old_tags) == {"localai:modified-at"}
    assert {k: v for k, v in new_tags.items() if k != "localai:modified-at"} == old_tags


# -- issue 18, item 10: EBS's six-hour cooldown, and a detached volume ------------------------

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def modified(hours_ago: float, size: int = 40, throughput: int = 250):
    def setup(mocks) -> None:
        mocks.deployed_volumes["vol-0deployed000000001"] = (size, "us-east-1a")
        mocks.deployed_volume_throughput["vol-0deployed000000001"] = throughput
        stamp = (NOW - timedelta(hours=hours_ago)).isoformat()
        mocks.deployed_volume_tags["vol-0deployed000000001"] = {"localai:modified-at": stamp}

    return setup


@pytest.fixture
def now(monkeypatch) -> datetime:
    monkeypatch.setattr(network, "utc_now", lambda: NOW)
    return NOW


@pytest.mark.parametrize(
    "change", [{"volumeSizeGb": "60"}, {"volumeThroughput": "500"}], ids=["size", "throughput"]
)
def test_a_second_volume_change_within_six_hours_is_refused_with_when(now, change) -> None:
    """EBS refuses a modification within six hours of the last; `pulumi up` failed after
    updating the rest of the stack."""
    with pytest.raises(
        ConfigError,
        match=r"was modified at 2026-12-04 07:00 UTC.*retry after 2026-12-04 13:00 UTC",
    ):
        deploy({**AWS, "volumeSizeGb": "40", **change}, setup=modified(5))


def test_a_volume_change_after_six_hours_goes_ahead_and_is_recorded(now) -> None:
    after = deploy({**AWS, "volumeSizeGb": "60"}, setup=modified(6))
    volume = after.one(VOLUME).inputs
    assert volume["size"] == 60
    assert volume["tags"]["localai:modified-at"] == "2026-12-04T12:00:00+00:00"


def test_an_unrelated_change_keeps_the_recorded_time(now) -> None:
    after = deploy({**AWS, "volumeSizeGb": "40", "logRetentionDays": "30"}, setup=modified(1))
    assert after.one(VOLUME).inputs["tags"]["localai:modified-at"] == "2026-12-04T11:00:00+00:00"


def test_the_shrink_guard_finds_a_detached_volume_too() -> None:
    """Only in-use volumes were looked up: between a host's replacement and the attachment,
    a shrink went through to EBS (item 10)."""
    deployment = deploy({**AWS, "volumeSizeGb": "40"}, setup=deployed_volume(40))
    (filters,) = [
        args["filters"]
        for token, args in deployment.mocks.calls
        if token == "aws:ebs/getEbsVolumes:getEbsVolumes"
    ]
    status = next(f["values"] for f in filters if f["name"] == "status")
    assert set(status) == {"in-use", "available"}


def test_raising_throughput_changes_only_throughput_and_iops() -> None:
    before = deploy(AWS)
    after = deploy({**AWS, "volumeThroughput": "1000"})
    assert changed_inputs(before, after, VOLUME) == {
        "throughput": (250, 1000),
        "iops": (3000, 4000),
    }
    assert before.one(INSTANCE).urn == after.one(INSTANCE).urn


def test_rotating_the_key_reaches_the_host_and_is_proven_by_the_wait() -> None:
    """A new localai:apiKey changed only the SSM parameter; the host kept the old key and
    nothing re-checked (defect 6). Now the parameter's version is a readiness trigger, the
    wait retries while the host reloads and proves another key is refused; the instance
    is not replaced (the key is not in its user data)."""
    old_key, new_key = "sk-old-" + "a" * 24, "sk-new-" + "b" * 24

    def version(n: int):
        def setup(mocks) -> None:
            mocks.key_version = n

        return setup

    before = deploy({**AWS, "apiKey": old_key}, secret_keys=("apiKey",), setup=version(1))
    after = deploy({**AWS, "apiKey": new_key}, secret_keys=("apiKey",), setup=version(2))
    parameter = "aws:ssm/parameter:Parameter"
    assert changed_inputs(before, after, parameter) == {"value": (old_key, new_key)}
    assert unchanged(before, after, INSTANCE)
    assert unchanged(before, after, VOLUME)
    command = "command:local:Command"
    old_wait, new_wait = before.one(command), after.one(command)
    assert old_wait.urn == new_wait.urn
    assert old_wait.inputs["triggers"] != new_wait.inputs["triggers"], "the wait runs again"
    assert 2 in new_wait.inputs["triggers"]
    assert "--check-other-key-refused" in new_wait.inputs["create"]
    assert "--auth-grace 180" in new_wait.inputs["create"]
    assert reveal(new_wait.inputs["environment"])["OPENAI_API_KEY"] == new_key


# -- what else a change touches: nothing the user did not change ---------------------------

HOST_REPLACED = {
    # The instance and what names it (attachment, address association, readiness wait).
    "aws:ec2/instance:Instance::localai-instance": "changed",
    "aws:ec2/volumeAttachment:VolumeAttachment::localai-weights-attachment": "changed",
    "aws:ec2/eipAssociation:EipAssociation::localai-address-association": "changed",
    "command:local:Command::localai-ready": "changed",
}


def test_a_bigger_instance_type_touches_only_the_host() -> None:
    """The instance changes (its type; the provider stops and resizes it, or replaces it);
    the volume, key, role, log group, address and security group stay as they are."""
    before = deploy(with_type("c7i.xlarge"))
    after = deploy(with_type("c7i.2xlarge"))
    assert touched(before, after) == {"aws:ec2/instance:Instance::localai-instance": "changed"}


def test_adding_a_model_replaces_only_the_host_and_keeps_the_volume() -> None:
    """The models are in the user data (a new host downloads nothing it has: the weights
    are on the volume); with the same volume size nothing else changes."""
    before = deploy({**AWS, "volumeSizeGb": "40"})
    after = deploy(
        {
            **AWS,
            "volumeSizeGb": "40",
            "models": '["phi-3.5-mini-instruct", "qwen2.5-0.5b-instruct"]',
        },
        setup=deployed_volume(40),
    )
    changes = touched(before, after)
    assert changes.pop("aws:ec2/instance:Instance::localai-instance") == "changed"
    assert set(changes) <= set(HOST_REPLACED), changes
    assert unchanged(before, after, VOLUME)
    old_ud, new_ud = (d.one(INSTANCE).inputs["userDataBase64"] for d in (before, after))
    assert old_ud != new_ud


def test_going_private_removes_the_address_and_keeps_the_volume() -> None:
    before = deploy(AWS)  # the default VPC's first subnet, us-east-1a
    after = deploy(
        {"target": "aws", "public": "false", "subnetId": PRIVATE_SUBNET},
        setup=deployed_volume(20),
    )
    changes = touched(before, after)
    assert changes["aws:ec2/eip:Eip::localai-address"] == "deleted"
    assert (
        changes["aws:ec2/eipAssociation:EipAssociation::localai-address-association"] == "deleted"
    )
    assert changes["command:local:Command::localai-ready"] == "deleted", (
        "cannot reach a private host"
    )
    assert changes["aws:ec2/instance:Instance::localai-instance"] == "changed"
    assert after.one(INSTANCE).inputs["associatePublicIpAddress"] is False
    assert unchanged(before, after, VOLUME), "same zone (us-east-1a): the weights stay"
    assert "aws:ebs/volume:Volume::localai-weights" not in changes
