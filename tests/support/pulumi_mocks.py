"""Pulumi mocks for the cloud APIs only: every registration is recorded for assertions.

Our own code (settings, sizing, rendering, components) runs for real; only the AWS,
Docker and random providers are replaced, returning the few computed outputs the
program reads. An invoke this program does not make raises, so a new cloud lookup
cannot silently get an empty answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.mocks import MockMonitor

PROJECT = "localai"
ROOT = Path(__file__).resolve().parents[2]
STACKS_DIR = ROOT / "stacks"

FAKE_AMI = {
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id": (
        "ami-0ubuntuamd64000001"
    ),
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id": (
        "ami-0ubuntuarm64000001"
    ),
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id": (
        "ami-0dlaminvidia000001"
    ),
}


AMI_FACTS = {
    "ami-0ubuntuamd64000001": ("x86_64", 8),
    "ami-0ubuntuarm64000001": ("arm64", 8),
    "ami-0dlaminvidia000001": ("x86_64", 75),
}
"""Architecture and root snapshot GiB of the AMIs above (Canonical's are 8 GiB)."""


DEFAULT_VPC = "vpc-0def000000000000a"
ACCOUNT = "123456789012"
SUBNET_ZONES = {"subnet-0bbbb000000000000": "us-east-1b"}
"""Subnets the mock places outside us-east-1a (the default for any other id)."""
DEFAULT_SUBNETS = ("subnet-0aaaa000000000000", "subnet-0bbbb000000000000")
"""The default VPC's default-for-az subnets; their route is the main table's (igw)."""
PRIVATE_SUBNET = "subnet-0cccc00000000beef"
"""A subnet in the default VPC with its own table: 0.0.0.0/0 through a NAT gateway."""


def _route(**target: str) -> dict[str, str]:
    keys = [
        "carrierGatewayId",
        "coreNetworkArn",
        "destinationPrefixListId",
        "egressOnlyGatewayId",
        "gatewayId",
        "instanceId",
        "ipv6CidrBlock",
        "localGatewayId",
        "natGatewayId",
        "networkInterfaceId",
        "odbNetworkArn",
        "transitGatewayId",
        "vpcEndpointId",
        "vpcPeeringConnectionId",
    ]
    return {"cidrBlock": "0.0.0.0/0", **dict.fromkeys(keys, ""), **target}


@dataclass
class Registration:
    typ: str
    name: str
    inputs: dict[str, Any]
    resource_id: str
    custom: bool = True
    urn: str = ""
    parent: str = ""
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    """The non-empty ones of create, update and delete."""
    alias_names: tuple[str, ...] = ()
    """The names of the resource's aliases (what it was called before)."""
    alias_parents: tuple[str, ...] = ()
    """The parent URNs of the resource's aliases (where it may have lived before)."""


class RecordingMonitor(MockMonitor):
    """Also records the resource options the mocks API does not pass on."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        # Registrations run on several threads: find this one by type and name.
        for registration in self.recording.resources:
            if (registration.typ, registration.name, registration.urn) == (
                request.type,
                request.name,
                "",
            ):
                registration.urn = response.urn
                registration.parent = request.parent
                registration.retain_on_delete = bool(request.retainOnDelete)
                registration.delete_before_replace = bool(request.deleteBeforeReplace)
                registration.ignore_changes = tuple(request.ignoreChanges)
                registration.dependencies = tuple(request.dependencies)
                timeouts = request.customTimeouts
                registration.custom_timeouts = {
                    k: getattr(timeouts, k)
                    for k in ("create", "update", "delete")
                    if getattr(timeouts, k)
                }
                registration.alias_names = tuple(
                    alias.spec.name for alias in request.aliases if alias.spec.name
                )
                registration.alias_parents = tuple(
                    alias.spec.parentUrn for alias in request.aliases if alias.spec.parentUrn
                )
                break
        return response


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Registration] = []
        self.extra_amis: dict[str, tuple[str, int]] = {}  # id -> (architecture, root GiB)
        # The stack's attached weights volume (found by its tags): id -> (GiB, zone).
        self.deployed_volumes: dict[str, tuple[int, str]] = {}
        self.deployed_volume_throughput: dict[str, int] = {}  # absent: 250 MiB/s
        self.deployed_volume_tags: dict[str, dict[str, str]] = {}
        self.key_version = 1  # the SSM parameter's version after this `pulumi up`
        self.partition = "aws"
        # The network the AWS invokes describe; tests change it to play other accounts.
        self.vpc_subnets: dict[str, list[str]] = {DEFAULT_VPC: [*DEFAULT_SUBNETS, PRIVATE_SUBNET]}
        self.subnet_route_tables: dict[str, str] = {PRIVATE_SUBNET: "rtb-0private"}
        self.main_route_table: str | None = "rtb-0main"  # None: a VPC without one
        self.vpc_cidrs: dict[str, str] = {DEFAULT_VPC: "172.31.0.0/16"}  # absent: 10.9.0.0/16
        self.subnet_zones: dict[str, str] = dict(SUBNET_ZONES)  # absent: us-east-1a
        self.route_tables: dict[str, list[dict[str, str]]] = {
            "rtb-0main": [_route(gatewayId="igw-0main")],
            "rtb-0private": [_route(natGatewayId="nat-0private")],
        }
        self.offerings: dict[
            str, list[str]
        ] = {}  # type -> zones; absent: us-east-1a and b  # set "aws-us-gov" or "aws-cn" to play another partition
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.snapshots: dict[str, int] = {}  # snapshot id -> GiB (fleet.weightsSnapshotId)
        # snapshot id -> (its KMS key's ARN, "CUSTOMER" or "AWS"); absent: aws/ebs
        self.snapshot_keys: dict[str, tuple[str, str]] = {}
        self.launch_template_version = 1
        # The stack's deployed Auto Scaling group by name: {"types": [...] (mixed-instances
        # overrides, empty for one type), "warm_pool": bool, "port": int, "tags": {...}}.
        self.deployed_groups: dict[str, dict[str, Any]] = {}
        # A sealed stack's stores (egress none), as the mirror scripts leave them:
        # repository name -> {"mutability": ..., "images": {tag: digest}}, and
        # bucket -> {key: (bytes, the sha256 metadata)}.
        self.ecr_repositories: dict[str, dict[str, Any]] = {}
        self.buckets: dict[str, dict[str, tuple[int, str]]] = {}

    # -- helpers for tests ------------------------------------------------------------------

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Registration:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
        return found[0]

    # -- pulumi.runtime.Mocks -------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        typ, name = args.typ, args.name
        rid = f"{name}-id"
        if typ == "aws:ec2/instance:Instance":
            rid = "i-0123456789abcdef0"
            outputs.update(privateIp="10.0.1.23", publicIp="", arn=f"arn:aws:ec2:::{rid}")
        elif typ == "aws:ebs/volume:Volume":
            rid = "vol-0fedcba9876543210"
            outputs.update(arn=f"arn:aws:ec2:::volume/{rid}")
        elif typ == "aws:ec2/eip:Eip":
            rid = "eipalloc-0123"
            outputs.update(publicIp="198.51.100.7", allocationId=rid)
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = "sg-0123456789abcdef0"
            if name.endswith("-sealed-endpoints-sg"):
                rid = "sg-0e0d000000000000e"
        elif typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
            rid = f"vpce-{name}"
            if args.inputs.get("vpcEndpointType") == "Gateway":
                outputs.update(prefixListId="pl-63a5400a")  # S3's in us-east-1
        elif typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
            outputs.update(name=f"{name}-physical", arn=f"arn:aws:iam::123456789012:{name}")
        elif typ == "aws:ssm/parameter:Parameter":
            outputs.update(
                arn=f"arn:aws:ssm:us-east-1:123456789012:parameter{args.inputs['name']}",
                version=self.key_version,
            )
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            outputs.update(
                arn=f"arn:aws:logs:us-east-1:123456789012:log-group:{args.inputs['name']}"
            )
        elif typ == "aws:s3/bucket:Bucket":  # the provider's autoname: name + random suffix
            physical = args.inputs.get("bucket") or f"{name}-0a1b2c3"
            outputs.update(bucket=physical, arn=f"arn:aws:s3:::{physical}")
            rid = physical
        elif typ == "aws:sns/topic:Topic":
            outputs.update(arn=f"arn:aws:sns:us-east-1:{ACCOUNT}:{name}-0a1b2c3")
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            outputs.update(arn=f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{name}-0a1b2c3")
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            rid = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/app/{name}/50dc6c495c0c9188"
            outputs.update(
                arn=rid,
                arnSuffix=f"app/{name}/50dc6c495c0c9188",
                dnsName=f"{name}-1234567890.us-east-1.elb.amazonaws.com",
                zoneId="Z35SXDOTRQ7X7K",
            )
        elif typ == "aws:lb/targetGroup:TargetGroup":
            rid = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/{name}/943f017f100becff"
            outputs.update(arn=rid, arnSuffix=f"targetgroup/{name}/943f017f100becff")
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            rid = "lt-0123456789abcdef0"
            outputs.update(latestVersion=self.launch_template_version)
        elif typ == "aws:autoscaling/group:Group":
            rid = args.inputs["name"]
            outputs.update(arn=f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:"
                           f"0f1e2d3c:autoScalingGroupName/{rid}")  # fmt: skip
        elif typ == "aws:acm/certificate:Certificate":
            rid = (
                f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/1b2c3d4e-0000-4000-8000-000000000001"
            )
            outputs.update(
                arn=rid,
                domainValidationOptions=[
                    {
                        "domainName": args.inputs["domainName"],
                        "resourceRecordName": f"_x1.{args.inputs['domainName']}.",
                        "resourceRecordType": "CNAME",
                        "resourceRecordValue": "_x2.acm-validations.aws.",
                    }
                ],
            )
        elif typ == "aws:acm/certificateValidation:CertificateValidation":
            outputs.update(certificateArn=args.inputs["certificateArn"])
        elif typ == "aws:route53/record:Record":
            outputs.update(fqdn=args.inputs["name"].rstrip("."))
        elif typ == "random:index/randomPassword:RandomPassword":
            outputs.update(result="GeneratedGeneratedGeneratedGenerated0001")
        elif typ == "docker:index/remoteImage:RemoteImage":
            outputs.update(imageId=f"sha256:feed{len(self.resources):04d}", repoDigest="")
        self.resources.append(Registration(typ, name, dict(args.inputs), rid, custom=args.custom))
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.calls.append((args.token, dict(args.args)))
        token = args.token
        if token == "aws:ssm/getParameter:getParameter":
            name = args.args["name"]
            value = FAKE_AMI[name]  # KeyError = the program asked for an unexpected AMI
            return {
                "name": name,
                "type": "String",
                "value": value,
                "insecureValue": value,
                "arn": f"arn:aws:ssm:us-east-1::parameter{name}",
                "version": 1,
            }
        if token == "aws:ec2/getAmi:getAmi":
            ami_id = args.args["filters"][0]["values"][0]
            facts = AMI_FACTS.get(ami_id) or self.extra_amis[ami_id]  # KeyError: unexpected AMI
            return {
                "id": ami_id,
                "imageId": ami_id,
                "architecture": facts[0],
                "rootDeviceName": "/dev/sda1",
                "blockDeviceMappings": [
                    {"deviceName": "/dev/sda1", "ebs": {"volume_size": str(facts[1])},
                     "noDevice": "", "virtualName": ""},
                ],
            }  # fmt: skip
        if token == "aws:ec2/getVpcEndpointService:getVpcEndpointService":
            # As EC2 answers: S3 offers a Gateway and an Interface service (naming no type
            # matches both, which the data source refuses); every other service Interface.
            service, kind = args.args["service"], args.args.get("serviceType")
            offered = {"s3": ("Gateway", "Interface")}.get(service, ("Interface",))
            if (
                not service
                or (kind is None and len(offered) > 1)
                or (kind is not None and kind not in offered)
            ):
                return {}, [("service", f"no single VPC endpoint service {service!r} {kind!r}")]
            return {"id": service, "serviceName": f"com.amazonaws.us-east-1.{service}"}
        if token == "aws:index/getPartition:getPartition":
            return {"id": self.partition, "partition": self.partition, "dnsSuffix": "amazonaws.com"}
        if token == "aws:index/getRegion:getRegion":
            return {
                "id": "us-east-1",
                "name": "us-east-1",
                "region": "us-east-1",
                "description": "US East (N. Virginia)",
                "endpoint": "ec2.us-east-1.amazonaws.com",
            }
        if token == "aws:ec2/getVpc:getVpc":
            # By id, or the default VPC; naming neither matches every VPC, which the data
            # source refuses when there are several (as here).
            vpc = args.args.get("id") or (DEFAULT_VPC if args.args.get("default") else None)
            if vpc is None:
                return {}, [("id", "multiple VPCs matched; use additional constraints")]
            return {"id": vpc, "cidrBlock": self.vpc_cidrs.get(vpc, "10.9.0.0/16"),
                    "default": vpc == DEFAULT_VPC}  # fmt: skip
        if token == "aws:ec2/getSubnets:getSubnets":
            filters = {f["name"]: f["values"] for f in args.args.get("filters", [])}
            ids = [i for vpc in filters["vpc-id"] for i in self.vpc_subnets.get(vpc, [])]
            if filters.get("default-for-az") == ["true"]:
                ids = [i for i in ids if i in DEFAULT_SUBNETS]
            return {"id": "us-east-1", "ids": ids}
        if token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            wanted = args.args["filters"][0]["values"][0]
            zones = self.offerings.get(wanted, ["us-east-1a", "us-east-1b"])
            return {
                "id": "us-east-1",
                "locations": zones,
                "locationTypes": ["availability-zone"] * len(zones),
                "instanceTypes": [wanted] * len(zones),
            }
        if token == "aws:ec2/getRouteTables:getRouteTables":
            filters = {f["name"]: f["values"] for f in args.args.get("filters", [])}
            if "association.subnet-id" in filters:
                table = self.subnet_route_tables.get(filters["association.subnet-id"][0])
                return {"id": "us-east-1", "ids": [table] if table else []}
            main = self.main_route_table
            return {"id": "us-east-1", "ids": [main] if main else []}
        if token == "aws:ec2/getRouteTable:getRouteTable":
            table = args.args["routeTableId"]
            return {"id": table, "routeTableId": table, "routes": self.route_tables[table]}
        if token == "aws:ec2/getSubnet:getSubnet":
            return {
                "id": args.args["id"],
                "availabilityZone": self.subnet_zones.get(args.args["id"], "us-east-1a"),
                "vpcId": next(
                    (v for v, ids in self.vpc_subnets.items() if args.args["id"] in ids),
                    DEFAULT_VPC,
                ),
                "cidrBlock": "172.31.0.0/20",
            }
        if token == "aws:ebs/getEbsVolumes:getEbsVolumes":
            # In no particular order, as DescribeVolumes answers: the code sorts.
            return {"id": "us-east-1", "ids": list(self.deployed_volumes)}
        if token == "aws:ebs/getVolume:getVolume":
            # EC2 refuses a filter name it does not know (InvalidParameterValue).
            filters = {f["name"]: f["values"] for f in args.args["filters"]}
            if set(filters) != {"volume-id"}:
                raise ValueError(f"getVolume: unknown filter names {sorted(filters)}")
            volume_id = filters["volume-id"][0]
            return {
                "id": volume_id,
                "volumeId": volume_id,
                "availabilityZone": self.deployed_volumes.get(volume_id, (40, "us-east-1b"))[1],
                "size": self.deployed_volumes.get(volume_id, (40, "us-east-1b"))[0],
                "throughput": self.deployed_volume_throughput.get(volume_id, 250),
                "tags": self.deployed_volume_tags.get(volume_id, {}),
                "type": "gp3",
                "encrypted": True,
            }
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "id": ACCOUNT,
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                "userId": "AIDAEXAMPLE",
            }
        if token == "aws:ebs/getSnapshot:getSnapshot":
            snapshot_id = args.args["snapshotIds"][0]
            key = self.snapshot_keys.get(snapshot_id)
            return {"id": snapshot_id, "snapshotId": snapshot_id,
                    "volumeSize": self.snapshots[snapshot_id], "encrypted": True,
                    "kmsKeyId": key[0] if key else f"arn:aws:kms:us-east-1:{ACCOUNT}:key/aws-ebs"}  # fmt: skip
        if token == "aws:kms/getKey:getKey":
            key_id = args.args["keyId"]
            manager = next((m for k, m in self.snapshot_keys.values() if k == key_id), "AWS")
            return {"id": key_id, "arn": key_id, "keyId": key_id, "keyManager": manager}
        if token == "aws:autoscaling/getAmiIds:getAmiIds":  # aws_autoscaling_groups
            names = [n for n in args.args.get("names", []) if n in self.deployed_groups]
            return {"id": "us-east-1", "names": names, "arns": [f"arn:{n}" for n in names]}
        if token == "aws:autoscaling/getGroup:getGroup":
            group = self.deployed_groups[args.args["name"]]  # KeyError: not deployed
            overrides = [{"instanceType": t} for t in group["types"]]
            return {
                "id": args.args["name"],
                "name": args.args["name"],
                "mixedInstancesPolicies": (
                    [{"launchTemplates": [{"overrides": overrides}]}] if overrides else []
                ),
                "warmPools": [{"minSize": 1}] if group["warm_pool"] else [],
                "targetGroupArns": [f"arn:tg:{group['port']}"],
                "tags": [{"key": k, "value": v, "propagateAtLaunch": True}
                         for k, v in group["tags"].items()],
            }  # fmt: skip
        if token == "aws:ecr/getRepository:getRepository":
            name = args.args["name"]
            repo = self.ecr_repositories.get(name)
            if repo is None:  # ECR: RepositoryNotFoundException
                return {}, [("name", f"repository {name!r} not found")]
            return {
                "id": name,
                "name": name,
                "arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{name}",
                "registryId": ACCOUNT,
                "repositoryUrl": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{name}",
                "imageTagMutability": repo["mutability"],
                "imageScanningConfigurations": [{"scanOnPush": repo.get("scan", True)}],
            }
        if token == "aws:ecr/getImage:getImage":
            name, tag = args.args["repositoryName"], args.args.get("imageTag")
            digest = self.ecr_repositories.get(name, {}).get("images", {}).get(tag)
            if digest is None:  # ECR: ImageNotFoundException
                return {}, [("imageTag", f"image {tag!r} not found in {name!r}")]
            return {"id": digest, "imageDigest": digest, "imageTag": tag,
                    "repositoryName": name}  # fmt: skip
        if token == "aws:s3/getBucket:getBucket":
            bucket = args.args["bucket"]
            if bucket not in self.buckets:  # S3: NotFound
                return {}, [("bucket", f"bucket {bucket!r} not found")]
            return {"id": bucket, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}",
                    "region": "us-east-1"}  # fmt: skip
        if token == "aws:s3/getObject:getObject":
            bucket, key = args.args["bucket"], args.args["key"]
            found = self.buckets.get(bucket, {}).get(key)
            if found is None:  # S3: NoSuchKey
                return {}, [("key", f"s3://{bucket}/{key} not found")]
            return {"id": key, "bucket": bucket, "key": key, "contentLength": found[0],
                    "metadata": {"sha256": found[1]}}  # fmt: skip
        if token == "aws:lb/getTargetGroup:getTargetGroup":
            port = int(args.args["arn"].rsplit(":", 1)[1])
            return {"id": args.args["arn"], "arn": args.args["arn"], "port": port}
        raise AssertionError(f"unexpected invoke {token} {args.args}")


def install_mocks(mocks: RecordingMocks) -> None:
    """Make ``mocks`` the cloud for the next program run (and clear the stack config)."""
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack="test", preview=False, monitor=RecordingMonitor(mocks)
    )
    pulumi.runtime.set_all_config({}, secret_keys=[])


@pytest.fixture
def pulumi_mocks() -> Iterator[RecordingMocks]:
    mocks = RecordingMocks()
    install_mocks(mocks)
    yield mocks
    pulumi.runtime.set_all_config({}, secret_keys=[])


def stack_config(stack: str) -> dict[str, str]:
    """A stack file's config as the engine hands it to the program (strings, JSON)."""
    data = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text()) or {}
    return {key: encode_config_value(value) for key, value in (data.get("config") or {}).items()}


def encode_config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def stack_names() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


def resolve(value: Any) -> Any:
    """Resolve Outputs inside a test decorated with ``@pulumi.runtime.test``."""
    return pulumi.Output.from_input(value)
