"""components/aws/network.py: where a host goes, judged before any resource (issue 9,
defects 2 and 3): a zone that offers the type, a route that fits public or private, and
the zone of the weights volume it already has."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from components.aws.network import default_route_egress
from components.errors import ConfigError
from tests.components.aws.day_two import deploy
from tests.support.pulumi_mocks import PRIVATE_SUBNET

INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
AWS = {"target": "aws", "allowedCidrs": '["203.0.113.0/24"]'}
SUBNET_A, SUBNET_B = "subnet-0aaaa000000000000", "subnet-0bbbb000000000000"


def route(cidr: str = "0.0.0.0/0", **target: str) -> SimpleNamespace:
    return SimpleNamespace(cidr_block=cidr, **target)


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([route(gateway_id="igw-1")], ("igw", "igw-1")),
        ([route(nat_gateway_id="nat-1")], ("nat", "nat-1")),
        ([route(gateway_id="", instance_id="i-1")], ("nat", "i-1")),
        ([route(network_interface_id="eni-1")], ("nat", "eni-1")),
        ([route(transit_gateway_id="tgw-1")], ("nat", "tgw-1")),
        # egress through a firewall (Gateway Load Balancer / Network Firewall endpoint) or a
        # Cloud WAN core network was refused (issue 18, item 9)
        ([route(vpc_endpoint_id="vpce-0fw1")], ("nat", "vpce-0fw1")),
        ([route(gateway_id="vpce-0fw2")], ("nat", "vpce-0fw2")),
        (
            [route(core_network_arn="arn:aws:networkmanager::1:core-network/core-network-1")],
            ("nat", "arn:aws:networkmanager::1:core-network/core-network-1"),
        ),
        (
            [route(vpc_peering_connection_id="pcx-1")],
            ("none", "0.0.0.0/0 goes to an unsupported target"),
        ),
        ([route(gateway_id="vgw-1")], ("none", "0.0.0.0/0 goes to vgw-1")),
        ([route("10.0.0.0/8", nat_gateway_id="nat-1")], ("none", "no 0.0.0.0/0 route")),
        ([], ("none", "no 0.0.0.0/0 route")),
    ],
)
def test_default_route_egress(routes: list, expected: tuple[str, str]) -> None:
    assert default_route_egress(routes) == expected


def test_a_private_host_in_the_default_vpc_is_refused_naming_each_subnet() -> None:
    """The default VPC's subnets route to an internet gateway: a host without a public IP
    there cannot install Docker, pull, download or reach SSM (defect 2)."""
    with pytest.raises(ConfigError) as caught:
        deploy({"target": "aws", "public": "false"})
    message = str(caught.value)
    for subnet, zone in ((SUBNET_A, "us-east-1a"), (SUBNET_B, "us-east-1b")):
        assert (
            f"{subnet} ({zone}): a private host needs a 0.0.0.0/0 route through a NAT "
            "gateway" in message
        )
    assert message.count("(0.0.0.0/0 goes to igw-0main)") == 2
    assert (
        "Set localai:vpcId or localai:subnetId to a subnet that fits (a private subnet with a NAT route)."
        in message
    )


def test_a_private_host_goes_into_the_vpcs_subnet_with_a_nat_route() -> None:
    after = deploy({"target": "aws", "public": "false", "vpcId": "vpc-0def000000000000a"})
    assert after.one(INSTANCE).inputs["subnetId"] == PRIVATE_SUBNET


def test_a_public_host_in_a_nat_only_subnet_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=rf"{PRIVATE_SUBNET} \(us-east-1a\): a public host needs a 0.0.0.0/0 route to an internet gateway \(0.0.0.0/0 goes to",
    ):
        deploy({**AWS, "subnetId": PRIVATE_SUBNET})


def test_the_zone_must_offer_the_instance_type() -> None:
    """GPU and Graviton types are missing in some zones; the first subnet by id is in
    one of them here (defect 3)."""

    def only_b(mocks) -> None:
        mocks.offerings["g6.xlarge"] = ["us-east-1b"]

    placed = deploy({**AWS, "instanceType": "g6.xlarge"}, setup=only_b)
    assert placed.one(INSTANCE).inputs["subnetId"] == SUBNET_B
    assert placed.one(VOLUME).inputs["availabilityZone"] == "us-east-1b"


def test_no_zone_offering_the_type_is_a_clear_error() -> None:
    def nowhere(mocks) -> None:
        mocks.offerings["g6.xlarge"] = ["us-east-1f"]

    with pytest.raises(
        ConfigError, match=rf"{SUBNET_A} \(us-east-1a\): g6.xlarge is not offered in that zone"
    ):
        deploy({**AWS, "instanceType": "g6.xlarge"}, setup=nowhere)


def test_a_configured_subnet_in_a_zone_without_the_type_is_refused() -> None:
    def only_b(mocks) -> None:
        mocks.offerings["c7g.xlarge"] = ["us-east-1b"]

    with pytest.raises(
        ConfigError,
        match=rf"(?s){SUBNET_A} \(us-east-1a\): c7g.xlarge is not offered in that zone.*Set localai:subnetId to a subnet that fits",
    ):
        deploy({**AWS, "instanceType": "c7g.xlarge", "subnetId": SUBNET_A}, setup=only_b)


def test_the_host_stays_in_the_zone_of_its_weights_volume() -> None:
    """The volume attaches only in its zone, and its availabilityZone input replaces it:
    a host moved by a new subnet choice would leave the weights behind."""

    def deployed_in_b(mocks) -> None:
        mocks.deployed_volumes["vol-0deployed000000001"] = (20, "us-east-1b")

    placed = deploy(AWS, setup=deployed_in_b)
    assert placed.one(INSTANCE).inputs["subnetId"] == SUBNET_B
    assert placed.one(VOLUME).inputs["availabilityZone"] == "us-east-1b"


ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
PRIVATE = {"target": "aws", "public": "false", "subnetId": PRIVATE_SUBNET}


def test_vpc_endpoints_keep_ssm_and_logs_in_the_vpc() -> None:
    placed = deploy({**PRIVATE, "vpcEndpoints": "true"})
    endpoints = {r.name: r for r in placed.mocks.of_type(ENDPOINT)}
    assert sorted(endpoints) == [
        "localai-endpoint-ec2messages",
        "localai-endpoint-logs",
        "localai-endpoint-s3",
        "localai-endpoint-ssm",
        "localai-endpoint-ssmmessages",
    ]
    for service in ("ssm", "ssmmessages", "ec2messages", "logs"):
        inputs = endpoints[f"localai-endpoint-{service}"].inputs
        assert inputs["serviceName"] == f"com.amazonaws.us-east-1.{service}"
        assert inputs["vpcEndpointType"] == "Interface"
        assert inputs["subnetIds"] == [PRIVATE_SUBNET]
        assert inputs["privateDnsEnabled"] is True
    s3 = endpoints["localai-endpoint-s3"].inputs
    assert (s3["vpcEndpointType"], s3["routeTableIds"]) == ("Gateway", ["rtb-0private"])
    groups = {r.name: r for r in placed.mocks.of_type("aws:ec2/securityGroup:SecurityGroup")}
    ingress = groups["localai-endpoints-sg"].inputs["ingress"]
    assert [(r["fromPort"], r["toPort"], r["securityGroups"]) for r in ingress] == [
        (443, 443, ["sg-0123456789abcdef0"])
    ]
    instance = placed.one(INSTANCE)
    assert {e.urn for e in endpoints.values()} <= set(instance.dependencies), (
        "the first boot reaches SSM through the endpoints"
    )


def test_no_vpc_endpoints_unless_asked() -> None:
    assert deploy(PRIVATE).mocks.of_type(ENDPOINT) == []


NETWORK_LOOKUPS = (
    "aws:ebs/getEbsVolumes:getEbsVolumes",
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings",
    "aws:ec2/getSubnets:getSubnets",
    "aws:ec2/getSubnet:getSubnet",
    "aws:ec2/getRouteTables:getRouteTables",
    "aws:ec2/getRouteTable:getRouteTable",
)


def test_the_placement_asks_aws_exactly_this() -> None:
    """Every lookup before any resource, with its filters: the stack's weights volume by its
    tags (attached or detached), the zones of the type, the VPC's subnets in id order, each
    subnet's own route table, else the VPC's main one. A wrong filter name or value would
    find nothing (or another stack's volume) on AWS, where the mocks would still answer."""
    placed = deploy({"target": "aws", "public": "false", "vpcId": "vpc-0def000000000000a"})
    asked = [(t, a) for t, a in placed.mocks.calls if t in NETWORK_LOOKUPS]

    def own_table(subnet: str) -> tuple[str, dict]:
        return ("aws:ec2/getRouteTables:getRouteTables",
                {"filters": [{"name": "association.subnet-id", "values": [subnet]}]})  # fmt: skip

    main_table = ("aws:ec2/getRouteTables:getRouteTables",
                  {"vpcId": "vpc-0def000000000000a",
                   "filters": [{"name": "association.main", "values": ["true"]}]})  # fmt: skip
    assert asked == [
        ("aws:ebs/getEbsVolumes:getEbsVolumes", {"filters": [
            {"name": "tag:localai:stack", "values": ["localai-test"]},
            {"name": "tag:localai:role", "values": ["weights"]},
            {"name": "status", "values": ["in-use", "available"]},
        ]}),
        ("aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings",
         {"locationType": "availability-zone",
          "filters": [{"name": "instance-type", "values": ["c7a.xlarge"]}]}),
        ("aws:ec2/getSubnets:getSubnets",
         {"filters": [{"name": "vpc-id", "values": ["vpc-0def000000000000a"]}]}),
        ("aws:ec2/getSubnet:getSubnet", {"id": SUBNET_A}),
        own_table(SUBNET_A),
        main_table,
        ("aws:ec2/getRouteTable:getRouteTable", {"routeTableId": "rtb-0main"}),
        ("aws:ec2/getSubnet:getSubnet", {"id": SUBNET_B}),
        own_table(SUBNET_B),
        main_table,
        ("aws:ec2/getRouteTable:getRouteTable", {"routeTableId": "rtb-0main"}),
        ("aws:ec2/getSubnet:getSubnet", {"id": PRIVATE_SUBNET}),
        own_table(PRIVATE_SUBNET),
        ("aws:ec2/getRouteTable:getRouteTable", {"routeTableId": "rtb-0private"}),
    ]  # fmt: skip


def test_the_default_vpc_is_asked_for_its_default_subnets() -> None:
    placed = deploy(AWS)
    subnets = [a for t, a in placed.mocks.calls if t == "aws:ec2/getSubnets:getSubnets"]
    assert subnets == [{"filters": [
        {"name": "vpc-id", "values": ["vpc-0def000000000000a"]},
        {"name": "default-for-az", "values": ["true"]},
    ]}]  # fmt: skip
    assert [a for t, a in placed.mocks.calls if t == "aws:ec2/getVpc:getVpc"] == [{"default": True}]


def test_the_endpoint_resources_whole() -> None:
    placed = deploy({**PRIVATE, "vpcEndpoints": "true"})
    groups = {r.name: r for r in placed.mocks.of_type("aws:ec2/securityGroup:SecurityGroup")}
    endpoint_sg = groups["localai-endpoints-sg"].inputs
    assert endpoint_sg["description"] == "LocalAI VPC endpoints: HTTPS from the LocalAI host only"
    assert endpoint_sg["vpcId"] == "vpc-0def000000000000a"
    assert endpoint_sg["ingress"] == [{
        "protocol": "tcp", "fromPort": 443, "toPort": 443,
        "securityGroups": ["sg-0123456789abcdef0"], "description": "LocalAI host",
    }]  # fmt: skip
    assert endpoint_sg["tags"] == {"localai:stack": "localai-test"}
    for endpoint in placed.mocks.of_type(ENDPOINT):
        assert endpoint.inputs["vpcId"] == "vpc-0def000000000000a"
        assert endpoint.inputs["tags"] == {"localai:stack": "localai-test"}
        if endpoint.inputs["vpcEndpointType"] == "Interface":
            assert endpoint.inputs["securityGroupIds"] == ["sg-0123456789abcdef0"]
    host_sg = groups["localai-sg"].inputs
    assert host_sg["description"] == "LocalAI endpoint: API port from allowedCidrs only"
    assert host_sg["tags"] == {"localai:stack": "localai-test", "Name": "localai-test-endpoint"}
    assert host_sg["egress"] == [{
        "protocol": "-1", "fromPort": 0, "toPort": 0,
        "cidrBlocks": ["0.0.0.0/0"], "ipv6CidrBlocks": ["::/0"],
        "description": "image pulls, model downloads, SSM, CloudWatch",
    }]  # fmt: skip


# -- issue 22, second operator set: orders, messages, lookups and resources, each pinned --


def test_the_placement_values_are_immutable() -> None:
    import dataclasses

    from components.aws.network import DeployedVolume, FleetPlacement, Placement

    placement = Placement("subnet-1", "us-east-1a", "vpc-1")
    volume = DeployedVolume("vol-1", 20, "us-east-1a")
    fleet = FleetPlacement("vpc-1", "10.0.0.0/16", (placement,), (placement,), True, {})
    for value, field in ((placement, "subnet_id"), (volume, "size_gb"), (fleet, "vpc_id")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, "x")


def test_a_route_without_a_cidr_block_is_not_the_default_route() -> None:
    v6 = SimpleNamespace(ipv6_cidr_block="::/0", gateway_id="igw-v6")
    assert default_route_egress([v6]) == ("none", "no 0.0.0.0/0 route")


def test_subnets_are_tried_in_id_order_whatever_order_aws_lists_them_in() -> None:
    def reversed_listing(mocks) -> None:
        mocks.vpc_subnets["vpc-0def000000000000a"] = [SUBNET_B, SUBNET_A]

    placed = deploy(AWS, setup=reversed_listing)
    assert placed.one(INSTANCE).inputs["subnetId"] == SUBNET_A
    asked = [a["id"] for t, a in placed.mocks.calls if t == "aws:ec2/getSubnet:getSubnet"]
    assert asked[0] == SUBNET_A


def test_a_subnet_in_a_vpc_without_a_main_route_table_has_no_route() -> None:
    def no_main(mocks) -> None:
        mocks.main_route_table = None

    with pytest.raises(ConfigError) as caught:
        deploy({**AWS, "subnetId": SUBNET_A}, setup=no_main)
    assert str(caught.value) == (
        "localai configuration cannot be deployed: no subnet fits the host:\n"
        f"  - {SUBNET_A} (us-east-1a): a public host needs a 0.0.0.0/0 route to an internet "
        "gateway (no 0.0.0.0/0 route)\n"
        "  Set localai:subnetId to a subnet that fits."
    )


def test_the_no_subnet_message_whole_for_each_reason() -> None:
    def volume_in_c_and_nothing_in_a(mocks) -> None:
        mocks.deployed_volumes["vol-0deployed000000001"] = (20, "us-east-1c")

    with pytest.raises(ConfigError) as caught:
        deploy(AWS, setup=volume_in_c_and_nothing_in_a)
    assert str(caught.value) == (
        "localai configuration cannot be deployed: no subnet fits the host:\n"
        f"  - {SUBNET_A} (us-east-1a): the weights volume is in us-east-1c\n"
        f"  - {SUBNET_B} (us-east-1b): the weights volume is in us-east-1c\n"
        "  Set localai:vpcId or localai:subnetId to a subnet that fits."
    )

    def no_subnets(mocks) -> None:
        mocks.vpc_subnets["vpc-0def000000000000a"] = []

    with pytest.raises(ConfigError) as caught:
        deploy({"target": "aws", "public": "false"}, setup=no_subnets)
    assert str(caught.value) == (
        "localai configuration cannot be deployed: no subnet fits the host:\n"
        "  - no subnet found (create a default VPC, or set localai:subnetId)\n"
        "  Set localai:vpcId or localai:subnetId to a subnet that fits (a private subnet "
        "with a NAT route)."
    )

    def other_target(mocks) -> None:
        mocks.route_tables["rtb-0main"] = [{**mocks.route_tables["rtb-0main"][0],
                                            "gatewayId": "vgw-0vpn"}]  # fmt: skip

    with pytest.raises(ConfigError) as caught:
        deploy({**AWS, "subnetId": SUBNET_B}, setup=other_target)
    assert (
        f"  - {SUBNET_B} (us-east-1b): a public host needs a 0.0.0.0/0 route to an internet "
        "gateway (0.0.0.0/0 goes to vgw-0vpn)\n"
    ) in str(caught.value)


def test_the_largest_of_several_deployed_volumes_is_the_one_kept_and_each_is_looked_up() -> None:
    def two_volumes(mocks) -> None:
        mocks.deployed_volumes["vol-0zzzz000000000002"] = (40, "us-east-1b")
        mocks.deployed_volumes["vol-0aaaa000000000001"] = (20, "us-east-1a")

    placed = deploy(AWS, setup=two_volumes)
    looked_up = [a for t, a in placed.mocks.calls if t == "aws:ebs/getVolume:getVolume"]
    assert looked_up[:2] == [
        {"filters": [{"name": "volume-id", "values": ["vol-0aaaa000000000001"]}]},
        {"filters": [{"name": "volume-id", "values": ["vol-0zzzz000000000002"]}]},
    ]
    assert placed.one(VOLUME).inputs["availabilityZone"] == "us-east-1b"
    assert placed.one(INSTANCE).inputs["subnetId"] == SUBNET_B


def test_a_named_volume_is_looked_up_by_its_id() -> None:
    placed = deploy({**AWS, "weightsVolumeId": "vol-0123456789abcdef0"})
    looked_up = [a for t, a in placed.mocks.calls if t == "aws:ebs/getVolume:getVolume"]
    assert {"filters": [{"name": "volume-id", "values": ["vol-0123456789abcdef0"]}]} in looked_up


def test_the_host_security_group_ingress_and_vpc_whole() -> None:
    placed = deploy({**AWS, "sshKeyName": "k", "sshCidrs": '["198.51.100.7/32"]',
                     "vpcId": "vpc-0def000000000000a"})  # fmt: skip
    groups = {r.name: r for r in placed.mocks.of_type("aws:ec2/securityGroup:SecurityGroup")}
    host_sg = groups["localai-sg"].inputs
    assert host_sg["vpcId"] == "vpc-0def000000000000a"
    assert host_sg["ingress"] == [
        {"protocol": "tcp", "fromPort": 8080, "toPort": 8080, "cidrBlocks": ["203.0.113.0/24"],
         "description": "LocalAI API"},
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["198.51.100.7/32"],
         "description": "SSH (opted in)"},
    ]  # fmt: skip


