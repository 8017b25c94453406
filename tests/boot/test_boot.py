"""The rendered user data booted under a real systemd and cloud-init (issue 18, items 11, 12
and 14): what only a boot shows. Slow (a cached Debian root, one boot each); part of CI.

No Docker and no weights here: these boots check the order of units, what cloud-init
reports and what a fleet host does when its profile step fails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components.aws.bootstrap.cloud_init import render_user_data
from tests.boot import ec2_standin
from tests.boot.machine import Machine
from tests.components.aws.bootstrap.cloud_init_support import fleet_spec, make_spec

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture
def machine(booted_root: Path, tmp_path: Path, machines: list[Machine]) -> Callable[..., Machine]:
    def boot(user_data: str) -> Machine:
        booted = Machine(
            tmp_path / f"m{len(machines)}", user_data, stubs={"aws": ec2_standin.STUB_AWS}
        )
        machines.append(booted)
        booted.boot()
        return booted

    return boot


def active(m: Machine, unit: str) -> str:
    return m.run("systemctl", "is-active", unit).stdout.strip()


def cloud_init_status(m: Machine) -> str:
    return m.run("cloud-init", "status").stdout.strip()


def test_a_host_reaches_multi_user_while_the_warm_up_waits_and_reports_a_failed_step(machine):
    """The warm-up (a oneshot that waits up to hours for the weights) held multi-user.target
    and cloud-final (item 11); a failed runcmd step left `cloud-init status` at done (14).
    Here the weights volume never appears, so the volume step fails and LocalAI never
    listens: the warm-up keeps waiting."""
    spec = make_spec(gpu=True, volume_wait_s=3, log_group="")
    m = machine(render_user_data(spec))
    m.wait_until(
        lambda: cloud_init_status(m) in ("status: done", "status: error"),
        timeout_s=300,
        what="cloud-init's final stage",
    )
    assert cloud_init_status(m) == "status: error", "the volume step failed"
    # The warm-up has not run: its start job waits for localai.service, which cannot start
    # without its volume (on a real host it waits for the port, for hours if need be).
    m.wait_until(
        lambda: (
            "localai-warmup.service" in m.run("systemctl", "list-jobs").stdout
            and active(m, "cloud-final.service") == "failed"
        ),
        timeout_s=120,
        what="the warm-up's start job",
    )
    assert active(m, "multi-user.target") == "active", "reached while the warm-up waits"


def test_a_fleet_host_whose_profile_fails_abandons_its_launch_at_once(machine):
    """No IMDS and no EBS disk: the profile step fails. The host used to wait out the hook's
    900 s timeout while localai.service restarted in a loop (item 12)."""
    m = machine(render_user_data(fleet_spec(volume_wait_s=3)))
    m.wait_until(
        lambda: "ABANDON" in m.run("cat", "/var/log/aws-calls").stdout,
        timeout_s=300,
        what="the lifecycle hook's ABANDON",
    )
    calls = m.run("cat", "/var/log/aws-calls").stdout
    assert "autoscaling complete-lifecycle-action --lifecycle-action-result ABANDON" in calls
    shown = m.run(
        "systemctl", "show", "localai.service", "-p", "ConditionResult", "-p", "NRestarts"
    ).stdout
    assert "ConditionResult=no" in shown and "NRestarts=0" in shown, shown
