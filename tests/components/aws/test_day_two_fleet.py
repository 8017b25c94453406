"""Day two on a fleet: each change a user makes to a deployed fleet, as a before/after pair
of program runs, and what the engine and the provider then do (issue 18, items 1-9).

What the provider does with a change is read in terraform-provider-aws,
internal/service/autoscaling/group.go: ``initial_lifecycle_hook`` is ForceNew (schema);
resourceGroupUpdate calls UpdateAutoScalingGroup (launch template, mixed-instances policy,
sizes), then starts an instance refresh when the launch template or the mixed-instances
policy changed, and handles the warm pool last.
"""

from __future__ import annotations

import json

import pulumi
import pytest

import components.aws.fleet as fleet_module
from components.errors import ConfigError
from tests.components.aws.day_two import deploy, reveal, touched
from tests.support.program_run import localai_keys
from tests.support.pulumi_mocks import FAKE_AMI, stack_config

GROUP = "aws:autoscaling/group:Group"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LISTENER = "aws:lb/listener:Listener"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
TARGETS = "aws:lb/targetGroup:TargetGroup"
PROD = localai_keys(stack_config("prod"))
GPU_TYPES = ["g6.xlarge", "g5.xlarge", "g4dn.xlarge"]
PLAIN_HTTP = {"instanceTypes": GPU_TYPES, "minSize": 1, "maxSize": 4}
TLS = {**PLAIN_HTTP, "domainName": "llm.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}
DLAMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
)


def fleet(**settings: object) -> dict[str, str]:
    return {**PROD, "fleet": json.dumps(settings)}


def listeners(deployment) -> dict[str, dict]:
    return {r.urn.rsplit("::", 1)[1]: r for r in deployment.mocks.of_type(LISTENER)}


def group_changes_outside_ignored(before, after) -> dict:
    """The group's changed inputs that the engine would act on (ignore_changes removed)."""
    old, new = before.one(GROUP), after.one(GROUP)
    assert old.urn == new.urn, "the group is never a new resource"
    ignored = set(new.ignore_changes)
    keys = (set(old.inputs) | set(new.inputs)) - ignored
    return {
        k: (old.inputs.get(k), new.inputs.get(k))
        for k in keys
        if reveal(old.inputs.get(k)) != reveal(new.inputs.get(k))
    }


@pytest.mark.parametrize(("first", "second"), [(PLAIN_HTTP, TLS), (TLS, PLAIN_HTTP)])
def test_tls_on_and_off_updates_the_port_80_listener_in_place(first, second) -> None:
    """Two logical names for the port-80 listener made the engine create the new one before
    deleting the old, and ELB answered DuplicateListener (item 2)."""
    before, after = deploy(fleet(**first)), deploy(fleet(**second))
    old, new = listeners(before)["localai-http"], listeners(after)["localai-http"]
    assert old.urn == new.urn
    assert old.inputs["port"] == new.inputs["port"] == 80
    kinds = {old.inputs["defaultActions"][0]["type"], new.inputs["defaultActions"][0]["type"]}
    assert kinds == {"forward", "redirect"}
    changes = touched(before, after)
    port_80 = [k for k in changes if k.startswith(LISTENER) and k.endswith("localai-http")]
    assert [changes[k] for k in port_80] == ["changed"]
    https = "created" if second is TLS else "deleted"
    assert changes[f"{LISTENER}::localai-https"] == https


def test_a_hook_change_updates_the_hook_resource_and_never_the_group(monkeypatch) -> None:
    """initial_lifecycle_hook is ForceNew and the group's name is fixed: a change there
    would try to create a second group of the same name (item 4)."""
    before = deploy(fleet(**PLAIN_HTTP))
    monkeypatch.setattr(fleet_module, "_HOOK", {**fleet_module._HOOK, "heartbeat_timeout": 1200})
    after = deploy(fleet(**PLAIN_HTTP))
    assert group_changes_outside_ignored(before, after) == {}
    assert "initialLifecycleHooks" in after.one(GROUP).ignore_changes
    old_hook, new_hook = before.one(HOOK), after.one(HOOK)
    assert old_hook.urn == new_hook.urn
    assert (old_hook.inputs["heartbeatTimeout"], new_hook.inputs["heartbeatTimeout"]) == (900, 1200)
    assert new_hook.inputs["name"] == after.one(GROUP).inputs["initialLifecycleHooks"][0]["name"]


@pytest.mark.parametrize(("min_healthy", "max_healthy"), [(0, 100), (50, 150), (100, 200)])
def test_min_healthy_percentage_keeps_max_within_100_points(min_healthy, max_healthy) -> None:
    """AWS refuses a refresh whose percentages are more than 100 apart (item 3)."""
    before = deploy(fleet(**PLAIN_HTTP))
    after = deploy(fleet(**PLAIN_HTTP, minHealthyPercentage=min_healthy))
    preferences = after.one(GROUP).inputs["instanceRefresh"]["preferences"]
    assert (preferences["minHealthyPercentage"], preferences["maxHealthyPercentage"]) == (
        min_healthy,
        max_healthy,
    )
    assert preferences["maxHealthyPercentage"] - preferences["minHealthyPercentage"] <= 100
    changed = group_changes_outside_ignored(before, after)
    assert set(changed) <= {"instanceRefresh"}


def deployed_group(types=(), warm_pool=False, port=8080, tags=None):
    def setup(mocks) -> None:
        mocks.deployed_groups["localai-prod"] = {
            "types": list(types),
            "warm_pool": warm_pool,
            "port": port,
            "tags": tags or {"Name": "localai-prod", "localai:stack": "localai-prod"},
        }

    return setup