# -- the weights volume's cooldown and zone, judged by network.py itself ------------------

from datetime import UTC, datetime, timedelta  # noqa: E402

from components.aws.network import DeployedVolume, volume_modified_at  # noqa: E402

NOW = datetime(2026, 12, 4, 12, 0, 30, 123456, tzinfo=UTC)
STAMP = "2026-12-04T07:00:00+00:00"  # five hours before NOW


def volume(size: int = 40, throughput: int | None = 250, stamp: str | None = STAMP):
    return DeployedVolume("vol-0deployed000000001", size, "us-east-1a", throughput, stamp)


def test_no_deployed_volume_has_no_modification_time() -> None:
    assert volume_modified_at(None, 40, 250, now=NOW) is None


@pytest.mark.parametrize(
    ("deployed", "size", "throughput"),
    [(volume(), 40, 250), (volume(throughput=None), 40, 500)],
    ids=["nothing changes", "unknown throughput is no change"],
)
def test_without_a_change_the_recorded_time_stays(deployed, size, throughput) -> None:
    assert volume_modified_at(deployed, size, throughput, now=NOW) == STAMP


def test_a_change_within_six_hours_is_refused_with_the_whole_story() -> None:
    with pytest.raises(ConfigError) as caught:
        volume_modified_at(volume(), 60, 500, now=NOW)
    assert str(caught.value) == (
        "localai configuration cannot be applied yet:\n  - localai:volumeSizeGb / "
        "localai:volumeThroughput: the weights volume vol-0deployed000000001 was modified at "
        "2026-12-04 07:00 UTC, and EBS accepts the next change 6 hours later: retry after "
        "2026-12-04 13:00 UTC (size 40 -> 60 GiB, throughput 250 -> 500 MiB/s)"
    )


