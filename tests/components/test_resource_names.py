"""Type tokens and logical names are part of every deployed stack's state.

A stack deployed by an earlier version must see no replacement because code moved or a
child was renamed: the URN (type chain + logical name) of every resource each shipped
stack declares is pinned in ``deployed_urns.json``, recorded from the code as it was
deployed. A deliberate rename updates that file in the same commit and adds a
``pulumi.Alias`` so existing stacks keep their resources, except where the new name is
there to make the engine create a new resource: the instance of an image family other
than Ubuntu amd64 is ``<name>-instance-<family>`` (components/aws/launch.py,
HostImage.instance_name), so GPU and Graviton hosts deployed before are replaced once.

Regenerate (only for a deliberate change): ``LOCALAI_RECORD_URNS=1 pytest`` on this file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.program_run import NO_GPU_DAEMON, NVIDIA_DAEMON, localai_keys, run_program
from tests.support.pulumi_mocks import PRIVATE_SUBNET, RecordingMocks, stack_config

GOLDEN = Path(__file__).with_name("deployed_urns.json")

VARIANTS: dict[str, tuple[str, dict[str, str], object]] = {
    "local": ("local", {}, NO_GPU_DAEMON),
    "local-nvidia": ("local", {}, NVIDIA_DAEMON),
    "dev": ("dev", {}, NO_GPU_DAEMON),
    "dev-private": ("dev", {"public": "false", "subnetId": PRIVATE_SUBNET}, NO_GPU_DAEMON),
    "dev-kept-volume": ("dev", {"weightsVolumeId": "vol-0123456789abcdef0"}, NO_GPU_DAEMON),
    "gpu": ("gpu", {}, NO_GPU_DAEMON),
    "dev-graviton": ("dev", {"instanceType": "c7g.xlarge"}, NO_GPU_DAEMON),
    "prod": ("prod", {}, NO_GPU_DAEMON),
    "prod-http-warm-pool": (
        "prod",
        {
            "fleet": '{"instanceTypes": ["g6.xlarge"], "minSize": 1, "maxSize": 3, '
            '"warmPool": {"minSize": 1}}'
        },
        NO_GPU_DAEMON,
    ),
}


def _relative_urn(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<type chain>::<name>; the stack is the test's own.
    return urn.split("::", 2)[2]


def _declared_urns(mocks: RecordingMocks, variant: str) -> list[str]:
    stack, overrides, daemon = VARIANTS[variant]
    config = {**localai_keys(stack_config(stack)), **overrides}
    run_program(config, stack=stack, daemon=daemon)
    urns = [r.urn for r in mocks.resources]
    assert all(urns), "every registration must have resolved its URN"
    return sorted(_relative_urn(u) for u in urns)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_deployed_resources_keep_their_type_and_name(
    variant: str, pulumi_mocks: RecordingMocks
) -> None:
    urns = _declared_urns(pulumi_mocks, variant)
    if os.environ.get("LOCALAI_RECORD_URNS"):
        recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        recorded[variant] = urns
        GOLDEN.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
        return
    pinned = json.loads(GOLDEN.read_text())[variant]
    assert set(urns) - set(pinned) == set() and set(pinned) - set(urns) == set(), (
        f"{variant}: URNs changed (a deployed stack would replace these).\n"
        f"  new:  {sorted(set(urns) - set(pinned))}\n"
        f"  gone: {sorted(set(pinned) - set(urns))}"
    )


def test_the_pinned_urns_name_both_component_types() -> None:
    pinned = json.loads(GOLDEN.read_text())
    assert "pulumi:pulumi:Stack$localai:docker:LocalTarget::localai" in pinned["local"]
    assert "pulumi:pulumi:Stack$localai:aws:Host::localai" in pinned["dev"]
    assert "localai:aws:Host$localai:aws:HostIdentity::localai-identity" in pinned["dev"]
    assert "localai:aws:Host$aws:ec2/instance:Instance::localai-instance" in pinned["dev"]


RENAMED_WITH_ALIAS = {
    # TLS on/off keeps one port-80 listener (issue 18, item 2): stacks deployed with TLS
    # knew it as -http-redirect, and its alias carries that state over.
    "prod": {
        "localai:aws:Fleet$aws:lb/listener:Listener::localai-http-redirect": (
            "localai:aws:Fleet$aws:lb/listener:Listener::localai-http"
        ),
    },
}


@pytest.mark.parametrize("variant", sorted(RENAMED_WITH_ALIAS))
def test_a_renamed_resource_carries_its_old_name_as_an_alias(
    variant: str, pulumi_mocks: RecordingMocks
) -> None:
    stack, overrides, daemon = VARIANTS[variant]
    run_program({**localai_keys(stack_config(stack)), **overrides}, stack=stack, daemon=daemon)
    by_urn = {_relative_urn(r.urn): r for r in pulumi_mocks.resources}
    for old, new in RENAMED_WITH_ALIAS[variant].items():
        assert old not in by_urn
        old_name = old.rsplit("::", 1)[1]
        assert old_name in by_urn[new].alias_names, f"{new} must alias {old_name}"