def test_adding_types_to_a_warm_pool_fleet_is_refused_before_any_resource() -> None:
    """The provider sends the mixed-instances policy before it deletes the warm pool, and
    AWS refuses that policy beside a warm pool: it would fail half-way (item 6)."""
    with pytest.raises(ConfigError, match=r"has a warm pool.*First remove fleet\.warmPool"):
        deploy(
            fleet(**PLAIN_HTTP),
            setup=deployed_group(warm_pool=True),
            stack="prod",
        )


def test_removing_the_warm_pool_with_one_type_is_fine() -> None:
    one = {"instanceTypes": ["g6.xlarge"], "minSize": 1, "maxSize": 3}
    after = deploy(fleet(**one), setup=deployed_group(warm_pool=True), stack="prod")
    assert "warmPool" not in after.one(GROUP).inputs


def test_a_port_change_on_a_deployed_fleet_is_refused(monkeypatch) -> None:
    """The target group's port is ForceNew: its replacement health-checks the running
    instances on a port they do not serve, and ELB health checks replace all of them."""
    with pytest.raises(
        ConfigError, match=r"localai:port = 9090: the deployed fleet serves on 8080"
    ):
        deploy({**fleet(**PLAIN_HTTP), "port": "9090"}, setup=deployed_group(), stack="prod")
    same = deploy(fleet(**PLAIN_HTTP), setup=deployed_group(types=GPU_TYPES), stack="prod")
    assert same.one(TARGETS).inputs["port"] == 8080


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: said.append(message))
    return said


def test_reordering_types_says_at_preview_that_every_instance_is_replaced(warnings) -> None:
    reordered = {**PLAIN_HTTP, "instanceTypes": ["g5.xlarge", "g6.xlarge", "g4dn.xlarge"]}
    deploy(fleet(**reordered), setup=deployed_group(types=GPU_TYPES), stack="prod")
    assert any("instanceTypes changes from g6.xlarge, g5.xlarge" in w for w in warnings)
    warnings.clear()
    deploy(fleet(**PLAIN_HTTP), setup=deployed_group(types=GPU_TYPES), stack="prod")
    assert not any("replaces every instance" in w for w in warnings)


def test_changing_a_tag_says_at_preview_that_every_instance_is_replaced(warnings) -> None:
    before = deploy(fleet(**PLAIN_HTTP), stack="prod")
    after = deploy(
        {**fleet(**PLAIN_HTTP), "tags": '{"team": "search"}'},
        setup=deployed_group(types=GPU_TYPES),
        stack="prod",
    )
    assert any("localai:tags changes" in w for w in warnings)
    assert touched(before, after)[f"{TEMPLATE}::localai-launch-template"] == "changed"
    # The same user tags as deployed (read from the group): no warning.
    warnings.clear()
    deploy(
        {**fleet(**PLAIN_HTTP), "tags": '{"team": "search"}'},
        setup=deployed_group(
            types=GPU_TYPES,
            tags={"Name": "localai-prod", "localai:stack": "localai-prod", "team": "search"},
        ),
        stack="prod",
    )
    assert not any("localai:tags changes" in w for w in warnings), warnings


def test_a_key_rotation_leaves_the_template_and_group_alone() -> None:
    before = deploy(fleet(**PLAIN_HTTP), secret_keys=("apiKey",))
    after = deploy(
        {**fleet(**PLAIN_HTTP), "apiKey": "another-key-0123456789"}, secret_keys=("apiKey",)
    )
    changes = touched(before, after)
    assert f"{TEMPLATE}::localai-launch-template" not in changes
    assert f"{GROUP}::localai-group" not in changes


def test_a_new_ami_release_keeps_the_fleets_ami(monkeypatch) -> None:
    """The template followed the SSM parameter on every `pulumi up`, rolling the fleet on an
    unrelated change (item 7): the AMI is now ignored after creation unless pinned."""
    before = deploy(fleet(**PLAIN_HTTP))
    monkeypatch.setitem(FAKE_AMI, DLAMI_PARAMETER, "ami-0dlaminvidia000002")

    def released(mocks) -> None:
        mocks.extra_amis["ami-0dlaminvidia000002"] = ("x86_64", 75)

    after = deploy(fleet(**PLAIN_HTTP), setup=released)
    old, new = before.one(TEMPLATE), after.one(TEMPLATE)
    assert old.urn == new.urn
    assert new.inputs["imageId"] == "ami-0dlaminvidia000002"  # what a new template would get
    assert new.ignore_changes == ("imageId",), "the engine keeps the deployed template's AMI"
    assert set(touched(before, after)) == set(), "nothing else changes: no roll"


def test_a_change_of_family_is_a_new_template_with_that_familys_ami() -> None:
    before = deploy(fleet(**PLAIN_HTTP))
    cpu = {"instanceTypes": ["c7i.2xlarge", "c7a.2xlarge"], "minSize": 1, "maxSize": 3}
    after = deploy({**fleet(**cpu), "accelerator": "cpu", "models": '["phi-3.5-mini-instruct"]'})
    old, new = before.one(TEMPLATE), after.one(TEMPLATE)
    assert old.urn != new.urn
    assert new.urn.endswith("localai-launch-template-ubuntu-24.04-amd64")
    assert (
        new.inputs["imageId"]
        == FAKE_AMI[
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
        ]
    )
    assert after.result.outputs["amiId"] == new.inputs["imageId"]


def test_a_pinned_ami_is_not_ignored() -> None:
    pinned = "ami-0fedcba9876543210"

    def known(mocks) -> None:
        mocks.extra_amis[pinned] = ("x86_64", 75)

    after = deploy({**fleet(**PLAIN_HTTP), "amiId": pinned}, setup=known)
    template = after.one(TEMPLATE)
    assert template.inputs["imageId"] == pinned
    assert template.ignore_changes == ()