@pytest.mark.parametrize(
    ("deployed", "size", "throughput"),
    [(volume(stamp="2026-12-04T06:00:30.123456+00:00"), 60, 250),  # exactly six hours
     (volume(stamp=None), 60, 250), (volume(stamp="not a time"), 60, 250),
     (volume(stamp="2026-12-04T00:00:00+00:00"), 40, 500)],
    ids=["six hours on the dot", "never modified", "unreadable stamp", "throughput only"],
)  # fmt: skip
def test_a_change_that_may_go_ahead_records_now_to_the_second(deployed, size, throughput) -> None:
    assert volume_modified_at(deployed, size, throughput, now=NOW) == "2026-12-04T12:00:30+00:00"


def test_a_change_a_moment_before_six_hours_is_refused() -> None:
    with pytest.raises(ConfigError, match="retry after 2026-12-04 13:00 UTC"):
        volume_modified_at(
            volume(stamp="2026-12-04T07:00:30.123457+00:00"), 60, 250, now=NOW + timedelta(hours=1)
        )


def test_a_named_volume_in_another_zone_than_the_subnet_is_refused_whole() -> None:
    def in_b(mocks) -> None:
        mocks.deployed_volumes["vol-0123456789abcdef0"] = (40, "us-east-1b")

    with pytest.raises(ConfigError) as caught:
        deploy({**AWS, "weightsVolumeId": "vol-0123456789abcdef0", "subnetId": SUBNET_A},
               setup=in_b)  # fmt: skip
    assert str(caught.value) == (
        "localai configuration is invalid:\n  - localai:weightsVolumeId = "
        f"'vol-0123456789abcdef0' is in us-east-1b but localai:subnetId {SUBNET_A} is in "
        "us-east-1a: an EBS volume attaches only within its availability zone. Pick a subnet "
        "in that zone, or unset localai:subnetId"
    )


