"""components/readiness/rollout.py against the EC2 Auto Scaling API as botocore's Stubber
plays it (the cloud API is the only thing stood in for): a refresh that completes, fails,
or keeps abandoning new instances (issue 18, item 8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from components.readiness.rollout import Clock, RolloutFailed, wait_for_rollout

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
GROUP = "localai-prod"


class FakeClock(Clock):
    def __init__(self) -> None:
        self.at = T0
        super().__init__(now=lambda: self.at, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def client_with(*responses: tuple[str, dict, dict]):
    client = boto3.client(
        "autoscaling", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    for operation, response, expected in responses:
        stubber.add_response(operation, response, expected)
    stubber.activate()
    return client, stubber


def refreshes(status: str, percent: int = 0, started: datetime = T0, reason: str = "") -> tuple:
    refresh = {
        "InstanceRefreshId": "0f1e2d3c-refresh",
        "AutoScalingGroupName": GROUP,
        "Status": status,
        "StartTime": started,
        "PercentageComplete": percent,
    }
    if reason:
        refresh["StatusReason"] = reason
    return ("describe_instance_refreshes", {"InstanceRefreshes": [refresh]},
            {"AutoScalingGroupName": GROUP})  # fmt: skip


def activities(*launches: tuple[str, str]) -> tuple:
    items = [
        {
            "ActivityId": f"a{i}",
            "AutoScalingGroupName": GROUP,
            "Cause": "instance refresh",
            "StartTime": T0 + timedelta(minutes=i + 1),
            "StatusCode": code,
            "Description": "Launching a new EC2 instance: i-0123",
            "StatusMessage": message,
        }
        for i, (code, message) in enumerate(launches)
    ]
    return ("describe_scaling_activities", {"Activities": items},
            {"AutoScalingGroupName": GROUP, "MaxRecords": 50})  # fmt: skip


def test_a_refresh_that_completes_is_waited_for() -> None:
    client, stubber = client_with(
        refreshes("InProgress", 40), activities(), refreshes("Successful", 100)
    )
    said: list[str] = []
    result = wait_for_rollout(client, GROUP, timeout_s=600, clock=FakeClock(), out=said.append)
    assert result == f"{GROUP}: instance refresh 0f1e2d3c-refresh completed"
    assert said == [f"{GROUP}: instance refresh InProgress, 40% done"]
    stubber.assert_no_pending_responses()


def test_no_recent_refresh_means_nothing_to_wait_for() -> None:
    old = T0 - timedelta(hours=3)
    client, _ = client_with(refreshes("Failed", started=old))
    assert wait_for_rollout(client, GROUP, timeout_s=600, clock=FakeClock()).endswith(
        "no instance refresh to wait for"
    )


def test_a_failed_refresh_fails_the_update_with_its_reason() -> None:
    client, _ = client_with(refreshes("Failed", reason="Instances failed health checks"))
    with pytest.raises(
        RolloutFailed,
        match=r"ended Failed: Instances failed health checks.*aws logs tail /localai/prod",
    ):
        wait_for_rollout(client, GROUP, timeout_s=600, clock=FakeClock(), log_group="/localai/prod")


def test_instances_abandoned_twice_cancel_the_refresh_with_the_hooks_reason() -> None:
    """`pulumi up` reported success while the refresh looped on ABANDON (item 8)."""
    abandon = "Instance failed to complete user's Lifecycle Action: Lifecycle Action Completed with ABANDON Result"
    client, stubber = client_with(
        refreshes("InProgress", 0),
        activities(("Cancelled", abandon)),
        refreshes("InProgress", 0),
        activities(("Cancelled", abandon), ("Cancelled", abandon)),
        ("cancel_instance_refresh", {"InstanceRefreshId": "0f1e2d3c-refresh"},
         {"AutoScalingGroupName": GROUP}),
    )  # fmt: skip
    with pytest.raises(
        RolloutFailed,
        match=r"2 new instances of this version failed their launch \(the last: Instance failed to complete user's Lifecycle Action.*ABANDON Result\); the instance refresh was cancelled",
    ):
        wait_for_rollout(client, GROUP, timeout_s=3600, clock=FakeClock())
    stubber.assert_no_pending_responses()


def test_a_refresh_still_running_at_the_timeout_fails() -> None:
    client, _ = client_with(
        refreshes("InProgress", 10), activities(), refreshes("InProgress", 20), activities()
    )
    with pytest.raises(RolloutFailed, match=r"still InProgress \(20% done\) after 10s"):
        wait_for_rollout(client, GROUP, timeout_s=10, poll_s=15, clock=FakeClock())
