"""The fleet under the Pulumi mocks: the prod stack's resources, each choice, each refusal."""

from __future__ import annotations

import base64
import gzip
import json

import pulumi
import pytest
import yaml

from components.aws.bootstrap.cloud_init import (
    CONF_PATH,
    EXTRA_ENV_PATH,
    FLEET_DIR,
    decode_write_file,
)
from components.aws.fleet import LIFECYCLE_HEARTBEAT_TIMEOUT_S
from components.aws_limits import ALB_TLS_POLICY
from components.errors import ConfigError
from components.settings import SINGLE_VM_ONLY_KEYS
from components.sizing.instance_types import lookup
from tests.components.aws.bootstrap.cloud_init_support import uploaded_bundle_files
from tests.support.program_run import localai_keys, run_program
from tests.support.pulumi_mocks import ACCOUNT, DEFAULT_SUBNETS, RecordingMocks, stack_config

PROD = localai_keys(stack_config("prod"))
GPU_TYPES = ["g6.xlarge", "g5.xlarge", "g4dn.xlarge"]


def fleet_config(**fleet: object) -> dict[str, str]:
    base = {"instanceTypes": GPU_TYPES, "minSize": 1, "maxSize": 4}
    return {**PROD, "fleet": json.dumps({**base, **fleet})}


def user_data_files(mocks: RecordingMocks) -> dict[str, str]:
    """A fleet host's files: the user data's (Docker's drop-in) and the bundle's, which its
    first boot step fetches (bootstrap/bundle.py)."""
    template = mocks.one("aws:ec2/launchTemplate:LaunchTemplate")
    document = gzip.decompress(base64.b64decode(template.inputs["userData"])).decode()
    config = yaml.safe_load(document)
    files = {entry["path"]: decode_write_file(entry) for entry in config["write_files"]}
    return {**files, **uploaded_bundle_files(mocks)}


# --- the prod stack -------------------------------------------------------------------------


