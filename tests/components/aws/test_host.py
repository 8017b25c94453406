"""components/aws/host.py + aws_launch.py under Pulumi mocks: a secure, durable EC2 host."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
import yaml

from components.aws.bootstrap.cloud_init import decode_write_file
from components.aws.host import ssm_port_forward_command, weights_device_path
from components.errors import ConfigError
from tests.components.aws.bootstrap.cloud_init_support import runcmd_steps
from tests.support.program_run import run_program
from tests.support.pulumi_mocks import FAKE_AMI, PRIVATE_SUBNET, RecordingMocks

INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
SG = "aws:ec2/securityGroup:SecurityGroup"
CIDRS = '["203.0.113.0/24"]'
AWS = {"target": "aws", "allowedCidrs": CIDRS}
SENTINEL_KEY = "sk-sentinel-AWS-0123456789abcdef"
PRIVATE = {"target": "aws", "public": "false", "subnetId": PRIVATE_SUBNET}
"""A private host goes into a subnet with a NAT route (the default VPC's have none)."""


def user_data(mocks: RecordingMocks) -> str:
    inputs = mocks.one(INSTANCE).inputs
    if "userDataBase64" in inputs:
        raw = base64.b64decode(inputs["userDataBase64"])
        return gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    return inputs["userData"]


def written_files(mocks: RecordingMocks) -> dict[str, str]:
    document = yaml.safe_load(user_data(mocks))
    return {entry["path"]: decode_write_file(entry) for entry in document["write_files"]}


def test_imdsv2_is_required(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    options = pulumi_mocks.one(INSTANCE).inputs["metadataOptions"]
    assert options["httpTokens"] == "required"
    assert options["httpEndpoint"] == "enabled"
    assert options["httpPutResponseHopLimit"] == 1, "containers must not reach the role"


def test_root_and_weights_volumes_are_encrypted_gp3(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    root = pulumi_mocks.one(INSTANCE).inputs["rootBlockDevice"]
    assert (root["encrypted"], root["volumeType"]) == (True, "gp3")
    weights = pulumi_mocks.one(VOLUME).inputs
    assert (weights["encrypted"], weights["type"]) == (True, "gp3")
    assert weights["throughput"] == 250
    assert weights["iops"] == 3000


def test_no_ssh_key_and_no_port_22_by_default(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    assert "keyName" not in pulumi_mocks.one(INSTANCE).inputs
    ingress = pulumi_mocks.one(SG).inputs["ingress"]
    assert [(r["fromPort"], r["toPort"], r["protocol"]) for r in ingress] == [(8080, 8080, "tcp")]


def test_ingress_is_only_the_api_port_from_allowed_cidrs(pulumi_mocks: RecordingMocks) -> None:
    run_program({**AWS, "allowedCidrs": '["203.0.113.0/24", "198.51.100.0/24"]', "port": "9000"})
    ingress = pulumi_mocks.one(SG).inputs["ingress"]
    assert all(r["fromPort"] == r["toPort"] == 9000 for r in ingress)
    assert [r.get("cidrBlocks") for r in ingress] == [["203.0.113.0/24"], ["198.51.100.0/24"]]
    assert all("ipv6CidrBlocks" not in r for r in ingress)


def test_ssh_opens_only_when_asked(pulumi_mocks: RecordingMocks) -> None:
    run_program({**AWS, "sshKeyName": "ops", "sshCidrs": '["198.51.100.0/24"]'})
    assert pulumi_mocks.one(INSTANCE).inputs["keyName"] == "ops"
    ssh = [r for r in pulumi_mocks.one(SG).inputs["ingress"] if r["fromPort"] == 22]
    assert [r["cidrBlocks"] for r in ssh] == [["198.51.100.0/24"]]


def test_instance_profile_allows_ssm_and_only_its_own_key_and_logs(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program(AWS)
    profile = pulumi_mocks.one("aws:iam/instanceProfile:InstanceProfile")
    assert pulumi_mocks.one(INSTANCE).inputs["iamInstanceProfile"] == f"{profile.name}-physical"
    managed = pulumi_mocks.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs
    assert managed["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    policy = json.loads(pulumi_mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    # "*" only where IAM has no resource to name, narrowed by a condition (PutMetricData to
    # the stack's namespace).
    unbounded = [s for s in policy["Statement"] if s.get("Resource") == "*"]
    assert [(s["Action"], list(s["Condition"]["StringEquals"])) for s in unbounded] == [
        (["cloudwatch:PutMetricData"], ["cloudwatch:namespace"])
    ]
    resources = [
        r for s in policy["Statement"] if s not in unbounded for r in s.get("Resource", [])
    ]
    assert "*" not in resources
    assert any(r.endswith("parameter/localai/localai-test/api-key") for r in resources)
    trust = json.loads(pulumi_mocks.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


@pytest.mark.parametrize(
    ("instance_type", "accelerator", "parameter"),
    [
        (
            "c7i.xlarge",
            "auto",
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
        ),
        (
            "c7a.2xlarge",
            "cpu",
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
        ),
        (
            "c7g.xlarge",
            "auto",
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id",
        ),
        (
            "m7g.xlarge",
            "cpu",
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id",
        ),
        (
            "g6.xlarge",
            "gpu",
            "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id",
        ),
        (
            "g4dn.xlarge",
            "auto",
            "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id",
        ),
    ],
)
def test_ami_follows_the_instance_type_and_architecture(
    instance_type: str, accelerator: str, parameter: str, pulumi_mocks: RecordingMocks
) -> None:
    run_program(
        {
            **AWS,
            "instanceType": instance_type,
            "accelerator": accelerator,
            "models": '["qwen2.5-0.5b-instruct"]',
        }
    )
    asked = [
        c[1]["name"] for c in pulumi_mocks.calls if c[0] == "aws:ssm/getParameter:getParameter"
    ]
    assert asked == [parameter]
    instance = pulumi_mocks.one(INSTANCE)
    assert instance.inputs["ami"] == FAKE_AMI[parameter]
    assert instance.inputs["instanceType"] == instance_type
    assert "ami" in instance.ignore_changes, "a new AMI release must not replace the host"


def test_docker_is_installed_on_cpu_hosts_only(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    assert "docker.io" in yaml.safe_load(user_data(pulumi_mocks)).get("packages", [])
    pulumi_mocks.resources.clear()
    run_program({**AWS, "accelerator": "gpu"})
    assert "docker.io" not in (yaml.safe_load(user_data(pulumi_mocks)).get("packages") or [])


def test_weights_volume_is_independent_of_the_instance(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    volume = pulumi_mocks.one(VOLUME)
    assert volume.inputs["availabilityZone"] == "us-east-1a", "the subnet's AZ, not the instance's"
    assert not any("Instance" in dep for dep in volume.dependencies), volume.dependencies
    assert volume.retain_on_delete, "kept on `pulumi destroy` by default"
    attachment = pulumi_mocks.one("aws:ec2/volumeAttachment:VolumeAttachment")
    assert attachment.inputs["volumeId"] == "vol-0fedcba9876543210"
    assert attachment.inputs["stopInstanceBeforeDetaching"] is True
    assert attachment.delete_before_replace, "detach from the old host before attaching"
    instance = pulumi_mocks.one(INSTANCE)
    assert instance.inputs["subnetId"] == "subnet-0aaaa000000000000"
    assert instance.inputs["userDataReplaceOnChange"] is True


def test_volume_can_be_released_on_destroy_when_asked(pulumi_mocks: RecordingMocks) -> None:
    run_program({**AWS, "keepVolumeOnDestroy": "false"})
    assert not pulumi_mocks.one(VOLUME).retain_on_delete


@pytest.mark.parametrize(
    ("models", "expected_gb"),
    [('["qwen2.5-0.5b-instruct"]', 20), ('["llama-3.1-8b-instruct", "phi-3.5-mini-instruct"]', 20)],
)
def test_volume_is_sized_from_the_models(
    models: str, expected_gb: int, pulumi_mocks: RecordingMocks
) -> None:
    run_program({**AWS, "models": models, "instanceType": "m7i.xlarge"})
    assert pulumi_mocks.one(VOLUME).inputs["size"] == expected_gb


@pytest.mark.parametrize(("throughput", "iops"), [(250, 3000), (750, 3000), (1000, 4000)])
def test_weights_volume_iops_cover_its_throughput(
    pulumi_mocks: RecordingMocks, throughput: int, iops: int
) -> None:
    """AWS refuses gp3 throughput above IOPS x 0.25: 1000 MiB/s with 3000 IOPS fails."""
    run_program({**AWS, "volumeThroughput": str(throughput)})
    volume = pulumi_mocks.one(VOLUME).inputs
    assert (volume["throughput"], volume["iops"]) == (throughput, iops)


def test_volume_size_and_throughput_are_overridable(pulumi_mocks: RecordingMocks) -> None:
    run_program({**AWS, "volumeSizeGb": "200", "volumeThroughput": "600"})
    inputs = pulumi_mocks.one(VOLUME).inputs
    assert (inputs["size"], inputs["throughput"]) == (200, 600)


def test_the_key_never_reaches_user_data(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS | {"apiKey": SENTINEL_KEY}, secret_keys=("apiKey",))
    text = user_data(pulumi_mocks)
    files = written_files(pulumi_mocks)
    assert SENTINEL_KEY not in text
    assert all(SENTINEL_KEY not in content for content in files.values())
    assert "/localai/localai-test/api-key" in "\n".join(files.values()), "only the name"
    parameter = pulumi_mocks.one("aws:ssm/parameter:Parameter").inputs
    assert parameter["type"] == "SecureString"
    assert parameter["value"]["value"] == SENTINEL_KEY
    # Only the encrypted parameter and the local readiness check (env, secret) hold it.
    holders = {"aws:ssm/parameter:Parameter", "command:local:Command"}
    for registration in pulumi_mocks.resources:
        if registration.typ not in holders:
            assert SENTINEL_KEY not in json.dumps(registration.inputs, default=str), (
                registration.urn
            )


def test_user_data_mounts_the_volume_by_its_nvme_id(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    expected = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0fedcba9876543210"
    assert expected in "\n".join(written_files(pulumi_mocks).values())


def test_gpu_host_gets_both_model_sets(pulumi_mocks: RecordingMocks) -> None:
    run_program({**AWS, "accelerator": "gpu", "models": '["llama-3.1-8b-instruct"]'})
    files = written_files(pulumi_mocks)
    gpu = yaml.safe_load(files["/etc/localai/models/gpu/llama-3.1-8b-instruct.yaml"])
    cpu = yaml.safe_load(files["/etc/localai/models/cpu/llama-3.1-8b-instruct.yaml"])
    assert gpu["gpu_layers"] == 99 and cpu["gpu_layers"] == 0


def test_logs_go_to_a_log_group_with_retention(pulumi_mocks: RecordingMocks) -> None:
    run_program({**AWS, "logRetentionDays": "14"})
    group = pulumi_mocks.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert (group["name"], group["retentionInDays"]) == ("/localai/localai-test", 14)
    assert "/localai/localai-test" in "\n".join(written_files(pulumi_mocks).values())


def test_public_stack_has_a_stable_address_and_waits_for_readiness(
    pulumi_mocks: RecordingMocks,
) -> None:
    result = run_program(AWS)
    assert pulumi_mocks.one(INSTANCE).inputs["associatePublicIpAddress"] is True
    assert pulumi_mocks.one("aws:ec2/eip:Eip")
    ready = pulumi_mocks.one("command:local:Command")
    assert "--base-url http://198.51.100.7:8080/v1" in ready.inputs["create"]
    assert "localai:allowedCidrs" in ready.inputs["create"], "the failure says what to check"
    assert ready.inputs["triggers"][0] == "i-0123456789abcdef0"
    assert result.outputs["OPENAI_BASE_URL"] == "http://198.51.100.7:8080/v1"


def test_private_stack_has_no_public_ip_and_skips_the_wait(pulumi_mocks: RecordingMocks) -> None:
    result = run_program(PRIVATE)
    assert pulumi_mocks.one(INSTANCE).inputs["associatePublicIpAddress"] is False
    assert not pulumi_mocks.of_type("aws:ec2/eip:Eip")
    assert not pulumi_mocks.of_type("command:local:Command")
    assert pulumi_mocks.one(SG).inputs.get("ingress", []) == []
    assert result.outputs["OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1", "via the port forward"
    assert result.outputs["ssmPortForwardCommand"] == "scripts/port-forward.sh"


def test_given_subnet_is_used_without_looking_up_the_default_vpc(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program({**AWS, "subnetId": "subnet-0cccc000000000000"})
    assert pulumi_mocks.one(INSTANCE).inputs["subnetId"] == "subnet-0cccc000000000000"
    tokens = [c[0] for c in pulumi_mocks.calls]
    assert "aws:ec2/getVpc:getVpc" not in tokens


def test_children_are_parented_under_the_host(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    by_urn = {r.urn: r for r in pulumi_mocks.resources}
    for registration in pulumi_mocks.resources:
        if registration.typ == "localai:aws:Host":
            continue
        ancestor = by_urn.get(registration.parent)
        while ancestor is not None and ancestor.typ != "localai:aws:Host":
            ancestor = by_urn.get(ancestor.parent)
        assert ancestor is not None, f"{registration.urn} is not under the host component"


def test_weights_device_path_and_port_forward_command() -> None:
    assert (
        weights_device_path("vol-0abc") == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc"
    )
    command = ssm_port_forward_command("i-1", "eu-west-1", 8080)
    assert command.startswith("aws ssm start-session --region eu-west-1 --target i-1 ")
    assert "AWS-StartPortForwardingSession" in command
    assert "portNumber=8080,localPortNumber=8080" in command


def test_user_data_that_cannot_fit_is_refused_before_any_resource() -> None:
    import dataclasses
    import random

    from components.aws.host import AwsHostArgs, check_user_data
    from components.aws.launch import ResolvedAmi, host_image
    from components.aws.network import Placement
    from components.serving import ServingArgs
    from components.sizing.instance_types import lookup

    instance = lookup("c7i.xlarge")
    noise = random.Random(7)
    # Incompressible model files: far beyond what 16 KiB of gzipped user data can hold.
    bulky = {
        f"m{i}.yaml": f"name: m{i}\ndescription: "
        + "".join(noise.choice("abcdefghijklmnop") for _ in range(6000))
        + "\n"
        for i in range(6)
    }
    serving = ServingArgs(
        default_model="m0",
        api_key=None,
        port=8080,
        cpu_limit=3.5,
        memory_limit_mb=7168,
        threads=2,
        parallel_requests=1,
        single_active_backend=False,
        wait_for_ready=True,
        ready_timeout_seconds=600,
        keep_volume_on_destroy=True,
    )
    args = AwsHostArgs(
        serving=serving,
        instance=instance,
        image=host_image(instance),
        ami=ResolvedAmi("ami-0ubuntuamd64000001", "x86_64", 8, pinned=False),
        cpu_image="localai/localai:v2.24.0-ffmpeg-core",
        gpu_image="localai/localai:v2.24.0-cublas-cuda12",
        gpu_capable=False,
        cpu_model_files={"m0.yaml": "name: m0\n"},
        gpu_model_files={},
        public=True,
        allowed_cidrs=["203.0.113.0/24"],
        volume_size_gb=20,
        volume_throughput=250,
        root_volume_size_gb=30,
        placement=Placement("subnet-0aaaa000000000000", "us-east-1a", "vpc-0def000000000000a"),
        weights_manifest="",
        log_retention_days=30,
        resource_prefix="localai-test",
    )
    check_user_data(args)  # the normal case passes
    with pytest.raises(ConfigError, match=r"cannot be deployed to EC2: .*EC2 allows 16384"):
        check_user_data(dataclasses.replace(args, cpu_model_files=bulky))


def test_user_data_is_gzipped_and_deterministic(pulumi_mocks: RecordingMocks) -> None:
    run_program(
        localai_gpu := {
            **AWS,
            "accelerator": "gpu",
            "models": '["llama-3.1-8b-instruct", "phi-3.5-mini-instruct", "qwen2.5-0.5b-instruct"]',
        }
    )
    first = pulumi_mocks.one(INSTANCE).inputs["userDataBase64"]
    assert base64.b64decode(first)[:2] == b"\x1f\x8b"
    assert len(base64.b64decode(first)) <= 16384, "all three models on a GPU host fit"
    assert user_data(pulumi_mocks).startswith("#cloud-config\n")
    pulumi_mocks.resources.clear()
    run_program(localai_gpu)
    assert pulumi_mocks.one(INSTANCE).inputs["userDataBase64"] == first, (
        "no replacement for nothing"
    )


KEPT_VOLUME = "vol-0cee000000000001"


def test_a_kept_volume_is_attached_instead_of_a_new_one(pulumi_mocks: RecordingMocks) -> None:
    """After `pulumi destroy` kept the weights, the next stack reuses them: no download."""
    result = run_program({**AWS, "weightsVolumeId": KEPT_VOLUME})
    assert not pulumi_mocks.of_type(VOLUME), "no new volume"
    attachment = pulumi_mocks.one("aws:ec2/volumeAttachment:VolumeAttachment").inputs
    assert attachment["volumeId"] == KEPT_VOLUME
    assert pulumi_mocks.one(INSTANCE).inputs["subnetId"] == "subnet-0bbbb000000000000", (
        "a subnet in the volume's zone (us-east-1b)"
    )
    device = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0cee000000000001"
    assert device in "\n".join(written_files(pulumi_mocks).values())
    assert result.outputs["weightsVolumeId"] == KEPT_VOLUME


def test_a_kept_volume_in_another_zone_than_the_subnet_is_refused(
    pulumi_mocks: RecordingMocks,
) -> None:
    with pytest.raises(
        ConfigError, match=r"is in us-east-1b but localai:subnetId subnet-0aaaa\w+ is in us-east-1a"
    ):
        run_program({**AWS, "weightsVolumeId": KEPT_VOLUME, "subnetId": "subnet-0aaaa000000000000"})
    assert pulumi_mocks.resources == [], "refused before any resource"


def test_the_role_reads_no_parameter_but_its_own_key(pulumi_mocks: RecordingMocks) -> None:
    """AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on *: without an explicit
    Deny the host could read every parameter in the account (issue 9, defect 7)."""
    run_program(AWS)
    key = pulumi_mocks.one("aws:ssm/parameter:Parameter")
    key_arn = f"arn:aws:ssm:us-east-1:123456789012:parameter{key.inputs['name']}"
    policy = json.loads(pulumi_mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert denies == [
        {
            "Sid": "NoOtherParameters",
            "Effect": "Deny",
            "Action": [
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:GetParametersByPath",
                "ssm:GetParameterHistory",
            ],
            "NotResource": [key_arn],
        }
    ]


@pytest.mark.parametrize("partition", ["aws", "aws-us-gov", "aws-cn"])
def test_managed_policy_arn_uses_the_accounts_partition(
    pulumi_mocks: RecordingMocks, partition: str
) -> None:
    pulumi_mocks.partition = partition
    run_program(AWS)
    managed = pulumi_mocks.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs
    assert managed["policyArn"] == f"arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"


def test_the_instance_waits_for_its_roles_policies(pulumi_mocks: RecordingMocks) -> None:
    """Depending on the profile alone lets the first boot run before the role may read
    the key (issue 9, defect 8)."""
    run_program(AWS)
    instance = pulumi_mocks.one(INSTANCE)
    policies = [
        pulumi_mocks.one("aws:iam/rolePolicy:RolePolicy").urn,
        pulumi_mocks.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").urn,
    ]
    assert set(policies) <= set(instance.dependencies), instance.dependencies


def test_a_private_stack_admits_only_its_allowed_cidrs(pulumi_mocks: RecordingMocks) -> None:
    """README: no inbound rule by default; only allowedCidrs (e.g. the VPC's range)."""
    run_program(PRIVATE)
    assert pulumi_mocks.one(SG).inputs.get("ingress", []) == []


def test_a_private_stack_with_a_vpc_range_admits_it(pulumi_mocks: RecordingMocks) -> None:
    run_program({**PRIVATE, "allowedCidrs": '["10.0.0.0/16"]'})
    ingress = pulumi_mocks.one(SG).inputs["ingress"]
    assert [(r["fromPort"], r["cidrBlocks"]) for r in ingress] == [(8080, ["10.0.0.0/16"])]


def test_a_volume_the_user_named_is_never_formatted_by_the_host(
    pulumi_mocks: RecordingMocks,
) -> None:
    """Both the boot-time prepare (runcmd) and the unit's (localai.conf) get the flag."""
    run_program({**AWS, "weightsVolumeId": "vol-0123456789abcdef0"})
    document = yaml.safe_load(user_data(pulumi_mocks))
    assert "PREPARE_VOLUME_NEVER_FORMAT=1" in runcmd_steps(document)[0]
    assert (
        "\nPREPARE_VOLUME_NEVER_FORMAT=1\n"
        in written_files(pulumi_mocks)["/etc/localai/localai.conf"]
    )


def test_a_volume_the_stack_created_may_be_formatted_when_blank(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program(AWS)
    assert (
        "PREPARE_VOLUME_NEVER_FORMAT=0" in runcmd_steps(yaml.safe_load(user_data(pulumi_mocks)))[0]
    )


TOKEN = "hf_sentinel_token_0123456789abcdef"


def test_a_gated_models_token_is_an_ssm_secret_only_the_host_reads(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program({**AWS, "hfToken": TOKEN}, secret_keys=("hfToken",))
    params = {r.name: r for r in pulumi_mocks.of_type("aws:ssm/parameter:Parameter")}
    token = params["localai-hf-token"].inputs
    assert token["type"] == "SecureString" and token["name"] == "/localai/localai-test/hf-token"
    assert isinstance(token["value"], dict), "the value is a Pulumi secret"
    policy = json.loads(pulumi_mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    allow = next(s for s in policy["Statement"] if s["Sid"] == "ReadEndpointApiKey")
    deny = next(s for s in policy["Statement"] if s["Sid"] == "NoOtherParameters")
    assert any(a.endswith("parameter/localai/localai-test/hf-token") for a in allow["Resource"])
    assert allow["Resource"] == deny["NotResource"]
    assert TOKEN not in user_data(pulumi_mocks)
    conf = written_files(pulumi_mocks)["/etc/localai/localai.conf"]
    assert "\nLOCALAI_HF_TOKEN_PARAMETER=/localai/localai-test/hf-token\n" in conf


def test_no_token_no_parameter(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    assert [r.name for r in pulumi_mocks.of_type("aws:ssm/parameter:Parameter")] == [
        "localai-api-key"
    ]
    assert (
        "\nLOCALAI_HF_TOKEN_PARAMETER=\n"
        in written_files(pulumi_mocks)["/etc/localai/localai.conf"]
    )
