"""``localai:egress none`` on the single VM (issue 20): the rendered stack has no path out.

The proof is over what the program declares: every security group rule the host has,
every route it can use, every endpoint, and where its image and weights come from. The
cloud is mocked (tests/support/pulumi_mocks.py); our code runs for real.
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json

import pytest
import yaml

from components.aws.store_names import bucket_name, mirror_tag, repository_name
from components.errors import ConfigError
from components.models.catalog import load_catalog
from components.models.facts import load_facts_for
from components.settings import DEFAULT_EMBEDDING_MODEL, DEFAULT_MODEL
from components.weights.manifest import weights_manifest
from components.weights.mirror import object_key, parse_manifest
from tests.components.aws.bootstrap.cloud_init_support import uploaded_bundle_files
from tests.components.aws.day_two import deploy, touched
from tests.support.pulumi_mocks import ACCOUNT, DEFAULT_VPC, PRIVATE_SUBNET, RecordingMocks

SEALED_SUBNET = "subnet-0dddd0000000000aa"
SEALED_TABLE = "rtb-0sealed"
VPC_CIDR = "172.31.0.0/16"
PREFIX = "localai-test"
REPOSITORY = repository_name(PREFIX)
BUCKET = bucket_name(PREFIX, ACCOUNT, "us-east-1")
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
CPU_IMAGE = "localai/localai:v2.24.0-ffmpeg-core"
GPU_IMAGE = "localai/localai:v2.24.0-cublas-cuda12-core"
DIGESTS = {CPU_IMAGE: "sha256:" + "c" * 64, GPU_IMAGE: "sha256:" + "9" * 64}
SEALED = {"target": "aws", "public": "false", "egress": "none", "subnetId": SEALED_SUBNET}
SG = "aws:ec2/securityGroup:SecurityGroup"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
INSTANCE = "aws:ec2/instance:Instance"


def manifest_for(models: list[str]) -> str:
    catalog = load_catalog()
    return weights_manifest([catalog[m] for m in models], dict(load_facts_for(models)))


DEFAULT_MANIFEST = manifest_for([DEFAULT_MODEL, DEFAULT_EMBEDDING_MODEL])


def sealed_subnet(mocks: RecordingMocks) -> None:
    """A private subnet of the default VPC whose table has no 0.0.0.0/0 route at all."""
    mocks.vpc_subnets[DEFAULT_VPC].append(SEALED_SUBNET)
    mocks.subnet_route_tables[SEALED_SUBNET] = SEALED_TABLE
    mocks.route_tables[SEALED_TABLE] = []


def mirrored(
    mocks: RecordingMocks,
    *,
    images: tuple[str, ...] = (CPU_IMAGE,),
    manifest: str = DEFAULT_MANIFEST,
    mutability: str = "IMMUTABLE",
) -> None:
    """The stores as the mirror scripts leave them, and the sealed subnet."""
    sealed_subnet(mocks)
    mocks.ecr_repositories[REPOSITORY] = {
        "mutability": mutability,
        "images": {mirror_tag(i): DIGESTS[i] for i in images},
    }
    mocks.buckets[BUCKET] = {
        object_key(line): (line.size or 4096, line.sha256) for line in parse_manifest(manifest)
    }


def user_data(instance) -> dict:
    raw = gzip.decompress(base64.b64decode(instance.inputs["userDataBase64"])).decode()
    return yaml.safe_load(raw)


def files_of(placed) -> dict[str, str]:
    """The single host's files: its user data's, and a sealed host's bundle's."""
    files = {f["path"]: f["content"] for f in user_data(placed.one(INSTANCE))["write_files"]}
    if placed.mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        files.update(uploaded_bundle_files(placed))
    return files


def conf_of(placed) -> dict[str, str]:
    text = files_of(placed)["/etc/localai/localai.conf"]
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def stores_read(placed):
    return {r.name: r for r in placed.mocks.of_type("aws:iam/rolePolicy:RolePolicy")}[
        "localai-stores-read"
    ]


# -- the proof: nothing lets the host reach outside the VPC and AWS's regional services --


def assert_no_path_out(placed) -> None:
    groups = {r.name: r for r in placed.mocks.of_type(SG)}
    host = groups["localai-sg"].inputs
    endpoints_sg = groups["localai-sealed-endpoints-sg"].inputs
    # Egress: HTTPS to the endpoints' group and to S3's prefix list, nothing else.
    assert host["egress"] == [
        {"protocol": "tcp", "fromPort": 443, "toPort": 443,
         "securityGroups": ["sg-0e0d000000000000e"],
         "description": "VPC interface endpoints (SSM, logs, ECR)"},
        {"protocol": "tcp", "fromPort": 443, "toPort": 443, "prefixListIds": ["pl-63a5400a"],
         "description": "S3 through the gateway endpoint (weights, image layers)"},
    ]  # fmt: skip
    for rule in host["egress"]:
        assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks")
    # Ingress: nothing from outside the VPC (no API port, no SSH from the internet).
    for rule in host.get("ingress", []):
        for cidr in rule.get("cidrBlocks", []):
            assert ipaddress.ip_network(cidr).is_private, rule
    assert endpoints_sg["ingress"] == [
        {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": [VPC_CIDR],
         "description": "the VPC (the LocalAI hosts)"},
    ]  # fmt: skip
    assert "egress" not in endpoints_sg or not endpoints_sg["egress"]
    # Every endpoint is one of AWS's regional services, in the host's subnet or table.
    endpoints = {r.name: r.inputs for r in placed.mocks.of_type(ENDPOINT)}
    assert sorted(endpoints) == sorted(
        f"localai-endpoint-{s}"
        # monitoring: the CloudWatch agent's PutMetricData (its .deb comes through S3).
        for s in ("ssm", "ssmmessages", "ec2messages", "logs", "ecr-api", "ecr-dkr",
                  "monitoring", "s3")
    )  # fmt: skip
    for name, inputs in endpoints.items():
        service = name.removeprefix("localai-endpoint-").replace("-", ".")
        assert inputs["serviceName"] == f"com.amazonaws.us-east-1.{service}"
        assert inputs["vpcId"] == DEFAULT_VPC
        if service == "s3":
            assert inputs["vpcEndpointType"] == "Gateway"
            assert inputs["routeTableIds"] == [SEALED_TABLE]
        else:
            assert inputs["vpcEndpointType"] == "Interface"
            assert inputs["subnetIds"] == [SEALED_SUBNET]
            assert inputs["securityGroupIds"] == ["sg-0e0d000000000000e"]
            assert inputs["privateDnsEnabled"] is True
    # No address on the internet, and a subnet whose table has no way out.
    instance = placed.one(INSTANCE).inputs
    assert instance["associatePublicIpAddress"] is False
    assert instance["subnetId"] == SEALED_SUBNET
    assert placed.mocks.of_type("aws:ec2/eip:Eip") == []
    assert placed.mocks.route_tables[SEALED_TABLE] == []
    # Nothing the host is told to fetch is outside its own stores.
    conf = conf_of(placed)
    for key in ("LOCALAI_CPU_IMAGE", "LOCALAI_GPU_IMAGE"):
        assert conf[key] == "" or conf[key].startswith(f"{REGISTRY}/{REPOSITORY}@sha256:")
    for line in parse_manifest(files_of(placed)["/etc/localai/weights.tsv"]):
        assert line.url == f"s3://{BUCKET}/{object_key(line)}"
    cloud = user_data(placed.one(INSTANCE))
    assert "packages" not in cloud and "package_update" not in cloud


def test_dev_renders_with_no_path_out() -> None:
    placed = deploy(SEALED, setup=mirrored)
    assert_no_path_out(placed)
    conf = conf_of(placed)
    assert conf["LOCALAI_CPU_IMAGE"] == f"{REGISTRY}/{REPOSITORY}@{DIGESTS[CPU_IMAGE]}"
    assert conf["LOCALAI_ECR_REGISTRY"] == REGISTRY
    assert conf["LOCALAI_INSTALL_DOCKER"] == "0"
    assert placed.result.outputs["imageRepository"] == REPOSITORY
    assert placed.result.outputs["weightsBucket"] == BUCKET


def test_gpu_renders_with_no_path_out_and_both_images_by_digest() -> None:
    placed = deploy(
        {**SEALED, "accelerator": "gpu"},
        setup=lambda m: mirrored(m, images=(CPU_IMAGE, GPU_IMAGE)),
    )
    assert_no_path_out(placed)
    conf = conf_of(placed)
    assert conf["LOCALAI_GPU_IMAGE"] == f"{REGISTRY}/{REPOSITORY}@{DIGESTS[GPU_IMAGE]}"
    assert conf["LOCALAI_GPU_CAPABLE"] == "1"


def test_prod_models_render_with_no_path_out() -> None:
    from tests.support.pulumi_mocks import stack_config

    prod = stack_config("prod")
    models = json.loads(prod["localai:models"]) if "localai:models" in prod else [DEFAULT_MODEL]
    served = [*models, DEFAULT_EMBEDDING_MODEL]
    manifest = manifest_for(served)
    placed = deploy(
        {**SEALED, "models": json.dumps(models), "instanceType": "c7a.2xlarge"},
        setup=lambda m: mirrored(m, manifest=manifest),
    )
    assert_no_path_out(placed)
    assert len(parse_manifest(files_of(placed)["/etc/localai/weights.tsv"])) == len(
        parse_manifest(manifest)
    )


def test_the_host_boots_after_every_endpoint_and_its_store_access() -> None:
    placed = deploy(SEALED, setup=mirrored)
    instance = placed.one(INSTANCE)
    needed = [r.urn for r in placed.mocks.of_type(ENDPOINT)]
    needed += [stores_read(placed).urn]
    needed += [placed.one("aws:s3/bucketPolicy:BucketPolicy").urn]
    # Its files: the bundle its first boot step fetches (user data: 16 KiB were too few).
    needed += [placed.one("aws:s3/bucketObjectv2:BucketObjectv2").urn]
    assert set(needed) <= set(instance.dependencies)
    first = user_data(instance)["runcmd"][1]
    assert f"--bucket {BUCKET} --key bootstrap/" in first


def test_the_host_reads_only_its_own_stores() -> None:
    placed = deploy(SEALED, setup=mirrored)
    read = stores_read(placed).inputs
    assert json.loads(read["policy"])["Statement"] == [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Effect": "Allow",
         "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer"],
         "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{REPOSITORY}"},
        {"Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"arn:aws:s3:::{BUCKET}/weights/*", f"arn:aws:s3:::{BUCKET}/bootstrap/*"]},
    ]  # fmt: skip
    assert read["role"] == "localai-identity-role-physical"
    bucket = placed.one("aws:s3/bucketPolicy:BucketPolicy").inputs
    assert bucket["bucket"] == BUCKET
    statements = json.loads(bucket["policy"])["Statement"]
    assert statements[0]["Effect"] == "Deny"
    assert statements[0]["Action"] == "s3:GetObject"
    assert statements[0]["Condition"] == {
        "StringNotEquals": {"aws:SourceVpce": "vpce-localai-endpoint-s3"},
        "ArnLike": {
            "aws:PrincipalArn": f"arn:*:iam::{ACCOUNT}:role/localai-identity-role-physical"
        },
    }
    assert statements[1]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statements[1]["Action"] == "s3:*"


def test_the_s3_fetcher_is_on_the_sealed_host_only() -> None:
    sealed = files_of(deploy(SEALED, setup=mirrored))
    assert sealed["/usr/local/sbin/s3_get"].startswith("#!/usr/bin/env bash")
    open_host = files_of(deploy({**SEALED, "egress": "internet", "subnetId": PRIVATE_SUBNET}))
    assert "/usr/local/sbin/s3_get" not in open_host


# -- preview says what is missing, and what to run -------------------------------------


def test_nothing_mirrored_yet_names_both_commands() -> None:
    with pytest.raises(ConfigError) as caught:
        deploy(SEALED, setup=sealed_subnet)
    message = str(caught.value)
    assert f"the ECR repository {REPOSITORY} does not exist" in message
    assert f"the weights bucket {BUCKET} does not exist" in message
    assert "scripts/mirror-image.sh test" in message
    assert ".venv/bin/python -m components.weights.mirror --stack test" in message


def test_a_missing_image_and_a_missing_file_are_named() -> None:
    def half(mocks: RecordingMocks) -> None:
        mirrored(mocks, images=())
        key = next(iter(mocks.buckets[BUCKET]))
        del mocks.buckets[BUCKET][key]

    with pytest.raises(ConfigError) as caught:
        deploy(SEALED, setup=half)
    message = str(caught.value)
    assert f"{CPU_IMAGE} is not in {REGISTRY}/{REPOSITORY} (tag {mirror_tag(CPU_IMAGE)})" in message
    assert message.count(" is not in s3://") == 1


def test_a_gpu_host_needs_its_gpu_image_mirrored() -> None:
    with pytest.raises(ConfigError, match=f"{GPU_IMAGE} is not in"):
        deploy({**SEALED, "accelerator": "gpu"}, setup=mirrored)


def test_mutable_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="has mutable tags"):
        deploy(SEALED, setup=lambda m: mirrored(m, mutability="MUTABLE"))


def test_a_repository_that_does_not_scan_on_push_is_refused() -> None:
    def unscanned(mocks: RecordingMocks) -> None:
        mirrored(mocks)
        mocks.ecr_repositories[REPOSITORY]["scan"] = False

    with pytest.raises(ConfigError, match="does not scan on push"):
        deploy(SEALED, setup=unscanned)


def test_an_object_without_its_sha256_is_refused() -> None:
    def tampered(mocks: RecordingMocks) -> None:
        mirrored(mocks)
        key, (size, _) = next(iter(mocks.buckets[BUCKET].items()))
        mocks.buckets[BUCKET][key] = (size, "0" * 64)

    with pytest.raises(ConfigError, match="has no SHA-256"):
        deploy(SEALED, setup=tampered)


def test_sizes_come_from_the_bucket() -> None:
    placed = deploy(SEALED, setup=mirrored)
    lines = parse_manifest(files_of(placed)["/etc/localai/weights.tsv"])
    bucket = placed.mocks.buckets[BUCKET]
    assert [line.size for line in lines] == [bucket[object_key(line)][0] for line in lines]


# -- subnets and keys ------------------------------------------------------------------


def test_a_subnet_with_a_route_out_is_refused_unless_allowed() -> None:
    def nat_only(mocks: RecordingMocks) -> None:
        mirrored(mocks)

    with pytest.raises(ConfigError) as caught:
        deploy({**SEALED, "subnetId": PRIVATE_SUBNET}, setup=nat_only)
    assert "its 0.0.0.0/0 route goes to nat-0private" in str(caught.value)
    assert "localai:allowRouteOut true" in str(caught.value)
    placed = deploy({**SEALED, "subnetId": PRIVATE_SUBNET, "allowRouteOut": "true"}, setup=nat_only)
    host = {r.name: r for r in placed.mocks.of_type(SG)}["localai-sg"].inputs
    assert all(not r.get("cidrBlocks") for r in host["egress"])


def test_the_default_vpcs_default_subnets_are_refused_for_their_route_out() -> None:
    with pytest.raises(ConfigError) as caught:
        deploy({k: v for k, v in SEALED.items() if k != "subnetId"}, setup=mirrored)
    message = str(caught.value)
    assert message.count("its 0.0.0.0/0 route goes to igw-0main") == 2
    assert "Set localai:vpcId or localai:subnetId to a subnet that fits." in message


def test_an_arm64_type_is_refused_naming_the_reason() -> None:
    with pytest.raises(ConfigError, match=r"is arm64.*x86_64 NVIDIA DLAMI"):
        deploy({**SEALED, "instanceType": "c7g.xlarge"}, setup=mirrored)


def test_a_cpu_host_boots_the_dlami_with_its_root_size() -> None:
    placed = deploy(SEALED, setup=mirrored)
    instance = placed.one(INSTANCE)
    assert instance.inputs["ami"] == "ami-0dlaminvidia000001"
    assert instance.inputs["rootBlockDevice"]["volumeSize"] == 100


# -- day two ---------------------------------------------------------------------------


def test_sealing_a_deployed_private_host_replaces_only_what_it_must() -> None:
    """internet -> none on a private CPU host: the AMI family changes (DLAMI), so the host
    is a new instance; the weights volume, key and log group stay."""
    before = deploy({**SEALED, "egress": "internet", "subnetId": PRIVATE_SUBNET})
    after = deploy({**SEALED, "subnetId": PRIVATE_SUBNET, "allowRouteOut": "true"}, setup=mirrored)
    changes = touched(before, after)
    assert changes.get("aws:ebs/volume:Volume::localai-weights") is None
    assert changes.get("aws:ssm/parameter:Parameter::localai-api-key") is None
    assert changes.get("aws:cloudwatch/logGroup:LogGroup::localai-logs") is None
    assert changes["aws:ec2/securityGroup:SecurityGroup::localai-sg"] == "changed"
    assert changes["aws:ec2/instance:Instance::localai-instance-nvidia-dlami-24.04-x86_64"] == (
        "created"
    )


def test_the_same_sealed_config_changes_nothing() -> None:
    first = deploy(SEALED, setup=mirrored)
    second = deploy(SEALED, setup=mirrored)
    assert touched(first, second) == {}


def test_a_new_mirrored_image_is_a_new_host() -> None:
    first = deploy(SEALED, setup=mirrored)

    def newer(mocks: RecordingMocks) -> None:
        mirrored(mocks)
        mocks.ecr_repositories[REPOSITORY]["images"][mirror_tag(CPU_IMAGE)] = "sha256:" + "d" * 64

    second = deploy(SEALED, setup=newer)
    changes = touched(first, second)
    # The image's digest is in the host's settings, so in its bundle: a new bundle object.
    assert changes == {
        "aws:ec2/instance:Instance::localai-instance-nvidia-dlami-24.04-x86_64": "changed",
        "aws:s3/bucketObjectv2:BucketObjectv2::localai-bootstrap-bundle": "changed",
    }


# -- the fleet (prod's shape: GPU types behind an HTTPS load balancer) -------------------

SEALED_SUBNET_B = "subnet-0eeee0000000000bb"
SEALED_TABLE_B = "rtb-0sealedb"
LB_SUBNETS = ["subnet-0aaaa000000000000", "subnet-0bbbb000000000000"]  # igw, zones a and b
PROD_MODELS = ["llama-3.1-8b-instruct"]
PROD_MANIFEST = manifest_for([*PROD_MODELS, DEFAULT_EMBEDDING_MODEL])
FLEET = {
    "instanceTypes": ["g6.xlarge", "g5.xlarge", "g4dn.xlarge"], "minSize": 1, "maxSize": 4,
    "domainName": "llm.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "subnetIds": [SEALED_SUBNET, SEALED_SUBNET_B], "loadBalancerSubnetIds": LB_SUBNETS,
}  # fmt: skip
SEALED_FLEET = {
    "target": "aws", "egress": "none", "accelerator": "gpu", "models": json.dumps(PROD_MODELS),
    "volumeThroughput": "500", "allowedCidrs": '["203.0.113.0/24"]', "fleet": json.dumps(FLEET),
}  # fmt: skip
RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
GROUP = "aws:autoscaling/group:Group"


def sealed_fleet_network(mocks: RecordingMocks) -> None:
    mirrored(mocks, images=(CPU_IMAGE, GPU_IMAGE), manifest=PROD_MANIFEST)
    mocks.vpc_subnets[DEFAULT_VPC].append(SEALED_SUBNET_B)
    mocks.subnet_zones[SEALED_SUBNET_B] = "us-east-1b"
    mocks.subnet_route_tables[SEALED_SUBNET_B] = SEALED_TABLE_B
    mocks.route_tables[SEALED_TABLE_B] = []


def template_user_data(placed) -> dict:
    raw = gzip.decompress(base64.b64decode(placed.one(TEMPLATE).inputs["userData"])).decode()
    return yaml.safe_load(raw)


def test_a_sealed_fleet_has_no_path_out() -> None:
    placed = deploy(SEALED_FLEET, setup=sealed_fleet_network)
    rules = {r.name: r.inputs for r in placed.mocks.of_type(RULE)}
    instance_rules = {n: i for n, i in rules.items() if n.startswith("localai-instances-out")}
    assert instance_rules == {
        "localai-instances-out-endpoints": {
            "securityGroupId": "sg-0123456789abcdef0", "ipProtocol": "tcp", "fromPort": 443,
            "toPort": 443, "referencedSecurityGroupId": "sg-0e0d000000000000e",
            "description": "VPC interface endpoints (SSM, logs, ECR, Auto Scaling)",
            "tags": {"localai:stack": "localai-test"}},
        "localai-instances-out-s3": {
            "securityGroupId": "sg-0123456789abcdef0", "ipProtocol": "tcp", "fromPort": 443,
            "toPort": 443, "prefixListId": "pl-63a5400a",
            "description": "S3 through the gateway endpoint (weights, image layers)",
            "tags": {"localai:stack": "localai-test"}},
    }  # fmt: skip
    endpoints = {r.name: r.inputs for r in placed.mocks.of_type(ENDPOINT)}
    assert sorted(endpoints) == sorted(
        f"localai-endpoint-{s}"
        for s in ("ssm", "ssmmessages", "ec2messages", "logs", "ecr-api", "ecr-dkr",
                  "autoscaling", "monitoring", "s3")
    )  # fmt: skip
    for name, inputs in endpoints.items():
        if name.endswith("-s3"):
            assert inputs["routeTableIds"] == [SEALED_TABLE, SEALED_TABLE_B]
        else:
            assert inputs["subnetIds"] == [SEALED_SUBNET, SEALED_SUBNET_B]
    group = placed.one(GROUP)
    assert sorted(group.inputs["vpcZoneIdentifiers"]) == [SEALED_SUBNET, SEALED_SUBNET_B]
    needed = {r.urn for r in placed.mocks.of_type(ENDPOINT)} | {stores_read(placed).urn}
    assert needed <= set(group.dependencies)
    template = placed.one(TEMPLATE).inputs
    assert template["networkInterfaces"][0]["associatePublicIpAddress"] == "false"
    assert template["imageId"] == "ami-0dlaminvidia000001"
    cloud = template_user_data(placed)
    assert "packages" not in cloud
    assert [f["path"] for f in cloud["write_files"]] == [
        "/etc/systemd/system/docker.service.d/10-localai-weights-volume.conf"
    ]
    files = uploaded_bundle_files(placed)
    base = dict(
        line.split("=", 1) for line in files["/etc/localai/fleet/base.conf"].splitlines()
        if "=" in line
    )  # fmt: skip
    assert base["LOCALAI_ECR_REGISTRY"] == REGISTRY
    assert base["LOCALAI_CPU_IMAGE"] == f"{REGISTRY}/{REPOSITORY}@{DIGESTS[CPU_IMAGE]}"
    gpu = dict(
        line.split("=", 1) for line in files["/etc/localai/fleet/g6.xlarge.conf"].splitlines()
        if "=" in line
    )  # fmt: skip
    assert gpu["LOCALAI_GPU_IMAGE"] == f"{REGISTRY}/{REPOSITORY}@{DIGESTS[GPU_IMAGE]}"
    for line in parse_manifest(files["/etc/localai/weights.tsv"]):
        assert line.url == f"s3://{BUCKET}/{object_key(line)}"
    assert "/usr/local/sbin/s3_get" in files
    assert placed.result.outputs["weightsBucket"] == BUCKET


def test_a_sealed_fleets_user_data_fits_ec2() -> None:
    from components.aws_limits import USER_DATA_LIMIT_BYTES

    placed = deploy(SEALED_FLEET, setup=sealed_fleet_network)
    packed = base64.b64decode(placed.one(TEMPLATE).inputs["userData"])
    assert len(packed) <= USER_DATA_LIMIT_BYTES


def test_an_internal_sealed_fleet_puts_its_balancer_in_the_sealed_subnets() -> None:
    fleet = {k: v for k, v in FLEET.items() if k != "loadBalancerSubnetIds"}
    placed = deploy(
        {**SEALED_FLEET, "fleet": json.dumps({**fleet, "internal": True})},
        setup=sealed_fleet_network,
    )
    balancer = placed.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert sorted(balancer["subnets"]) == [SEALED_SUBNET, SEALED_SUBNET_B]
    assert balancer["internal"] is True


def test_fleet_subnets_with_a_route_out_are_refused_unless_allowed() -> None:
    fleet = {**FLEET, "subnetIds": LB_SUBNETS}
    with pytest.raises(ConfigError) as caught:
        deploy({**SEALED_FLEET, "fleet": json.dumps(fleet)}, setup=sealed_fleet_network)
    assert str(caught.value).count("its 0.0.0.0/0 route goes to an internet gateway") == 2
    placed = deploy(
        {**SEALED_FLEET, "fleet": json.dumps(fleet), "allowRouteOut": "true"},
        setup=sealed_fleet_network,
    )
    template = placed.one(TEMPLATE).inputs
    assert template["networkInterfaces"][0]["associatePublicIpAddress"] == "false"


def test_an_arm64_sealed_fleet_is_refused() -> None:
    fleet = {"instanceTypes": ["c7g.xlarge"], "internal": True,
             "subnetIds": [SEALED_SUBNET, SEALED_SUBNET_B]}  # fmt: skip
    config = {"target": "aws", "egress": "none", "fleet": json.dumps(fleet)}
    with pytest.raises(ConfigError, match=r"c7g.xlarge is arm64.*use x86_64 types"):
        deploy(config, setup=sealed_fleet_network)


def test_sealing_a_deployed_fleet_swaps_its_egress_rule_and_keeps_the_rest() -> None:
    """internet -> none on an internet-facing GPU fleet: the allow-all egress rule goes,
    the two sealed rules and the endpoints come; the key, logs and balancer stay."""
    open_fleet = {**FLEET, "subnetIds": None}
    open_fleet.pop("subnetIds")
    open_fleet.pop("loadBalancerSubnetIds")
    before = deploy(
        {**SEALED_FLEET, "egress": "internet", "fleet": json.dumps(open_fleet)},
        setup=sealed_fleet_network,
    )
    after = deploy(SEALED_FLEET, setup=sealed_fleet_network)
    changes = touched(before, after)
    rule = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule::"
    assert changes[rule + "localai-instances-out"] == "deleted"
    assert changes[rule + "localai-instances-out-endpoints"] == "created"
    assert changes[rule + "localai-instances-out-s3"] == "created"
    for kept in ("aws:ssm/parameter:Parameter::localai-api-key",
                 "aws:cloudwatch/logGroup:LogGroup::localai-logs",
                 "aws:lb/loadBalancer:LoadBalancer::localai-lb"):  # fmt: skip
        assert changes.get(kept) in (None, "changed"), (kept, changes.get(kept))


def test_the_fleet_uploads_its_bundle_and_boots_after_it() -> None:
    from components.aws.bootstrap.bundle import bundle_key

    placed = deploy(SEALED_FLEET, setup=sealed_fleet_network)
    obj = placed.one("aws:s3/bucketObjectv2:BucketObjectv2")
    content = base64.b64decode(obj.inputs["contentBase64"])
    assert obj.inputs["bucket"] == BUCKET
    assert obj.inputs["key"] == bundle_key(content)
    assert obj.inputs["contentType"] == "application/gzip"
    assert obj.urn in placed.one(GROUP).dependencies
    first = template_user_data(placed)["runcmd"][1]
    assert f"--bucket {BUCKET} --key {bundle_key(content)} " in first
    read = json.loads(stores_read(placed).inputs["policy"])["Statement"][2]
    assert read["Resource"] == [
        f"arn:aws:s3:::{BUCKET}/weights/*",
        f"arn:aws:s3:::{BUCKET}/bootstrap/*",
    ]
    bucket = json.loads(placed.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert bucket["Statement"][0]["Resource"] == f"arn:aws:s3:::{BUCKET}/*"


def test_the_same_sealed_fleet_changes_nothing_and_a_new_setting_a_new_bundle() -> None:
    first = deploy(SEALED_FLEET, setup=sealed_fleet_network)
    assert touched(first, deploy(SEALED_FLEET, setup=sealed_fleet_network)) == {}
    other = deploy({**SEALED_FLEET, "port": "9000"}, setup=sealed_fleet_network)
    key = "aws:s3/bucketObjectv2:BucketObjectv2::localai-bootstrap-bundle"
    assert touched(first, other)[key] == "changed"
    before = first.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs["key"]
    assert other.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs["key"] != before


@pytest.mark.parametrize("fleet", [False, True])
def test_ssh_from_outside_the_vpc_is_refused(fleet: bool) -> None:
    config = SEALED_FLEET if fleet else SEALED
    setup = sealed_fleet_network if fleet else mirrored
    ssh = {"sshKeyName": "ops", "sshCidrs": '["172.31.8.0/24", "10.0.0.0/8"]'}
    with pytest.raises(ConfigError) as caught:
        deploy({**config, **ssh}, setup=setup)
    assert "localai:sshCidrs = ['10.0.0.0/8']: outside the VPC (172.31.0.0/16)" in str(caught.value)
    placed = deploy({**config, **ssh, "sshCidrs": '["172.31.8.0/24"]'}, setup=setup)
    assert placed.mocks.of_type(SG)


# -- the shipped stacks, sealed ----------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "gpu", "prod"])
def test_each_shipped_stack_renders_sealed_with_no_path_out(stack: str) -> None:
    from tests.support.pulumi_mocks import stack_config

    config = {k.removeprefix("localai:"): v for k, v in stack_config(stack).items()}
    config = {k: v for k, v in config.items() if ":" not in k}  # aws:region is the provider's
    models = json.loads(config.get("models", json.dumps([DEFAULT_MODEL])))
    manifest = manifest_for([*models, DEFAULT_EMBEDDING_MODEL])
    gpu = config.get("accelerator") == "gpu"
    images = (CPU_IMAGE, GPU_IMAGE) if gpu else (CPU_IMAGE,)

    def stores(mocks: RecordingMocks) -> None:
        sealed_fleet_network(mocks)
        mirrored(mocks, images=images, manifest=manifest)

    if "fleet" in config:
        fleet = {**json.loads(config["fleet"]), "subnetIds": [SEALED_SUBNET, SEALED_SUBNET_B]}
        with pytest.raises(ConfigError, match=r"set fleet\.loadBalancerSubnetIds"):
            deploy({**config, "egress": "none", "fleet": json.dumps(fleet)}, setup=stores)
        fleet["loadBalancerSubnetIds"] = LB_SUBNETS
        config.update(egress="none", fleet=json.dumps(fleet))
        placed = deploy(config, setup=stores)
        rules = [r.inputs for r in placed.mocks.of_type(RULE)]
        instances = [r for r in rules if r["securityGroupId"] == "sg-0123456789abcdef0"]
        assert all("cidrIpv4" not in r and "cidrIpv6" not in r for r in instances)
        assert (
            placed.one(TEMPLATE).inputs["networkInterfaces"][0]["associatePublicIpAddress"]
            == "false"
        )
    else:
        config.update(egress="none", public="false", subnetId=SEALED_SUBNET)
        assert_no_path_out(deploy(config, setup=stores))


# -- issue 22's rule for the new modules: each resource's place and tags pinned ----------


def by_name(placed, typ: str) -> dict:
    return {r.name: r for r in placed.mocks.of_type(typ)}


@pytest.mark.parametrize("fleet", [False, True])
def test_the_sealed_resources_are_the_components_children_with_its_tags(fleet: bool) -> None:
    placed = (
        deploy(SEALED_FLEET, setup=sealed_fleet_network)
        if fleet
        else deploy(SEALED, setup=mirrored)
    )
    component = "localai:aws:Fleet" if fleet else "localai:aws:Host"
    parents = set()
    tags = {"localai:stack": "localai-test"}
    endpoint_sg = by_name(placed, SG)["localai-sealed-endpoints-sg"]
    assert endpoint_sg.inputs["description"] == "LocalAI VPC endpoints: HTTPS from the VPC"
    assert endpoint_sg.inputs["vpcId"] == DEFAULT_VPC
    assert endpoint_sg.inputs["tags"] == tags
    for resource in [endpoint_sg, *placed.mocks.of_type(ENDPOINT)]:
        parents.add(resource.parent)
        assert resource.inputs["tags"] == tags, resource.name
    parents.add(stores_read(placed).parent)
    parents.add(placed.one("aws:s3/bucketPolicy:BucketPolicy").parent)
    assert len(parents) == 1
    assert parents.pop().endswith(f"${component}::localai")
    if fleet:
        instances_sg = by_name(placed, SG)["localai-instances-sg"]
        for name in ("localai-instances-out-endpoints", "localai-instances-out-s3"):
            assert by_name(placed, RULE)[name].parent == instances_sg.urn
        bundle = placed.one("aws:s3/bucketObjectv2:BucketObjectv2")
        assert bundle.parent.endswith(f"${component}::localai")
        assert bundle.inputs["tags"] == tags


def test_the_sealed_values_are_immutable() -> None:
    import dataclasses

    placed = deploy(SEALED, setup=mirrored)
    assert placed.mocks.of_type(ENDPOINT)
    from components.aws.egress import SealedNetwork
    from components.aws.stores import MirroredStores

    for cls in (SealedNetwork, MirroredStores):
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
    stores = MirroredStores("1", "r", "arn", "reg", "b", "arn:b", "c", "", "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stores.bucket = "other"  # type: ignore[misc]


def test_a_subnet_without_any_route_table_is_refused() -> None:
    def tableless(mocks: RecordingMocks) -> None:
        mirrored(mocks)
        del mocks.subnet_route_tables[SEALED_SUBNET]
        mocks.main_route_table = None

    with pytest.raises(ConfigError) as caught:
        deploy(SEALED, setup=tableless)
    assert str(caught.value) == (
        "localai configuration cannot be deployed: subnet subnet-0dddd0000000000aa has no "
        "route table (neither its own nor the VPC's main one) for the S3 gateway endpoint"
    )


def test_ssh_from_the_whole_vpc_is_inside_it() -> None:
    from components.aws.egress import check_ssh_inside_vpc

    check_ssh_inside_vpc(["172.31.0.0/16", "172.31.255.255/32"], "172.31.0.0/16")
    check_ssh_inside_vpc([], "172.31.0.0/16")
    with pytest.raises(ConfigError) as caught:
        check_ssh_inside_vpc(["172.30.0.0/15", "172.31.0.0/16"], "172.31.0.0/16")
    assert str(caught.value) == (
        "localai configuration is invalid:\n  - localai:sshCidrs = ['172.30.0.0/15']: outside "
        "the VPC (172.31.0.0/16), which a host with localai:egress none cannot answer; list "
        "networks inside it (a bastion's), or use SSM Session Manager"
    )


def test_the_missing_message_whole() -> None:
    with pytest.raises(ConfigError) as caught:
        deploy(SEALED, setup=sealed_subnet)
    assert str(caught.value) == (
        "localai configuration cannot be deployed yet: with localai:egress none the host "
        "cannot download anything, and the stack's stores lack what it needs:\n"
        f"  - the ECR repository {REPOSITORY} does not exist\n"
        f"  - the weights bucket {BUCKET} does not exist\n"
        "  Run, from a machine that can reach the image registry and the models' sources:\n"
        "    scripts/mirror-image.sh test\n"
        "    .venv/bin/python -m components.weights.mirror --stack test\n"
        '  then `pulumi up` again (README "Zero egress")'
    )


@pytest.mark.parametrize(
    "mutability", ["MUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"]
)
def test_only_fully_immutable_tags_are_accepted(mutability: str) -> None:
    with pytest.raises(ConfigError, match="has mutable tags"):
        deploy(SEALED, setup=lambda m: mirrored(m, mutability=mutability))


@pytest.mark.parametrize("recorded", ["0" * 64, "f" * 64, ""])
def test_any_other_recorded_sha256_is_refused(recorded: str) -> None:
    def tampered(mocks: RecordingMocks) -> None:
        mirrored(mocks)
        for key, (size, _) in list(mocks.buckets[BUCKET].items()):
            mocks.buckets[BUCKET][key] = (size, recorded)

    with pytest.raises(ConfigError) as caught:
        deploy(SEALED, setup=tampered)
    assert str(caught.value).count("has no SHA-256") == len(parse_manifest(DEFAULT_MANIFEST))


def test_the_policies_whole() -> None:
    placed = deploy(SEALED, setup=mirrored)
    role = "localai-identity-role-physical"
    assert json.loads(stores_read(placed).inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow",
             "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer"],
             "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{REPOSITORY}"},
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": [f"arn:aws:s3:::{BUCKET}/weights/*",
                          f"arn:aws:s3:::{BUCKET}/bootstrap/*"]},
        ],
    }  # fmt: skip
    assert json.loads(placed.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "HostReadsOnlyThroughTheStackEndpoint", "Effect": "Deny", "Principal": "*",
             "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*",
             "Condition": {
                 "StringNotEquals": {"aws:SourceVpce": "vpce-localai-endpoint-s3"},
                 "ArnLike": {"aws:PrincipalArn": f"arn:*:iam::{ACCOUNT}:role/{role}"}}},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }  # fmt: skip


def test_the_options_are_keyword_only() -> None:
    import inspect

    from components.aws import egress, stores

    for function, first in (
        (egress.sealed_network, "subnets"),
        (stores.find_mirrored, "stack"),
        (stores.store_access, "role_name"),
        (stores.host_read_policy, "bundles"),
    ):
        kind = inspect.signature(function).parameters[first].kind
        assert kind is inspect.Parameter.KEYWORD_ONLY, function.__name__


def test_every_missing_file_is_named_not_only_the_first() -> None:
    def empty(mocks: RecordingMocks) -> None:
        mirrored(mocks)
        mocks.buckets[BUCKET].clear()

    with pytest.raises(ConfigError) as caught:
        deploy(SEALED, setup=empty)
    assert str(caught.value).count(" is not in s3://") == len(parse_manifest(DEFAULT_MANIFEST)) == 2