# -- the fleet's subnets --------------------------------------------------------------------

FLEET = {
    "target": "aws", "allowedCidrs": '["203.0.113.0/24"]',
    "models": '["qwen2.5-0.5b-instruct"]',
}  # fmt: skip
SUBNET_D, SUBNET_E = "subnet-0dddd000000000000", "subnet-0eeee000000000000"


def fleet(**settings: object) -> dict[str, str]:
    import json

    return {**FLEET, "fleet": json.dumps({"instanceTypes": ["c7i.xlarge"], **settings})}


def test_fleet_subnets_in_several_vpcs_are_refused_naming_them_sorted() -> None:
    # Four VPCs: a set's own order would match the sorted one by chance in 1 of 24 runs.
    vpcs = {"vpc-0zzz000000000000a": SUBNET_D, "vpc-0mmm000000000000a": SUBNET_E,
            "vpc-0aaa000000000000a": "subnet-0ffff000000000000"}  # fmt: skip

    def other_vpcs(mocks) -> None:
        for vpc, subnet in vpcs.items():
            mocks.vpc_subnets[vpc] = [subnet]

    with pytest.raises(ConfigError) as caught:
        deploy(fleet(subnetIds=[SUBNET_A, *vpcs.values()]), setup=other_vpcs)
    assert str(caught.value) == (
        "localai configuration is invalid:\n  - localai:fleet.subnetIds are in several VPCs "
        "(vpc-0aaa000000000000a, vpc-0def000000000000a, vpc-0mmm000000000000a, "
        "vpc-0zzz000000000000a): list subnets of one VPC"
    )