def test_prod_stack_launch_template(pulumi_mocks: RecordingMocks) -> None:
    run_program(PROD, stack="prod")
    template = pulumi_mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["imageId"] == "ami-0dlaminvidia000001"  # the GPU types' DLAMI
    assert template["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
        "instanceMetadataTags": "disabled",
    }
    assert template["iamInstanceProfile"]["name"] == "localai-identity-profile-physical"
    root, weights = template["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/sda1"
    assert root["ebs"] == {
        "volumeType": "gp3",
        "volumeSize": 100,
        "encrypted": "true",
        "deleteOnTermination": "true",
    }
    assert weights["deviceName"] == "/dev/sdf"
    assert weights["ebs"]["encrypted"] == "true"
    assert weights["ebs"]["volumeType"] == "gp3"
    assert weights["ebs"]["throughput"] == 500
    assert weights["ebs"]["iops"] == 3000
    assert weights["ebs"]["deleteOnTermination"] == "true"
    assert "snapshotId" not in weights["ebs"]
    (nic,) = template["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "true"  # default subnets route to an IGW
    assert nic["securityGroups"] == ["sg-0123456789abcdef0"]
    assert template["updateDefaultVersion"] is True
    kinds = {spec["resourceType"]: spec["tags"] for spec in template["tagSpecifications"]}
    assert kinds["instance"]["Name"] == "localai-prod"
    assert kinds["volume"]["localai:stack"] == "localai-prod"
    packed = base64.b64decode(template["userData"])
    assert packed[:2] == b"\x1f\x8b" and len(packed) <= 16_384


def test_prod_stack_group(pulumi_mocks: RecordingMocks) -> None:
    run_program(PROD, stack="prod")
    group = pulumi_mocks.one("aws:autoscaling/group:Group")
    inputs = group.inputs
    assert inputs["name"] == "localai-prod"
    assert (inputs["minSize"], inputs["maxSize"]) == (1, 4)
    assert "desiredCapacity" not in inputs
    # scaling owns the desired capacity; the hook resource owns the hook after creation
    assert group.ignore_changes == ("desiredCapacity", "initialLifecycleHooks")
    assert sorted(inputs["vpcZoneIdentifiers"]) == sorted(DEFAULT_SUBNETS)  # two zones
    assert inputs["healthCheckType"] == "ELB"
    assert inputs["targetGroupArns"] == [
        pulumi_mocks.one("aws:lb/targetGroup:TargetGroup").resource_id
    ]
    policy = inputs["mixedInstancesPolicy"]
    overrides = policy["launchTemplate"]["overrides"]
    assert [o["instanceType"] for o in overrides] == GPU_TYPES  # in preference order
    assert policy["launchTemplate"]["launchTemplateSpecification"] == {
        "launchTemplateId": "lt-0123456789abcdef0",
        "version": "1",
    }
    assert policy["instancesDistribution"] == {
        "onDemandAllocationStrategy": "prioritized",
        "onDemandBaseCapacity": 0,
        "onDemandPercentageAboveBaseCapacity": 100,
    }
    assert inputs["capacityRebalance"] is False
    (hook,) = inputs["initialLifecycleHooks"]
    assert hook == {
        "name": "localai-prod-model-ready",
        "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "defaultResult": "ABANDON",
        "heartbeatTimeout": LIFECYCLE_HEARTBEAT_TIMEOUT_S,
    }
    assert inputs["instanceRefresh"] == {
        "strategy": "Rolling",
        "preferences": {
            "minHealthyPercentage": 100,
            "maxHealthyPercentage": 200,
            "skipMatching": True,
        },
    }
    assert inputs["ignoreFailedScalingActivities"] is True
    assert inputs["healthCheckGracePeriod"] == 60
    assert group.custom_timeouts == {"delete": "60m"}
    hook_resource = pulumi_mocks.one("aws:autoscaling/lifecycleHook:LifecycleHook").inputs
    assert hook_resource == {
        "name": "localai-prod-model-ready",
        "autoscalingGroupName": "localai-prod",
        "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "defaultResult": "ABANDON",
        "heartbeatTimeout": LIFECYCLE_HEARTBEAT_TIMEOUT_S,
    }
    assert "warmPool" not in inputs and "launchTemplate" not in inputs
    assert inputs["waitForCapacityTimeout"] == "3600s"
    assert inputs["minElbCapacity"] == 1
    tags = {t["key"]: t for t in inputs["tags"]}
    assert tags["Name"]["value"] == "localai-prod" and tags["Name"]["propagateAtLaunch"]


def test_prod_stack_load_balancer_and_tls(pulumi_mocks: RecordingMocks) -> None:
    result = run_program(PROD, stack="prod")
    lb = pulumi_mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert lb["loadBalancerType"] == "application" and lb["internal"] is False
    assert sorted(lb["subnets"]) == sorted(DEFAULT_SUBNETS)
    assert lb["idleTimeout"] >= 300
    assert lb["dropInvalidHeaderFields"] is True
    target_group = pulumi_mocks.one("aws:lb/targetGroup:TargetGroup").inputs
    assert target_group["port"] == 8080 and target_group["protocol"] == "HTTP"
    assert target_group["healthCheck"]["path"] == "/readyz"
    assert target_group["healthCheck"]["matcher"] == "200"
    assert target_group["deregistrationDelay"] >= lb["idleTimeout"]
    listeners = {r.name: r.inputs for r in pulumi_mocks.of_type("aws:lb/listener:Listener")}
    https = listeners["localai-https"]
    assert (https["port"], https["protocol"], https["sslPolicy"]) == (443, "HTTPS", ALB_TLS_POLICY)
    certificate = pulumi_mocks.one("aws:acm/certificate:Certificate")
    assert https["certificateArn"] == certificate.resource_id  # only once validated
    assert https["defaultActions"][0]["type"] == "forward"
    redirect = listeners["localai-http"]  # one name in both modes (see test_day_two_fleet)
    assert redirect["port"] == 80
    assert redirect["defaultActions"][0]["redirect"] == {
        "protocol": "HTTPS",
        "port": "443",
        "statusCode": "HTTP_301",
    }
    assert certificate.inputs == {
        "domainName": "llm.example.com",
        "validationMethod": "DNS",
        "tags": {"localai:stack": "localai-prod"},
    }
    records = {r.name: r.inputs for r in pulumi_mocks.of_type("aws:route53/record:Record")}
    validation = records["localai-certificate-validation"]
    assert validation["name"] == "_x1.llm.example.com."
    assert validation["type"] == "CNAME"
    assert validation["records"] == ["_x2.acm-validations.aws."]
    assert validation["zoneId"] == "Z0123456789ABCDEFGHIJ"
    validated = pulumi_mocks.one("aws:acm/certificateValidation:CertificateValidation").inputs
    assert validated["validationRecordFqdns"] == ["_x1.llm.example.com"]
    alias = records["localai-alias"]
    assert (alias["name"], alias["type"]) == ("llm.example.com", "A")
    assert alias["aliases"][0]["name"] == "localai-lb-1234567890.us-east-1.elb.amazonaws.com"
    assert alias["aliases"][0]["zoneId"] == "Z35SXDOTRQ7X7K"
    assert result.outputs["OPENAI_BASE_URL"] == "https://llm.example.com/v1"
    assert result.outputs["healthUrl"] == "https://llm.example.com/readyz"


def test_security_group_chain(pulumi_mocks: RecordingMocks) -> None:
    run_program(PROD, stack="prod")
    ingress = {
        r.name: r.inputs
        for r in pulumi_mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    }
    egress = {
        r.name: r.inputs
        for r in pulumi_mocks.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    }
    # Callers reach the listeners only from allowedCidrs.
    public = {n: i for n, i in ingress.items() if n.startswith("localai-lb-in-")}
    assert {(i["fromPort"], i["cidrIpv4"]) for i in public.values()} == {
        (443, "203.0.113.0/24"),
        (80, "203.0.113.0/24"),
    }
    # The instances' API port admits the load balancer's group only, no CIDR.
    api = ingress["localai-instances-in-api"]
    assert api["fromPort"] == api["toPort"] == 8080
    assert "referencedSecurityGroupId" in api and "cidrIpv4" not in api
    assert [n for n in ingress if "instances" in n] == ["localai-instances-in-api"]
    # The load balancer may only reach the instances' API port.
    out = egress["localai-lb-out-api"]
    assert (out["fromPort"], out["toPort"], out["ipProtocol"]) == (8080, 8080, "tcp")
    assert "referencedSecurityGroupId" in out and "cidrIpv4" not in out
    for group in pulumi_mocks.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert "ingress" not in group.inputs and "egress" not in group.inputs


def test_every_security_group_rule_is_pinned_whole(pulumi_mocks: RecordingMocks) -> None:
    """Each rule's protocol, both ports, its source, description and tags (the mocks give
    every group the same id, so which group a rule belongs to is in its name and parent)."""
    config = {**PROD, "sshKeyName": "ops", "sshCidrs": '["198.51.100.0/24"]'}
    run_program(config, stack="prod")
    rules = {
        r.name: {k: v for k, v in r.inputs.items() if k != "securityGroupId"}
        for kind in ("Ingress", "Egress")
        for r in pulumi_mocks.of_type(f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule")
    }
    tags = {"localai:stack": "localai-prod"}
    group = "sg-0123456789abcdef0"
    tcp = {"ipProtocol": "tcp", "tags": tags}
    assert rules == {
        "localai-lb-in-443-203.0.113.0_24": {**tcp, "fromPort": 443, "toPort": 443,
            "cidrIpv4": "203.0.113.0/24", "description": "HTTPS from allowedCidrs"},
        "localai-lb-in-80-203.0.113.0_24": {**tcp, "fromPort": 80, "toPort": 80,
            "cidrIpv4": "203.0.113.0/24", "description": "HTTP from allowedCidrs"},
        "localai-instances-in-api": {**tcp, "fromPort": 8080, "toPort": 8080,
            "referencedSecurityGroupId": group,
            "description": "LocalAI API from the load balancer"},
        "localai-instances-in-ssh-198.51.100.0_24": {**tcp, "fromPort": 22, "toPort": 22,
            "cidrIpv4": "198.51.100.0/24", "description": "SSH (opted in)"},
        "localai-instances-out": {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0", "tags": tags,
            "description": "image pulls, model downloads, SSM, CloudWatch, Auto Scaling"},
        "localai-lb-out-api": {**tcp, "fromPort": 8080, "toPort": 8080,
            "referencedSecurityGroupId": group, "description": "to the instances' API port"},
    }  # fmt: skip
    parents = {
        r.name: r.parent
        for r in pulumi_mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    }
    assert parents["localai-instances-in-ssh-198.51.100.0_24"].endswith("::localai-instances-sg")
    assert parents["localai-lb-in-443-203.0.113.0_24"].endswith("::localai-lb-sg")


def test_scaling_policy_label_is_built_from_the_arn_suffixes(pulumi_mocks: RecordingMocks) -> None:
    result = run_program(PROD, stack="prod")
    policy = pulumi_mocks.one("aws:autoscaling/policy:Policy").inputs
    assert policy["autoscalingGroupName"] == "localai-prod"
    assert policy["policyType"] == "TargetTrackingScaling"
    tracking = policy["targetTrackingConfiguration"]
    metric = tracking["predefinedMetricSpecification"]
    assert metric["predefinedMetricType"] == "ALBRequestCountPerTarget"
    assert metric["resourceLabel"] == (
        "app/localai-lb/50dc6c495c0c9188/targetgroup/localai-targets/943f017f100becff"
    )
    assert tracking["targetValue"] == float(result.outputs["targetRequestsPerMinute"])


def test_target_requests_per_minute_override(pulumi_mocks: RecordingMocks) -> None:
    result = run_program(fleet_config(targetRequestsPerMinute=42), stack="prod")
    tracking = pulumi_mocks.one("aws:autoscaling/policy:Policy").inputs
    assert tracking["targetTrackingConfiguration"]["targetValue"] == 42.0
    assert result.outputs["targetRequestsPerMinute"] == 42


def test_prod_outputs(pulumi_mocks: RecordingMocks) -> None:
    result = run_program(PROD, stack="prod")
    out = result.outputs
    assert out["autoScalingGroupName"] == "localai-prod"
    assert out["loadBalancerDnsName"] == "localai-lb-1234567890.us-east-1.elb.amazonaws.com"
    assert out["instanceTypes"] == "g6.xlarge,g5.xlarge,g4dn.xlarge"
    g6 = lookup("g6.xlarge").hourly_usd
    # min 1 and max 4 instances of the preferred type, plus the load balancer's hour.
    assert out["hourlyCostUsdAtMinSize"] == round(1 * g6 + 0.0225, 4)
    assert out["hourlyCostUsdAtMaxSize"] == round(4 * g6 + 0.0225, 4)
    assert "OPENAI_API_KEY" in result.secret_outputs
    for name, value in out.items():
        assert " " not in str(value), f"{name} must be one shell word"


def test_role_completes_lifecycle_actions_on_its_own_group_only(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program(PROD, stack="prod")
    [policy] = [
        json.loads(p.inputs["policy"])
        for p in pulumi_mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.endswith("-host-access")
    ]
    (statement,) = [s for s in policy["Statement"] if s["Sid"] == "CompleteOwnLifecycleHook"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == [
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
    ]
    assert statement["Resource"] == [
        f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:*:"
        "autoScalingGroupName/localai-prod"
    ]
    assert not any(
        "autoscaling:" in action and s is not statement
        for s in policy["Statement"]
        for action in s["Action"]
    )


def test_single_host_policy_has_no_lifecycle_statement(pulumi_mocks: RecordingMocks) -> None:
    run_program(localai_keys(stack_config("dev")), stack="dev")
    policy = json.loads(pulumi_mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [
        "ReadEndpointApiKey",
        "NoOtherParameters",
        "ShipContainerLogs",
        "PublishHostMetrics",
    ]


def test_moving_between_host_and_fleet_keeps_key_and_log_group(
    pulumi_mocks: RecordingMocks,
) -> None:
    """Fixed names and create-before-delete: without aliases, moving a stack to the fleet
    would create a second parameter of the same name and fail (and a new generated key)."""
    run_program(PROD, stack="prod")
    host_parent = "urn:pulumi:test::localai::localai:aws:Host::localai"
    for typ in (
        "aws:ssm/parameter:Parameter",
        "aws:cloudwatch/logGroup:LogGroup",
        "random:index/randomPassword:RandomPassword",
    ):
        assert host_parent in pulumi_mocks.one(typ).alias_parents, typ


def test_host_aliases_the_fleet_for_the_way_back(pulumi_mocks: RecordingMocks) -> None:
    run_program(localai_keys(stack_config("dev")), stack="dev")
    fleet_parent = "urn:pulumi:test::localai::localai:aws:Fleet::localai"
    assert fleet_parent in pulumi_mocks.one("aws:ssm/parameter:Parameter").alias_parents


# --- choices -----------------------------------------------------------------------------


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the program passes to pulumi.log.warn."""
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: said.append(message))
    return said


def test_without_certificate_http_only_from_allowed_cidrs(
    pulumi_mocks: RecordingMocks, warnings: list[str]
) -> None:
    result = run_program(fleet_config(), stack="prod")
    (listener,) = pulumi_mocks.of_type("aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (80, "HTTP")
    assert listener.inputs["defaultActions"][0]["type"] == "forward"
    assert pulumi_mocks.of_type("aws:acm/certificate:Certificate") == []
    ports = {
        r.inputs["fromPort"]
        for r in pulumi_mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("localai-lb-in-")
    }
    assert ports == {80}
    assert result.outputs["OPENAI_BASE_URL"] == (
        "http://localai-lb-1234567890.us-east-1.elb.amazonaws.com/v1"
    )
    assert any("crosses the network in clear" in w or "in clear" in w for w in warnings)


def test_with_tls_there_is_no_clear_text_warning(
    pulumi_mocks: RecordingMocks, warnings: list[str]
) -> None:
    run_program(PROD, stack="prod")
    assert not any("in clear" in w for w in warnings)


def test_certificate_arn_is_used_as_given(pulumi_mocks: RecordingMocks) -> None:
    arn = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0a1b2c3d-1111-4222-8333-444455556666"
    result = run_program(
        fleet_config(certificateArn=arn, domainName="ai.example.org"), stack="prod"
    )
    https = next(
        r for r in pulumi_mocks.of_type("aws:lb/listener:Listener") if r.name == "localai-https"
    )
    assert https.inputs["certificateArn"] == arn
    assert pulumi_mocks.of_type("aws:acm/certificate:Certificate") == []
    assert pulumi_mocks.of_type("aws:route53/record:Record") == []  # DNS is the user's
    assert result.outputs["OPENAI_BASE_URL"] == "https://ai.example.org/v1"


def test_internal_load_balancer_defaults_to_the_vpc(pulumi_mocks: RecordingMocks) -> None:
    config = {k: v for k, v in fleet_config(internal=True).items() if k != "allowedCidrs"}
    run_program(config, stack="prod")
    assert pulumi_mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs["internal"] is True
    cidrs = {
        r.inputs["cidrIpv4"]
        for r in pulumi_mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("localai-lb-in-")
    }
    assert cidrs == {"172.31.0.0/16"}
    # No readiness check from outside the VPC; the rollout wait asks the AWS API.
    names = [r.name for r in pulumi_mocks.of_type("command:local:Command")]
    assert names == ["localai-rollout"]


def test_warm_pool_uses_one_type_without_a_mixed_policy(pulumi_mocks: RecordingMocks) -> None:
    run_program(fleet_config(instanceTypes=["g6.xlarge"], warmPool={"minSize": 2}), stack="prod")
    group = pulumi_mocks.one("aws:autoscaling/group:Group").inputs
    assert "mixedInstancesPolicy" not in group
    assert group["launchTemplate"] == {"id": "lt-0123456789abcdef0", "version": "1"}
    assert group["warmPool"] == {
        "poolState": "Stopped",
        "minSize": 2,
        "instanceReusePolicy": {"reuseOnScaleIn": True},
    }
    assert group["initialLifecycleHooks"][0]["lifecycleTransition"] == (
        "autoscaling:EC2_INSTANCE_LAUNCHING"
    )


def test_spot_above_an_on_demand_base(pulumi_mocks: RecordingMocks) -> None:
    run_program(
        fleet_config(spot={"onDemandBaseCapacity": 1, "onDemandPercentageAboveBase": 25}),
        stack="prod",
    )
    group = pulumi_mocks.one("aws:autoscaling/group:Group").inputs
    assert group["mixedInstancesPolicy"]["instancesDistribution"] == {
        "onDemandAllocationStrategy": "prioritized",
        "onDemandBaseCapacity": 1,
        "onDemandPercentageAboveBaseCapacity": 25,
        "spotAllocationStrategy": "price-capacity-optimized",
    }
    assert group["capacityRebalance"] is True


def test_snapshot_seeds_each_weights_volume(pulumi_mocks: RecordingMocks) -> None:
    pulumi_mocks.snapshots["snap-0123456789abcdef0"] = 60
    run_program(fleet_config(weightsSnapshotId="snap-0123456789abcdef0"), stack="prod")
    template = pulumi_mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    weights = template["blockDeviceMappings"][1]["ebs"]
    assert weights["snapshotId"] == "snap-0123456789abcdef0"
    assert weights["volumeSize"] == 60  # grown to the snapshot: EC2 refuses smaller


@pytest.mark.parametrize("manager", ["CUSTOMER", "AWS"])
def test_a_customer_managed_snapshot_key_is_granted_to_auto_scaling(
    pulumi_mocks: RecordingMocks, manager: str
) -> None:
    """Without a grant, Auto Scaling's service-linked role cannot create the volume from a
    snapshot under a customer-managed key and every launch fails (issue 18, item 9)."""
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    pulumi_mocks.snapshots["snap-0123456789abcdef0"] = 60
    pulumi_mocks.snapshot_keys["snap-0123456789abcdef0"] = (key, manager)
    run_program(fleet_config(weightsSnapshotId="snap-0123456789abcdef0"), stack="prod")
    grants = pulumi_mocks.of_type("aws:kms/grant:Grant")
    if manager == "AWS":
        assert grants == []
        return
    (grant,) = grants
    assert grant.inputs["keyId"] == key
    assert grant.inputs["granteePrincipal"] == (
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/"
        "AWSServiceRoleForAutoScaling"
    )
    assert {"Decrypt", "CreateGrant", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom"} <= set(
        grant.inputs["operations"]
    )
    assert grant.urn in pulumi_mocks.one("aws:autoscaling/group:Group").dependencies
    looked_up = [token for token, _ in pulumi_mocks.calls]
    assert looked_up.count("aws:ebs/getSnapshot:getSnapshot") == 1, "one lookup serves both"


def test_snapshot_larger_than_an_explicit_volume_size_is_refused(
    pulumi_mocks: RecordingMocks,
) -> None:
    pulumi_mocks.snapshots["snap-0123456789abcdef0"] = 60
    config = {**fleet_config(weightsSnapshotId="snap-0123456789abcdef0"), "volumeSizeGb": "40"}
    with pytest.raises(ConfigError, match=r"snapshot snap-0123456789abcdef0 .* is 60 GiB"):
        run_program(config, stack="prod")
    assert pulumi_mocks.resources == []


def test_desired_size_is_managed_when_set(pulumi_mocks: RecordingMocks) -> None:
    run_program(fleet_config(desiredSize=2), stack="prod")
    group = pulumi_mocks.one("aws:autoscaling/group:Group")
    assert group.inputs["desiredCapacity"] == 2
    assert group.ignore_changes == ("initialLifecycleHooks",)


def test_min_size_zero_is_refused_it_could_never_scale_out(pulumi_mocks: RecordingMocks) -> None:
    """ALBRequestCountPerTarget has no datapoint without a registered target: target
    tracking alone never brings a group at zero back (issue 18, item 9)."""
    with pytest.raises(ConfigError, match=r"minSize 0 cannot scale out again.*Use minSize 1"):
        run_program(fleet_config(minSize=0), stack="prod")
    assert pulumi_mocks.resources == []


def test_wait_for_ready_false_does_not_wait(pulumi_mocks: RecordingMocks) -> None:
    run_program({**fleet_config(), "waitForReady": "false"}, stack="prod")
    group = pulumi_mocks.one("aws:autoscaling/group:Group").inputs
    assert group["waitForCapacityTimeout"] == "0"
    assert "minElbCapacity" not in group
    assert pulumi_mocks.of_type("command:local:Command") == []


def test_fleet_user_data_has_a_profile_per_type(pulumi_mocks: RecordingMocks) -> None:
    run_program(PROD, stack="prod")
    files = user_data_files(pulumi_mocks)
    assert CONF_PATH not in files  # written at boot from base + the type's profile
    for instance_type in GPU_TYPES:
        profile = files[f"{FLEET_DIR}/{instance_type}.conf"]
        assert f"LOCALAI_MODEL_SRC_DIR=/etc/localai/models/{instance_type}" in profile
        assert "LOCALAI_GPU_CAPABLE=1" in profile
        assert f"/etc/localai/models/{instance_type}/gpu/llama-3.1-8b-instruct.yaml" in files
    base = files[f"{FLEET_DIR}/base.conf"]
    assert "LOCALAI_AUTOSCALING_GROUP=localai-prod" in base
    assert "LOCALAI_LIFECYCLE_HOOK=localai-prod-model-ready" in base
    assert "LOCALAI_REGION=us-east-1" in base
    assert "LOCALAI_THREADS" not in base and "LOCALAI_VOLUME_DEVICE" not in base


def test_the_threads_follow_each_types_cores(pulumi_mocks: RecordingMocks) -> None:
    cpu = {
        **{k: v for k, v in PROD.items() if k not in ("accelerator", "models")},
        "fleet": json.dumps({"instanceTypes": ["c7a.2xlarge", "c7a.xlarge"], "maxSize": 3}),
    }
    run_program(cpu, stack="prod")
    files = user_data_files(pulumi_mocks)
    big = files[f"{FLEET_DIR}/c7a.2xlarge.conf"]
    small = files[f"{FLEET_DIR}/c7a.xlarge.conf"]
    # c7a: one thread per vCPU (no SMT): 8 and 4 vCPUs.
    assert "LOCALAI_THREADS=8" in big and "LOCALAI_THREADS=4" in small
    assert "LOCALAI_GPU_CAPABLE=0" in big
    assert pulumi_mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["imageId"] == (
        "ami-0ubuntuamd64000001"
    )


def test_zones_that_offer_none_of_the_types_are_left_out(pulumi_mocks: RecordingMocks) -> None:
    pulumi_mocks.vpc_subnets["vpc-0def000000000000a"].append("subnet-0dddd000000000000")
    for t in GPU_TYPES:
        pulumi_mocks.offerings[t] = ["us-east-1a", "us-east-1b"]
    pulumi_mocks.subnet_zones["subnet-0dddd000000000000"] = "us-east-1c"
    config = fleet_config(subnetIds=[*DEFAULT_SUBNETS, "subnet-0dddd000000000000"])
    run_program(config, stack="prod")
    group = pulumi_mocks.one("aws:autoscaling/group:Group").inputs
    assert sorted(group["vpcZoneIdentifiers"]) == sorted(DEFAULT_SUBNETS)


# --- refusals, before any resource ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fleet", "expected"),
    [
        ({"minSize": 3, "maxSize": 2}, r"minSize \(3\) must not exceed maxSize \(2\)"),
        ({"minSize": 1, "maxSize": 2, "desiredSize": 3}, r"desiredSize \(3\) must lie between"),
        ({"minSize": 2, "maxSize": 3, "desiredSize": 1}, r"desiredSize \(1\) must lie between"),
        ({"instanceTypes": []}, r"at least 1 item"),
        ({"instanceTypes": ["g9.huge"]}, r"g9.huge"),
        ({"instanceTypes": ["g6.xlarge", "g6.xlarge"]}, r"lists g6.xlarge more than once"),
        ({"certificateArn": "arn:aws:iam::1:cert/x", "domainName": "a.example.com"}, r"certificateArn"),
        ({"domainName": "a.example.com"}, r"without hostedZoneId"),
        ({"hostedZoneId": "Z0123456789ABCDEFGHIJ"}, r"hostedZoneId needs domainName"),
        (
            {"certificateArn": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/"
             "0a1b2c3d-1111-4222-8333-444455556666"},
            r"certificateArn needs domainName",
        ),
        (
            {"instanceTypes": ["g6.xlarge"], "warmPool": {"minSize": 1}, "spot": {}},
            r"warmPool cannot be combined with spot",
        ),
        ({"warmPool": {"minSize": 1}}, r"warmPool needs exactly one instance type \(got 3\)"),
        ({"domainName": "not a name", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}, r"domainName"),
    ],
)  # fmt: skip
def test_bad_fleet_settings_are_refused(
    pulumi_mocks: RecordingMocks, fleet: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        run_program(fleet_config(**fleet), stack="prod")
    assert pulumi_mocks.resources == []


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (
            ["c7a.xlarge", "c7g.xlarge"],
            r"localai:fleet.instanceTypes: one launch template boots one AMI, so its types "
            r"must share an architecture; got c7a.xlarge \(x86_64\), c7g",
        ),
        (
            ["g6.xlarge", "c7a.xlarge", "g5.xlarge", "c7i.xlarge"],
            r"localai:fleet.instanceTypes: GPU types \(g6.xlarge, g5.xlarge\) boot the NVIDIA "
            r"DLAMI and CPU types \(c7a.xlarge, c7i.xlarge\) plain Ubuntu",
        ),
    ],
)
def test_one_template_one_ami(
    pulumi_mocks: RecordingMocks, types: list[str], expected: str
) -> None:
    config = {**fleet_config(instanceTypes=types), "accelerator": "auto"}
    with pytest.raises(ConfigError, match=expected):
        run_program(config, stack="prod")
    assert pulumi_mocks.resources == []


def test_each_type_that_cannot_hold_the_models_is_named_with_numbers_on_its_own_line(
    pulumi_mocks: RecordingMocks,
) -> None:
    config = {
        **fleet_config(instanceTypes=["c7a.2xlarge", "c7a.large", "c7i.large"]),
        "accelerator": "cpu",
    }
    with pytest.raises(ConfigError) as caught:
        run_program(config, stack="prod")
    message = str(caught.value)
    lines = message.splitlines()
    assert lines[:2] == [
        "localai configuration is invalid:",
        "  - localai:fleet.instanceTypes: every type must hold the models; these cannot:",
    ]
    assert [line.split(":")[0] for line in lines[2:]] == ["      c7a.large", "      c7i.large"]
    assert "c7a.large:" in message and "c7a.2xlarge:" not in message
    assert "MiB" in message or "GiB" in message
    assert pulumi_mocks.resources == []


@pytest.mark.parametrize("key", SINGLE_VM_ONLY_KEYS)
def test_single_vm_keys_are_refused_with_a_fleet(pulumi_mocks: RecordingMocks, key: str) -> None:
    values = {
        "instanceType": "g6.xlarge",
        "subnetId": "subnet-0aaaa000000000000",
        "weightsVolumeId": "vol-0123456789abcdef0",
        "public": "true",
        "vpcEndpoints": "true",
        "schedule": '{"stop": "cron(0 20 * * ? *)", "start": "cron(0 8 * * ? *)"}',
        "hostMetrics": "false",
    }
    with pytest.raises(ConfigError, match=rf"localai:{key} = .*the single VM's, meaningless"):
        run_program({**fleet_config(), key: values[key]}, stack="prod")


def test_fleet_needs_the_aws_target(pulumi_mocks: RecordingMocks) -> None:
    with pytest.raises(ConfigError, match=r"set 'localai:target aws'"):
        run_program({"fleet": fleet_config()["fleet"]}, stack="prod")


def test_internet_facing_fleet_needs_allowed_cidrs(pulumi_mocks: RecordingMocks) -> None:
    config = {k: v for k, v in fleet_config().items() if k != "allowedCidrs"}
    with pytest.raises(ConfigError, match=r"internet-facing load balancer needs 'allowedCidrs'"):
        run_program(config, stack="prod")


def test_subnets_in_one_zone_are_refused(pulumi_mocks: RecordingMocks) -> None:
    with pytest.raises(ConfigError, match=r"both need at least 2"):
        run_program(fleet_config(subnetIds=["subnet-0aaaa000000000000"]), stack="prod")
    assert pulumi_mocks.resources == []


def test_a_type_offered_in_one_zone_only_still_runs_where_the_others_are(
    pulumi_mocks: RecordingMocks,
) -> None:
    pulumi_mocks.offerings["g6.xlarge"] = ["us-east-1a"]
    pulumi_mocks.offerings["g5.xlarge"] = ["us-east-1b"]
    pulumi_mocks.offerings["g4dn.xlarge"] = []
    run_program(PROD, stack="prod")
    group = pulumi_mocks.one("aws:autoscaling/group:Group").inputs
    assert sorted(group["vpcZoneIdentifiers"]) == sorted(DEFAULT_SUBNETS)


def test_no_zone_offering_any_type_is_refused(pulumi_mocks: RecordingMocks) -> None:
    for t in GPU_TYPES:
        pulumi_mocks.offerings[t] = ["us-west-2a"]
    with pytest.raises(ConfigError, match=r"none of g6.xlarge, g5.xlarge, g4dn.xlarge is offered"):
        run_program(PROD, stack="prod")


def test_the_readiness_check_waits_for_the_alias_record_it_resolves(
    pulumi_mocks: RecordingMocks,
) -> None:
    """OPENAI_BASE_URL names the domain: the check must not run before its record exists."""
    run_program(PROD, stack="prod")
    ready = next(
        r for r in pulumi_mocks.of_type("command:local:Command") if r.name == "localai-ready"
    )
    alias = next(
        r for r in pulumi_mocks.of_type("aws:route53/record:Record") if r.name == "localai-alias"
    )
    assert alias.urn in ready.dependencies


def test_the_target_group_tolerates_a_localai_restart(pulumi_mocks: RecordingMocks) -> None:
    """With ELB health checks on the group, 3 failed checks 15 s apart marked a host that was
    restarting for a key rotation unhealthy and replaced it (item 5)."""
    run_program(PROD, stack="prod")
    check = pulumi_mocks.one("aws:lb/targetGroup:TargetGroup").inputs["healthCheck"]
    assert check["interval"] * check["unhealthyThreshold"] >= 150
    assert check["unhealthyThreshold"] == 10  # ELB's maximum


def test_pulumi_up_waits_for_the_rollout_a_template_change_starts(
    pulumi_mocks: RecordingMocks,
) -> None:
    """The provider starts the instance refresh and returns (item 8): a command waits for it,
    re-run whenever the template's version changes."""
    run_program(PROD, stack="prod")
    commands = {r.name: r for r in pulumi_mocks.of_type("command:local:Command")}
    rollout = commands["localai-rollout"]
    line = rollout.inputs["create"]
    assert "-m components.readiness.rollout --group localai-prod --region us-east-1" in line
    assert line.endswith("--timeout 3600 --log-group /localai/localai-prod")
    assert rollout.inputs["triggers"] == [1]  # the launch template's latest version
    group = pulumi_mocks.one("aws:autoscaling/group:Group")
    hook = pulumi_mocks.one("aws:autoscaling/lifecycleHook:LifecycleHook")
    assert {group.urn, hook.urn} <= set(rollout.dependencies)


def test_no_rollout_wait_without_wait_for_ready(pulumi_mocks: RecordingMocks) -> None:
    run_program({**PROD, "waitForReady": "false"}, stack="prod")
    names = {r.name for r in pulumi_mocks.of_type("command:local:Command")}
    assert "localai-rollout" not in names


# -- issue 22: what the fleet program decides, each pinned --------------------------------


def weights_ebs(mocks: RecordingMocks) -> dict:
    template = mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    (weights,) = [m for m in template["blockDeviceMappings"] if m["deviceName"] == "/dev/sdf"]
    return weights["ebs"]


def test_the_weights_volume_is_sized_without_a_snapshot(pulumi_mocks: RecordingMocks) -> None:
    """Llama-3.1-8B: 4.92 GB x 1.1 -> 20 GiB (components/sizing/volume.py)."""
    run_program(PROD, stack="prod")
    assert weights_ebs(pulumi_mocks)["volumeSize"] == 20


def test_a_snapshot_smaller_than_the_computed_size_keeps_the_computed_size(
    pulumi_mocks: RecordingMocks,
) -> None:
    pulumi_mocks.snapshots["snap-0123456789abcdef0"] = 8
    run_program(fleet_config(weightsSnapshotId="snap-0123456789abcdef0"), stack="prod")
    assert weights_ebs(pulumi_mocks)["volumeSize"] == 20


def test_a_volume_size_equal_to_the_snapshot_is_accepted(pulumi_mocks: RecordingMocks) -> None:
    pulumi_mocks.snapshots["snap-0123456789abcdef0"] = 60
    config = {**fleet_config(weightsSnapshotId="snap-0123456789abcdef0"), "volumeSizeGb": "60"}
    run_program(config, stack="prod")
    assert weights_ebs(pulumi_mocks)["volumeSize"] == 60


def test_accelerator_cpu_on_gpu_types_plans_no_offload(
    pulumi_mocks: RecordingMocks, warnings: list[str]
) -> None:
    run_program({**fleet_config(), "accelerator": "cpu"}, stack="prod")
    files = user_data_files(pulumi_mocks)
    for instance_type in GPU_TYPES:
        profile = files[f"{FLEET_DIR}/{instance_type}.conf"]
        assert "\nLOCALAI_GPU_CAPABLE=0\n" in f"\n{profile}"
        assert not any(p.startswith(f"/etc/localai/models/{instance_type}/gpu/") for p in files)
    models = [text for path, text in files.items() if path.startswith("/etc/localai/models/")]
    assert models and all("\ngpu_layers: 0\n" in text for text in models)
    assert not any("GPU" in w for w in warnings), warnings


def test_estimates_come_from_the_preferred_type(pulumi_mocks: RecordingMocks) -> None:
    keys = ("estimatedTtftMs", "estimatedTokensPerSecond")
    first = run_program(fleet_config(instanceTypes=["g6.xlarge", "g4dn.xlarge"]), stack="prod")
    alone = run_program(fleet_config(instanceTypes=["g6.xlarge"]), stack="prod")
    other = run_program(fleet_config(instanceTypes=["g4dn.xlarge", "g6.xlarge"]), stack="prod")
    assert [first.outputs[k] for k in keys] == [alone.outputs[k] for k in keys]
    assert [other.outputs[k] for k in keys] != [first.outputs[k] for k in keys]


def test_the_deregistration_delay_follows_the_largest_context(pulumi_mocks: RecordingMocks) -> None:
    """With phi as the default (its speed), llama's 8,192 tokens, not phi's 4,096, set how
    long a full answer may take while an instance drains."""
    one = fleet_config(instanceTypes=["g6.xlarge"])
    run_program({**one, "models": '["phi-3.5-mini-instruct", "llama-3.1-8b-instruct"]'}, stack="prod")  # fmt: skip
    both = pulumi_mocks.of_type("aws:lb/targetGroup:TargetGroup")[-1].inputs["deregistrationDelay"]
    run_program({**one, "models": '["phi-3.5-mini-instruct"]'}, stack="prod")
    phi = pulumi_mocks.of_type("aws:lb/targetGroup:TargetGroup")[-1].inputs["deregistrationDelay"]
    assert both > phi


def test_the_region_output_is_named_region(pulumi_mocks: RecordingMocks) -> None:
    assert run_program(PROD, stack="prod").outputs["region"] == "us-east-1"


def test_fleet_user_data_over_the_limit_is_one_clear_error(
    pulumi_mocks: RecordingMocks, monkeypatch
) -> None:
    from components.aws.bootstrap import cloud_init

    # The files travel in the bundle: the user data is the drop-in and the fetch (< 1 KB).
    monkeypatch.setattr(cloud_init, "USER_DATA_LIMIT_BYTES", 512)
    with pytest.raises(
        ConfigError,
        match=r"localai configuration cannot be deployed to EC2: the gzipped cloud-init user "
        r"data is \d+ bytes; EC2 allows 512",
    ):
        run_program(PROD, stack="prod")
    assert pulumi_mocks.resources == []


def test_the_load_balancers_arguments_cannot_change_once_built() -> None:
    """A TLS choice or the load balancer's arguments, once decided at preview, are what
    every resource of the fleet reads: none of them may be changed on the way."""
    import dataclasses

    from components.aws.load_balancer import LoadBalancerArgs, TlsChoice

    tls = TlsChoice(domain_name="llm.example.com", zone_id="Z0123456789ABCDEFGHIJ")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tls.zone_id = None  # type: ignore[misc]
    assert tls.enabled and not TlsChoice().enabled
    assert dataclasses.fields(LoadBalancerArgs)  # a dataclass
    assert LoadBalancerArgs.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_both_security_groups_are_pinned_whole(pulumi_mocks: RecordingMocks) -> None:
    """What each group is for, its VPC and its tags (a Name per role), nothing else: the
    rules are separate resources."""
    run_program(PROD, stack="prod")
    groups = {r.name: r.inputs for r in pulumi_mocks.of_type("aws:ec2/securityGroup:SecurityGroup")}
    vpc = "vpc-0def000000000000a"
    assert groups == {
        "localai-lb-sg": {"vpcId": vpc,
            "tags": {"Name": "localai-prod-load-balancer", "localai:stack": "localai-prod"},
            "description": "LocalAI load balancer: listeners from allowedCidrs only"},
        "localai-instances-sg": {"vpcId": vpc,
            "tags": {"Name": "localai-prod-instances", "localai:stack": "localai-prod"},
            "description": "LocalAI fleet instances: API port from the load balancer only"},
    }  # fmt: skip


def test_the_load_balancer_target_group_listeners_and_records_are_pinned_whole(
    pulumi_mocks: RecordingMocks,
) -> None:
    """Every input of the TLS fleet's load balancing resources, so that no value (a health
    check's timing, a record's TTL, a tag) changes unnoticed."""
    run_program(PROD, stack="prod")
    tags = {"localai:stack": "localai-prod"}
    lb_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/localai-lb/50dc6c495c0c9188"
    tg_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/localai-targets/943f017f100becff"
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/1b2c3d4e-0000-4000-8000-000000000001"
    assert pulumi_mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs == {
        "subnets": list(DEFAULT_SUBNETS[:2]), "tags": {"Name": "localai-prod", **tags},
        "internal": False, "securityGroups": ["sg-0123456789abcdef0"],
        "loadBalancerType": "application", "idleTimeout": 300,
        "dropInvalidHeaderFields": True,
    }  # fmt: skip
    target_group = pulumi_mocks.one("aws:lb/targetGroup:TargetGroup").inputs
    assert {k: v for k, v in target_group.items() if k != "deregistrationDelay"} == {
        "targetType": "instance", "tags": tags, "protocol": "HTTP",
        "vpcId": "vpc-0def000000000000a", "port": 8080,
        "healthCheck": {"healthyThreshold": 2, "timeout": 5, "unhealthyThreshold": 10,
                        "matcher": "200", "enabled": True, "path": "/readyz", "interval": 15,
                        "protocol": "HTTP"},
    }  # fmt: skip
    listeners = {r.name: r for r in pulumi_mocks.of_type("aws:lb/listener:Listener")}
    assert listeners["localai-http"].inputs == {
        "port": 80, "tags": tags, "loadBalancerArn": lb_arn, "protocol": "HTTP",
        "defaultActions": [{"type": "redirect", "redirect": {
            "port": "443", "statusCode": "HTTP_301", "protocol": "HTTPS"}}],
    }  # fmt: skip
    assert "localai-http-redirect" in listeners["localai-http"].alias_names
    assert listeners["localai-https"].inputs == {
        "sslPolicy": ALB_TLS_POLICY, "tags": tags, "loadBalancerArn": lb_arn, "port": 443,
        "certificateArn": cert, "protocol": "HTTPS",
        "defaultActions": [{"type": "forward", "targetGroupArn": tg_arn}],
    }  # fmt: skip
    records = {r.name: r.inputs for r in pulumi_mocks.of_type("aws:route53/record:Record")}
    assert records == {
        "localai-alias": {"type": "A", "zoneId": "Z0123456789ABCDEFGHIJ",
            "name": "llm.example.com", "aliases": [{"zoneId": "Z35SXDOTRQ7X7K",
            "name": "localai-lb-1234567890.us-east-1.elb.amazonaws.com",
            "evaluateTargetHealth": True}]},
        "localai-certificate-validation": {"ttl": 300, "type": "CNAME",
            "zoneId": "Z0123456789ABCDEFGHIJ", "name": "_x1.llm.example.com.",
            "allowOverwrite": True, "records": ["_x2.acm-validations.aws."]},
    }  # fmt: skip


CPU_TYPES = ["c7i.2xlarge", "c7a.2xlarge"]
ONE_MODEL = {"models": '["qwen2.5-0.5b-instruct"]'}
"""The prod stack's user data is close to EC2's 16 KiB: tests that add to it serve one model."""


def test_a_cpu_fleet_is_planned_without_a_gpu(
    pulumi_mocks: RecordingMocks, warnings: list[str]
) -> None:
    """accelerator auto on CPU types: no GPU offload, no GPU profile, no GPU warning."""
    run_program(
        {**fleet_config(instanceTypes=CPU_TYPES), "accelerator": "auto", **ONE_MODEL},
        stack="prod",
    )
    files = user_data_files(pulumi_mocks)
    for instance_type in CPU_TYPES:
        assert "\nLOCALAI_GPU_CAPABLE=0\n" in f"\n{files[f'{FLEET_DIR}/{instance_type}.conf']}"
    assert not any("GPU" in w for w in warnings), warnings


def test_accelerator_auto_on_gpu_types_offloads(pulumi_mocks: RecordingMocks) -> None:
    run_program({**fleet_config(), "accelerator": "auto", **ONE_MODEL}, stack="prod")
    files = user_data_files(pulumi_mocks)
    for instance_type in GPU_TYPES:
        assert "\nLOCALAI_GPU_CAPABLE=1\n" in f"\n{files[f'{FLEET_DIR}/{instance_type}.conf']}"
        assert any(p.startswith(f"/etc/localai/models/{instance_type}/gpu/") for p in files)


def test_planner_warnings_are_logged_per_type(
    pulumi_mocks: RecordingMocks, warnings: list[str]
) -> None:
    run_program({**fleet_config(), "parallelRequests": "2", **ONE_MODEL}, stack="prod")
    for instance_type in GPU_TYPES:
        assert any(w.startswith(f"{instance_type}: ") and "slot" in w for w in warnings), warnings


def test_every_contract_output_of_the_fleet_is_named(pulumi_mocks: RecordingMocks) -> None:
    out = run_program(PROD, stack="prod").outputs
    assert out["amiParameter"].startswith("/aws/service/deeplearning/ami/x86_64/")
    assert out["logGroup"] == "/localai/localai-prod"
    assert out["loadBalancerIdleTimeoutSeconds"] >= 60
    assert out["region"] == "us-east-1"


def test_the_snapshot_lookup_takes_the_newest(pulumi_mocks: RecordingMocks) -> None:
    pulumi_mocks.snapshots["snap-0123456789abcdef0"] = 60
    run_program(fleet_config(weightsSnapshotId="snap-0123456789abcdef0"), stack="prod")
    (args,) = [a for token, a in pulumi_mocks.calls if token == "aws:ebs/getSnapshot:getSnapshot"]
    assert args["snapshotIds"] == ["snap-0123456789abcdef0"]
    assert args["mostRecent"] is True


def test_a_root_volume_below_the_ami_is_named_by_its_key(pulumi_mocks: RecordingMocks) -> None:
    with pytest.raises(ConfigError, match=r"localai:rootVolumeSizeGb = 10 GiB is smaller"):
        run_program({**fleet_config(), "rootVolumeSizeGb": "10"}, stack="prod")


def test_the_hourly_costs_are_rounded_to_four_decimals(pulumi_mocks: RecordingMocks) -> None:
    # c7a.2xlarge costs $0.41054 an hour: five decimals, so the rounding shows.
    out = run_program(
        {**fleet_config(instanceTypes=["c7a.2xlarge"]), "accelerator": "cpu", **ONE_MODEL},
        stack="prod",
    ).outputs
    assert out["hourlyCostUsdAtMinSize"] == 0.433  # 0.41054 + the load balancer's 0.0225
    assert out["hourlyCostUsdAtMaxSize"] == 1.6647  # 4 x 0.41054 + 0.0225 = 1.66466


# -- issue 22, second operator set: what the fleet program passes on, each pinned ----------

TWO_CPU = ["c7a.2xlarge", "c7a.xlarge"]
PHI_AND_LLAMA = {"models": '["phi-3.5-mini-instruct", "llama-3.1-8b-instruct"]',
                 "embeddingModel": "none"}  # fmt: skip


def cpu_fleet(types: list[str], **extra: str) -> dict[str, str]:
    base = {k: v for k, v in PROD.items() if k not in ("accelerator", "models")}
    return {**base, "fleet": json.dumps({"instanceTypes": types, "maxSize": 3}), **extra}


def test_one_model_at_a_time_on_every_type_when_any_type_needs_it(
    pulumi_mocks: RecordingMocks,
) -> None:
    """c7a.2xlarge holds both models, c7a.xlarge only one at a time: one base settings file
    serves both, so it must say one at a time."""
    run_program(cpu_fleet(TWO_CPU, **PHI_AND_LLAMA), stack="prod")
    assert "SINGLE_ACTIVE_BACKEND=true" in user_data_files(pulumi_mocks)[EXTRA_ENV_PATH]


def test_a_fleet_whose_types_hold_every_model_loads_them_together(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program(cpu_fleet(["c7a.2xlarge"], **PHI_AND_LLAMA), stack="prod")
    assert "SINGLE_ACTIVE_BACKEND" not in user_data_files(pulumi_mocks).get(EXTRA_ENV_PATH, "")


def test_each_types_model_files_carry_its_own_threads(pulumi_mocks: RecordingMocks) -> None:
    run_program({**fleet_config(), **ONE_MODEL}, stack="prod")
    files = user_data_files(pulumi_mocks)
    for instance_type in GPU_TYPES:
        conf = files[f"{FLEET_DIR}/{instance_type}.conf"]
        threads = next(
            li.split("=")[1] for li in conf.splitlines() if li.startswith("LOCALAI_THREADS=")
        )
        for accelerator in ("cpu", "gpu"):
            model = yaml.safe_load(
                files[
                    f"/etc/localai/models/{instance_type}/{accelerator}/qwen2.5-0.5b-instruct.yaml"
                ]
            )
            assert model["threads"] == int(threads), (instance_type, accelerator)


def test_the_fleet_carries_the_stacks_manifest_retention_and_ssh_key(
    pulumi_mocks: RecordingMocks,
) -> None:
    from components.weights.mirror import stack_manifest

    config = {**PROD, "logRetentionDays": "14", "sshKeyName": "ops",
              "sshCidrs": '["198.51.100.0/24"]'}  # fmt: skip
    run_program(config, stack="prod")
    assert user_data_files(pulumi_mocks)["/etc/localai/weights.tsv"] == stack_manifest("prod")
    logs = pulumi_mocks.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert logs["retentionInDays"] == 14
    template = pulumi_mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["keyName"] == "ops"


def test_an_open_fleet_boots_from_a_bundle_in_a_private_bucket_of_its_own(
    pulumi_mocks: RecordingMocks,
) -> None:
    """The files (every type's model files, the scripts, the CloudWatch agent's) exceed
    16 KiB: they travel as a bundle, in a bucket only the hosts' role may read."""
    from components.aws.bootstrap.bundle import bundle_key

    run_program(PROD, stack="prod")
    bucket = pulumi_mocks.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["forceDestroy"] is True  # it holds nothing that cannot be rendered
    physical = "localai-bootstrap-0a1b2c3"
    private = pulumi_mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert private == {
        "bucket": physical, "blockPublicAcls": True, "blockPublicPolicy": True,
        "ignorePublicAcls": True, "restrictPublicBuckets": True,
    }  # fmt: skip
    https = json.loads(pulumi_mocks.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert https["Statement"][0]["Effect"] == "Deny"
    assert https["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [read] = [
        json.loads(p.inputs["policy"])["Statement"]
        for p in pulumi_mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.endswith("-bootstrap-read")
    ]
    assert read == [{"Sid": "ReadBootstrapBundles", "Effect": "Allow", "Action": "s3:GetObject",
                     "Resource": f"arn:aws:s3:::{physical}/bootstrap/*"}]  # fmt: skip
    obj = pulumi_mocks.one("aws:s3/bucketObjectv2:BucketObjectv2")
    content = base64.b64decode(obj.inputs["contentBase64"])
    assert (obj.inputs["bucket"], obj.inputs["key"]) == (physical, bundle_key(content))
    group = pulumi_mocks.one("aws:autoscaling/group:Group")
    for resource in ("aws:s3/bucketPolicy:BucketPolicy", "aws:s3/bucketObjectv2:BucketObjectv2"):
        assert pulumi_mocks.one(resource).urn in group.dependencies
    template = pulumi_mocks.one("aws:ec2/launchTemplate:LaunchTemplate")
    document = gzip.decompress(base64.b64decode(template.inputs["userData"])).decode()
    first = yaml.safe_load(document)["runcmd"][1]
    assert f"--bucket {physical} --key {bundle_key(content)} " in first
    # The GPU types boot the DLAMI, whose aws CLI is there at first boot: no snap.
    assert "snap install" not in first
    files = user_data_files(pulumi_mocks)
    assert "/usr/local/sbin/localai-metrics-agent" in files
    assert "nvidia_gpu" in files["/etc/localai/cloudwatch-agent-gpu.json"]


def test_a_cpu_fleet_on_plain_ubuntu_installs_the_aws_cli_before_the_bundle(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program(
        {**PROD, "accelerator": "cpu", "models": '["phi-3.5-mini-instruct"]',
         "fleet": json.dumps({"instanceTypes": ["c7a.2xlarge"], "minSize": 1, "maxSize": 2})},
        stack="prod",
    )  # fmt: skip
    template = pulumi_mocks.one("aws:ec2/launchTemplate:LaunchTemplate")
    document = gzip.decompress(base64.b64decode(template.inputs["userData"])).decode()
    first = yaml.safe_load(document)["runcmd"][1]
    assert first.index("snap install aws-cli --classic") < first.index("aws s3api get-object")
    assert "/etc/localai/cloudwatch-agent-gpu.json" not in user_data_files(pulumi_mocks)
