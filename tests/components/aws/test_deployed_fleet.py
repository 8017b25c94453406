"""components/aws/deployed_fleet.py: the checks of a change against the deployed group
(the invokes that read it are covered under the mocks in test_day_two_fleet.py)."""

from __future__ import annotations

import dataclasses

import pytest

from components.aws.deployed_fleet import DeployedFleet, check_fleet_change
from components.errors import ConfigError

OWN = {"Name": "localai-prod", "localai:stack": "localai-prod"}


def deployed(**changes: object) -> DeployedFleet:
    base = DeployedFleet(instance_types=("g6.xlarge",), warm_pool=False, ports=(8080,))
    return dataclasses.replace(base, **changes)


def check(fleet: DeployedFleet | None, types=("g6.xlarge",), port=8080, tags=None) -> list[str]:
    return check_fleet_change(fleet, instance_types=list(types), port=port, tags=tags or {})


def test_a_deployed_fleet_is_a_frozen_record_whose_tags_default_to_none() -> None:
    fleet = DeployedFleet(instance_types=(), warm_pool=False, ports=())
    assert fleet.tags == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        fleet.warm_pool = True  # type: ignore[misc]


def test_nothing_deployed_nothing_to_check() -> None:
    assert check(None, types=("a.large", "b.large"), port=1) == []


def test_a_warm_pool_refuses_a_second_type_and_not_the_one_it_has() -> None:
    assert check(deployed(warm_pool=True)) == []
    with pytest.raises(ConfigError) as refused:
        check(deployed(warm_pool=True), types=("g6.xlarge", "g5.xlarge"))
    assert str(refused.value) == (
        "localai configuration cannot be applied in one step:\n  - localai:fleet.instanceTypes: "
        "the deployed fleet has a warm pool, which AWS refuses beside several instance types "
        "(g6.xlarge, g5.xlarge). First remove fleet.warmPool and run `pulumi up` with the one "
        "type the fleet has, then add the other types"
    )
    assert check(deployed(), types=("g6.xlarge", "g5.xlarge"), tags={})  # no pool: a warning


def test_a_port_the_target_groups_do_not_serve_is_refused_naming_the_first() -> None:
    assert check(deployed(ports=(8080, 9090)), port=9090) == []
    assert check(deployed(ports=()), port=7000) == []  # no target group read: nothing to keep
    with pytest.raises(ConfigError) as refused:
        check(deployed(ports=(8080, 9090)), port=7000)
    message = str(refused.value)
    assert message.startswith(
        "localai configuration is invalid:\n  - localai:port = 7000: the deployed fleet "
        "serves on 8080, 9090. A target group's port cannot change in place"
    )
    assert message.endswith("(they use the load balancer's 443/80): keep localai:port 8080")


@pytest.mark.parametrize(
    ("before", "after"),
    [(("g5.xlarge", "g6.xlarge"), ("g6.xlarge", "g5.xlarge")),
     (("g6.xlarge", "g5.xlarge"), ("g5.xlarge", "g6.xlarge")),
     (("g6.xlarge",), ("g6.xlarge", "g5.xlarge"))],
)  # fmt: skip
def test_any_change_of_the_types_warns_that_every_instance_is_replaced(before, after) -> None:
    assert check(deployed(instance_types=before), types=after) == [
        f"fleet.instanceTypes changes from {', '.join(before)} to {', '.join(after)}: the "
        "instance refresh replaces every instance, one batch at a time (minHealthyPercentage)"
    ]
    assert check(deployed(instance_types=before), types=before) == []
    assert check(deployed(instance_types=()), types=after) == []  # a single-type group


def test_only_the_users_tags_count_as_a_tag_change() -> None:
    fleet = deployed(tags={**OWN, "team": "search"})
    assert check(fleet, tags={"team": "search"}) == []
    assert check(fleet, tags={"team": "search", "Name": "other", "localai:stack": "x"}) == []
    assert check(fleet, tags={"team": "ads"}) == [
        "localai:tags changes: instances and their volumes carry the tags from the launch "
        "template, so its new version starts an instance refresh that replaces every "
        "instance, one batch at a time (minHealthyPercentage)"
    ]
    assert len(check(deployed(tags=OWN), tags={"team": "search"})) == 1