def test_fleet_subnets_without_a_way_out_are_named_with_their_route() -> None:
    def no_route(mocks) -> None:
        mocks.subnet_route_tables[SUBNET_B] = "rtb-0isolated"
        mocks.route_tables["rtb-0isolated"] = []

    with pytest.raises(ConfigError) as caught:
        deploy(fleet(subnetIds=[SUBNET_A, SUBNET_B]), setup=no_route)
    assert str(caught.value) == (
        "localai configuration cannot be deployed: the fleet needs subnets in two zones:\n"
        f"  - {SUBNET_B} (us-east-1b): no way out for downloads and SSM (no 0.0.0.0/0 route)\n"
        "  - the instances can use 1 zone(s) and the load balancer 1 of the same zones; both "
        "need at least 2\n"
        "  Set localai:fleet.subnetIds (and loadBalancerSubnetIds) to subnets in two or more "
        "zones"
    )


def test_an_internet_facing_load_balancer_refuses_subnets_without_an_internet_gateway() -> None:
    with pytest.raises(ConfigError) as caught:
        deploy(fleet(loadBalancerSubnetIds=[PRIVATE_SUBNET, SUBNET_B]))
    assert (
        f"  - {PRIVATE_SUBNET} (us-east-1a): an internet-facing load balancer needs a "
        "0.0.0.0/0 route to an internet gateway (nat)\n"
    ) in str(caught.value)


def subnet_e_in_zone_a(mocks) -> None:
    """A second subnet in us-east-1a, routed to the internet gateway: a zone with two."""
    mocks.vpc_subnets["vpc-0def000000000000a"].append(SUBNET_E)


def test_the_load_balancer_takes_its_own_subnets_one_per_zone_and_the_instances_follow() -> None:
    from components.aws import network

    placed = deploy(
        fleet(loadBalancerSubnetIds=[SUBNET_E, SUBNET_B, SUBNET_A]), setup=subnet_e_in_zone_a
    )
    balancer = placed.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert balancer["subnets"] == [SUBNET_A, SUBNET_B]
    group = placed.one("aws:autoscaling/group:Group").inputs
    assert group["vpcZoneIdentifiers"] == [SUBNET_A, SUBNET_B]
    assert network.MIN_FLEET_ZONES == 2


def test_an_internal_load_balancer_takes_listed_subnets_whatever_their_route() -> None:
    placed = deploy(fleet(internal=True, loadBalancerSubnetIds=[PRIVATE_SUBNET, SUBNET_B]))
    balancer = placed.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert balancer["subnets"] == [PRIVATE_SUBNET, SUBNET_B]
    assert balancer["internal"] is True


def test_the_fleet_placement_zones_are_its_instance_subnets_zones() -> None:
    from components.aws.network import FleetPlacement, Placement

    a = Placement(SUBNET_A, "us-east-1a", "vpc-1")
    b = Placement(SUBNET_B, "us-east-1b", "vpc-1")
    assert FleetPlacement("vpc-1", "10.0.0.0/16", (b, a), (a,), False, {}).zones == (
        "us-east-1b", "us-east-1a",
    )  # fmt: skip


def test_now_is_an_aware_utc_time() -> None:
    from components.aws.network import utc_now

    before = datetime.now(UTC)
    now = utc_now()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)


def test_a_volume_change_is_recorded_in_the_volumes_modified_at_tag(monkeypatch) -> None:
    from components.aws import network

    monkeypatch.setattr(network, "utc_now", lambda: NOW)

    def deployed(mocks) -> None:
        mocks.deployed_volumes["vol-0deployed000000001"] = (40, "us-east-1a")

    placed = deploy({**AWS, "volumeSizeGb": "60"}, setup=deployed)
    assert placed.one(VOLUME).inputs["tags"]["localai:modified-at"] == "2026-12-04T12:00:30+00:00"


def test_a_named_volume_places_the_host_in_its_zone() -> None:
    def in_b(mocks) -> None:
        mocks.deployed_volumes["vol-0123456789abcdef0"] = (40, "us-east-1b")

    placed = deploy({**AWS, "weightsVolumeId": "vol-0123456789abcdef0"}, setup=in_b)
    assert placed.one(INSTANCE).inputs["subnetId"] == SUBNET_B


def test_the_s3_gateway_endpoint_is_s3s_gateway_service() -> None:
    placed = deploy({**PRIVATE, "vpcEndpoints": "true"})
    s3 = next(r for r in placed.mocks.of_type(ENDPOINT) if r.name == "localai-endpoint-s3")
    assert s3.inputs["serviceName"] == "com.amazonaws.us-east-1.s3"


def test_the_network_resources_are_the_hosts_children() -> None:
    placed = deploy({**PRIVATE, "vpcEndpoints": "true"})
    made = [
        *placed.mocks.of_type(ENDPOINT),
        *placed.mocks.of_type("aws:ec2/securityGroup:SecurityGroup"),
    ]
    assert len(made) == 7
    for resource in made:
        assert resource.parent.endswith("$localai:aws:Host::localai"), (
            resource.name,
            resource.parent,
        )


def test_the_fleet_takes_the_first_subnet_by_id_in_each_zone_whatever_the_listed_order() -> None:
    placed = deploy(fleet(subnetIds=[SUBNET_E, SUBNET_B, SUBNET_A]), setup=subnet_e_in_zone_a)
    group = placed.one("aws:autoscaling/group:Group").inputs
    assert group["vpcZoneIdentifiers"] == [SUBNET_A, SUBNET_B]


def test_fleet_refusals_name_the_subnets_in_id_order_whatever_the_listed_order() -> None:
    def isolated(mocks) -> None:
        mocks.vpc_subnets["vpc-0def000000000000a"].append(SUBNET_E)
        for subnet in (SUBNET_A, SUBNET_E):
            mocks.subnet_route_tables[subnet] = "rtb-0isolated"
        mocks.route_tables["rtb-0isolated"] = []

    with pytest.raises(ConfigError) as caught:
        deploy(fleet(subnetIds=[SUBNET_E, SUBNET_B, SUBNET_A]), setup=isolated)
    lines = str(caught.value).splitlines()
    assert lines[1:3] == [
        f"  - {SUBNET_A} (us-east-1a): no way out for downloads and SSM (no 0.0.0.0/0 route)",
        f"  - {SUBNET_E} (us-east-1a): no way out for downloads and SSM (no 0.0.0.0/0 route)",
    ]


def test_an_internet_facing_load_balancer_names_each_unfit_subnet_in_id_order_alone() -> None:
    def nat_everywhere(mocks) -> None:
        mocks.vpc_subnets["vpc-0def000000000000a"].append(SUBNET_E)
        mocks.subnet_route_tables[SUBNET_E] = "rtb-0private"

    with pytest.raises(ConfigError) as caught:
        deploy(fleet(loadBalancerSubnetIds=[SUBNET_E, PRIVATE_SUBNET, SUBNET_B]),
               setup=nat_everywhere)  # fmt: skip
    assert str(caught.value) == (
        "localai configuration cannot be deployed: the fleet needs subnets in two zones:\n"
        f"  - {PRIVATE_SUBNET} (us-east-1a): an internet-facing load balancer needs a "
        "0.0.0.0/0 route to an internet gateway (nat)\n"
        f"  - {SUBNET_E} (us-east-1a): an internet-facing load balancer needs a 0.0.0.0/0 "
        "route to an internet gateway (nat)\n"
        "  - the instances can use 1 zone(s) and the load balancer 1 of the same zones; both "
        "need at least 2\n"
        "  Set localai:fleet.subnetIds (and loadBalancerSubnetIds) to subnets in two or more "
        "zones"
    )


def test_a_fleet_in_another_vpc_takes_that_vpcs_range() -> None:
    other = "vpc-0other0000000000a"

    def other_vpc(mocks) -> None:
        mocks.vpc_subnets[other] = [SUBNET_D, SUBNET_E]
        mocks.vpc_cidrs[other] = "10.42.0.0/16"
        mocks.subnet_route_tables[SUBNET_D] = mocks.subnet_route_tables[SUBNET_E] = "rtb-0main"
        mocks.subnet_zones[SUBNET_D] = "us-east-1b"

    config = fleet(internal=True, subnetIds=[SUBNET_D, SUBNET_E])
    del config["allowedCidrs"]  # an internal load balancer admits its VPC by default
    placed = deploy(config, setup=other_vpc)
    asked = [a for t, a in placed.mocks.calls if t == "aws:ec2/getVpc:getVpc"]
    assert asked == [{"id": other}]
    rules = placed.mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert {r.inputs.get("cidrIpv4") for r in rules if r.name.startswith("localai-lb-in-")} == {
        "10.42.0.0/16"
    }


def test_the_fleet_placement_knows_which_types_each_zone_offers() -> None:
    from components.aws.network import choose_fleet_subnets
    from tests.support.pulumi_mocks import RecordingMocks, install_mocks

    mocks = RecordingMocks()
    mocks.offerings["g6.xlarge"] = ["us-east-1b", "us-east-1a"]
    mocks.offerings["g5.xlarge"] = ["us-east-1b"]
    install_mocks(mocks)
    placement = choose_fleet_subnets(
        instance_types=["g6.xlarge", "g5.xlarge"], subnet_ids=None,
        load_balancer_subnet_ids=None, vpc_id=None, internal=False,
    )  # fmt: skip
    assert list(placement.types_by_zone.items()) == [
        ("us-east-1a", ("g6.xlarge",)), ("us-east-1b", ("g6.xlarge", "g5.xlarge")),
    ]  # fmt: skip
    assert placement.vpc_cidr == "172.31.0.0/16" and placement.public_ips is True


# -- cosmic-ray's survivors: comparisons at their edges, loops that must go on --------------


def test_equal_sizes_made_apart_are_no_change_and_any_change_counts() -> None:
    big = volume(size=int("1000"), throughput=int("1000"))
    assert volume_modified_at(big, int("1000"), int("1000"), now=NOW) == STAMP
    for size, throughput in ((30, 250), (40, 125)):  # smaller size, lower throughput
        with pytest.raises(ConfigError, match="retry after 2026-12-04 13:00 UTC"):
            volume_modified_at(volume(), size, throughput, now=NOW)


def test_a_default_route_after_other_routes_is_found() -> None:
    routes = [route("10.0.0.0/8", nat_gateway_id="nat-1"), route(gateway_id="igw-1")]
    assert default_route_egress(routes) == ("igw", "igw-1")


def test_a_host_goes_on_to_the_next_subnet_when_the_first_does_not_fit() -> None:
    def first_is_private(mocks) -> None:
        mocks.subnet_route_tables[SUBNET_A] = "rtb-0private"

    placed = deploy({**AWS, "vpcId": "vpc-0def000000000000a"}, setup=first_is_private)
    assert placed.one(INSTANCE).inputs["subnetId"] == SUBNET_B


@pytest.mark.parametrize(
    ("volume_zone", "subnet"), [("us-east-1b", SUBNET_B), ("us-east-1a", SUBNET_A)]
)
def test_a_named_volume_and_a_subnet_in_its_zone_are_accepted(
    volume_zone: str, subnet: str
) -> None:
    def there(mocks) -> None:
        mocks.deployed_volumes["vol-0123456789abcdef0"] = (40, volume_zone)

    placed = deploy({**AWS, "weightsVolumeId": "vol-0123456789abcdef0", "subnetId": subnet},
                    setup=there)  # fmt: skip
    assert placed.one(INSTANCE).inputs["subnetId"] == subnet


def test_a_named_volume_in_a_zone_before_the_subnets_is_refused_too() -> None:
    def in_a(mocks) -> None:
        mocks.deployed_volumes["vol-0123456789abcdef0"] = (40, "us-east-1a")

    with pytest.raises(ConfigError, match="is in us-east-1a but localai:subnetId"):
        deploy({**AWS, "weightsVolumeId": "vol-0123456789abcdef0", "subnetId": SUBNET_B},
               setup=in_a)  # fmt: skip


SUBNET_F = "subnet-0ffff000000000000"


def nat_zones(count: int):
    """``count`` NAT subnets in zones a, b (and c): PRIVATE_SUBNET, SUBNET_D, SUBNET_F."""

    def setup(mocks) -> None:
        mocks.offerings["c7i.xlarge"] = ["us-east-1a", "us-east-1b", "us-east-1c"]
        for subnet, zone in ((SUBNET_D, "us-east-1b"), (SUBNET_F, "us-east-1c"))[: count - 1]:
            mocks.vpc_subnets["vpc-0def000000000000a"].append(subnet)
            mocks.subnet_route_tables[subnet] = "rtb-0private"
            mocks.subnet_zones[subnet] = zone

    return setup


@pytest.mark.parametrize("count", [2, 3])
def test_a_fleet_with_nat_in_two_or_more_zones_runs_there_without_public_ips(count: int) -> None:
    placed = deploy(
        {**fleet(internal=True), "vpcId": "vpc-0def000000000000a"}, setup=nat_zones(count)
    )
    group = placed.one("aws:autoscaling/group:Group").inputs
    assert group["vpcZoneIdentifiers"] == [PRIVATE_SUBNET, SUBNET_D, SUBNET_F][:count]
    template = placed.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["networkInterfaces"][0]["associatePublicIpAddress"] in (False, "false")


def test_three_zones_are_accepted_and_one_zone_on_either_side_is_not() -> None:
    three = fleet(internal=True, subnetIds=[PRIVATE_SUBNET, SUBNET_D, SUBNET_F])
    placed = deploy(three, setup=nat_zones(3))
    assert len(placed.one("aws:lb/loadBalancer:LoadBalancer").inputs["subnets"]) == 3
    with pytest.raises(ConfigError, match=r"the instances can use 1 zone\(s\) and the load "
                       r"balancer 2 of the same zones"):  # fmt: skip
        deploy(fleet(subnetIds=[SUBNET_A], loadBalancerSubnetIds=[SUBNET_A, SUBNET_B]))
    with pytest.raises(ConfigError, match=r"the instances can use 1 zone\(s\) and the load "
                       r"balancer 1 of the same zones"):  # fmt: skip
        deploy(fleet(loadBalancerSubnetIds=[SUBNET_A]))


def test_a_deployed_volume_in_an_earlier_zone_keeps_the_host_out_of_later_ones() -> None:
    def in_a(mocks) -> None:
        mocks.deployed_volumes["vol-0deployed000000001"] = (40, "us-east-1a")

    with pytest.raises(
        ConfigError, match=rf"{SUBNET_B} \(us-east-1b\): the weights volume is in us-east-1a"
    ):
        deploy({**AWS, "subnetId": SUBNET_B}, setup=in_a)


def test_a_private_host_in_a_subnet_with_no_route_is_refused() -> None:
    def isolated(mocks) -> None:
        mocks.subnet_route_tables[SUBNET_A] = "rtb-0isolated"
        mocks.route_tables["rtb-0isolated"] = []

    with pytest.raises(
        ConfigError,
        match=r"a private host needs a 0\.0\.0\.0/0 route through a NAT gateway.*\(no 0\.0\.0\.0/0 route\)",
    ):
        deploy({"target": "aws", "public": "false", "subnetId": SUBNET_A}, setup=isolated)


def test_a_change_within_six_hours_of_the_tagged_one_is_refused_on_deploy(monkeypatch) -> None:
    from components.aws import network

    monkeypatch.setattr(network, "utc_now", lambda: NOW)

    def tagged(mocks) -> None:
        mocks.deployed_volumes["vol-0deployed000000001"] = (40, "us-east-1a")
        mocks.deployed_volume_tags["vol-0deployed000000001"] = {"localai:modified-at": STAMP}

    with pytest.raises(ConfigError, match="was modified at 2026-12-04 07:00 UTC"):
        deploy({**AWS, "volumeSizeGb": "60"}, setup=tagged)


def test_fleet_subnets_in_exactly_two_vpcs_are_refused_and_none_at_all_is_no_vpc_problem() -> None:
    def other_vpc(mocks) -> None:
        mocks.vpc_subnets["vpc-0zzz000000000000a"] = [SUBNET_D]

    with pytest.raises(ConfigError, match=r"are in several VPCs \(vpc-0def000000000000a, vpc-0zzz"):
        deploy(fleet(subnetIds=[SUBNET_A, SUBNET_D]), setup=other_vpc)

    def empty(mocks) -> None:
        mocks.vpc_subnets["vpc-0def000000000000a"] = []

    with pytest.raises(ConfigError, match=r"the instances can use 0 zone\(s\)"):
        deploy(fleet(), setup=empty)
