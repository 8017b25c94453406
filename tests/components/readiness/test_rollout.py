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


@pytest.mark.parametrize(
    "status", ["Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed", "Baseline"]
)
def test_every_terminal_state_but_success_fails_the_update(status: str) -> None:
    client, _ = client_with(refreshes(status))
    with pytest.raises(RolloutFailed, match=rf"ended {status}: no reason given$"):
        wait_for_rollout(client, GROUP, timeout_s=600, clock=FakeClock())


def test_the_newest_recent_refresh_is_the_one_waited_for() -> None:
    """A refresh started up to 15 minutes before the wait counts; the newest one decides."""
    older = {"InstanceRefreshId": "old", "AutoScalingGroupName": GROUP, "Status": "Failed",
             "StartTime": T0 - timedelta(minutes=15), "PercentageComplete": 0}  # fmt: skip
    newer = {"InstanceRefreshId": "new", "AutoScalingGroupName": GROUP, "Status": "Successful",
             "StartTime": T0 - timedelta(minutes=1), "PercentageComplete": 100}  # fmt: skip
    for listed in ([older, newer], [newer, older]):
        describe = ("describe_instance_refreshes", {"InstanceRefreshes": listed},
                    {"AutoScalingGroupName": GROUP})  # fmt: skip
        client, _ = client_with(describe)
        assert wait_for_rollout(client, GROUP, timeout_s=60, clock=FakeClock()) == (
            f"{GROUP}: instance refresh new completed"
        )
    # Exactly 15 minutes before the wait: still this update's refresh.
    client, _ = client_with(refreshes("Failed", started=T0 - timedelta(minutes=15)))
    with pytest.raises(RolloutFailed):
        wait_for_rollout(client, GROUP, timeout_s=60, clock=FakeClock())
    # A second more: an older one, nothing to wait for.
    client, _ = client_with(refreshes("Failed", started=T0 - timedelta(minutes=15, seconds=1)))
    assert wait_for_rollout(client, GROUP, timeout_s=60, clock=FakeClock()) == (
        f"{GROUP}: no instance refresh to wait for"
    )


def test_the_timeout_is_met_at_its_second_with_the_default_poll() -> None:
    """15 s polls: the check at 15 s of a 15 s timeout fails the wait (no third call);
    a refresh that reports no percentage is 0% done; no log group, no log hint."""
    refresh = {"InstanceRefreshId": "r", "AutoScalingGroupName": GROUP, "Status": "Pending",
               "StartTime": T0}  # fmt: skip
    describe = ("describe_instance_refreshes", {"InstanceRefreshes": [refresh]},
                {"AutoScalingGroupName": GROUP})  # fmt: skip
    client, stubber = client_with(describe, activities(), describe, activities())
    clock = FakeClock()
    said: list[str] = []
    with pytest.raises(RolloutFailed) as failed:
        wait_for_rollout(client, GROUP, timeout_s=15, clock=clock, out=said.append)
    assert str(failed.value) == f"{GROUP}: instance refresh r still Pending (0% done) after 15s"
    assert clock.at == T0 + timedelta(seconds=15)
    assert said == [f"{GROUP}: instance refresh Pending, 0% done"]
    stubber.assert_no_pending_responses()


def activity(minutes: int, code: str = "Cancelled", **fields: str) -> dict:
    return {"StartTime": T0 + timedelta(minutes=minutes), "StatusCode": code,
            "Description": "Launching a new EC2 instance: i-1", **fields}  # fmt: skip


def test_only_failed_launches_since_the_refresh_began_count_as_abandoned() -> None:
    from components.readiness.rollout import _abandoned

    listed = [
        activity(-1, StatusMessage="before the refresh"),
        activity(0, StatusMessage="at its start"),
        activity(1, "Successful", StatusMessage="in service"),
        activity(2, "InProgress", StatusMessage="still launching"),
        activity(3, Description="Terminating EC2 instance: i-2", StatusMessage="a termination"),
        activity(4, "Failed"),  # no StatusMessage: the description says what it was
        {"StatusCode": "Failed", "Description": "Launching", "StatusMessage": "no start time"},
        activity(5, StatusMessage="the last"),
    ]
    assert _abandoned(listed, T0) == [
        "at its start",
        "Launching a new EC2 instance: i-1",
        "the last",
    ]
    # Nothing but a launch counts, whatever its code (a description without one is none).
    assert _abandoned([{"StartTime": T0, "StatusCode": "Failed"}], T0) == []


def test_the_cancel_names_the_newest_abandoned_launch() -> None:
    """The API lists activities newest first: the first reason is the last launch's."""
    client, _ = client_with(
        refreshes("InProgress", 0),
        ("describe_scaling_activities",
         {"Activities": [
             {"ActivityId": "a2", "AutoScalingGroupName": GROUP, "Cause": "c",
              "StartTime": T0 + timedelta(minutes=2), "StatusCode": "Cancelled",
              "Description": "Launching a new EC2 instance: i-2", "StatusMessage": "newest"},
             {"ActivityId": "a1", "AutoScalingGroupName": GROUP, "Cause": "c",
              "StartTime": T0 + timedelta(minutes=1), "StatusCode": "Failed",
              "Description": "Launching a new EC2 instance: i-1", "StatusMessage": "oldest"},
         ]},
         {"AutoScalingGroupName": GROUP, "MaxRecords": 50}),
        ("cancel_instance_refresh", {"InstanceRefreshId": "0f1e2d3c-refresh"},
         {"AutoScalingGroupName": GROUP}),
    )  # fmt: skip
    with pytest.raises(RolloutFailed) as failed:
        wait_for_rollout(client, GROUP, timeout_s=600, clock=FakeClock())
    assert str(failed.value) == (
        f"{GROUP}: 2 new instances of this version failed their launch (the last: newest); "
        "the instance refresh was cancelled, and the instances of the previous version keep "
        "serving"
    )


def test_one_abandoned_launch_is_not_yet_a_reason_to_cancel() -> None:
    client, stubber = client_with(
        refreshes("InProgress", 50), activities(("Cancelled", "bad luck")),
        refreshes("Successful", 100),
    )  # fmt: skip
    assert wait_for_rollout(client, GROUP, timeout_s=600, clock=FakeClock()).endswith("completed")
    stubber.assert_no_pending_responses()


def test_the_real_clock_is_utc_now() -> None:
    now = Clock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


# --- the command line: python -m components.readiness.rollout ---------------------------


@pytest.fixture
def boto_client(monkeypatch: pytest.MonkeyPatch):
    """Make boto3.client() return a Stubber-played client with these responses; the
    arguments it was called with are kept."""
    made: list[tuple[str, str]] = []

    def install(*responses: tuple[str, dict, dict]) -> None:
        client, _ = client_with(*responses)

        def make(service: str, region_name: str):
            made.append((service, region_name))
            return client

        monkeypatch.setattr(boto3, "client", make)

    return install, made


def test_the_command_prints_the_result_and_exits_zero(boto_client, capsys) -> None:
    from components.readiness.rollout import main

    install, made = boto_client
    install(refreshes("Successful", 100, started=datetime.now(UTC)))  # the real clock
    code = main(["--group", GROUP, "--region", "eu-west-1", "--timeout", "60.5"])
    assert code == 0
    assert made == [("autoscaling", "eu-west-1")]
    assert capsys.readouterr().out == f"{GROUP}: instance refresh 0f1e2d3c-refresh completed\n"


def test_the_command_reports_a_failed_rollout_on_stderr_and_exits_one(boto_client, capsys):
    from components.readiness.rollout import main

    install, _ = boto_client
    # The command runs on the real clock: a 0 s timeout fails at the first check.
    install(refreshes("InProgress", 10, started=datetime.now(UTC)), activities())
    code = main(["--group", GROUP, "--region", "eu-west-1", "--timeout", "0.0",
                 "--log-group", "/localai/prod"])  # fmt: skip
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"localai: the fleet's rollout did not complete: {GROUP}: instance refresh "
        "0f1e2d3c-refresh still InProgress (10% done) after 0s (the hosts' log: aws logs "
        "tail /localai/prod --follow)\n"
    )


@pytest.mark.parametrize("missing", ["--group", "--region", "--timeout"])
def test_the_command_requires_each_argument(missing: str, boto_client, capsys) -> None:
    from components.readiness.rollout import main

    argv = {"--group": GROUP, "--region": "eu-west-1", "--timeout": "60"}
    del argv[missing]
    with pytest.raises(SystemExit) as exited:
        main([item for pair in argv.items() for item in pair])
    assert exited.value.code == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_the_module_runs_as_a_command() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "components.readiness.rollout"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m components.readiness.rollout ")


def test_three_abandoned_launches_at_once_cancel_too() -> None:
    abandon = ("Cancelled", "ABANDON")
    client, stubber = client_with(
        refreshes("InProgress", 0),
        activities(abandon, abandon, abandon),
        ("cancel_instance_refresh", {"InstanceRefreshId": "0f1e2d3c-refresh"},
         {"AutoScalingGroupName": GROUP}),
    )  # fmt: skip
    with pytest.raises(RolloutFailed, match=r"^localai-prod: 3 new instances of this version"):
        wait_for_rollout(client, GROUP, timeout_s=600, clock=FakeClock())
    stubber.assert_no_pending_responses()


def test_a_refresh_without_a_status_is_reported_as_unknown() -> None:
    refresh = {"InstanceRefreshId": "r", "AutoScalingGroupName": GROUP, "StartTime": T0,
               "PercentageComplete": 5}  # fmt: skip
    describe = ("describe_instance_refreshes", {"InstanceRefreshes": [refresh]},
                {"AutoScalingGroupName": GROUP})  # fmt: skip
    client, _ = client_with(describe, activities())
    with pytest.raises(
        RolloutFailed,
        match=r"^localai-prod: instance refresh r still Unknown \(5% done\) after 0s$",
    ):
        wait_for_rollout(client, GROUP, timeout_s=0, clock=FakeClock())


def test_the_command_without_a_log_group_gives_no_log_hint(boto_client, capsys) -> None:
    from components.readiness.rollout import main

    install, _ = boto_client
    install(refreshes("Failed", started=datetime.now(UTC), reason="health checks"))
    assert main(["--group", GROUP, "--region", "eu-west-1", "--timeout", "60"]) == 1
    assert capsys.readouterr().err == (
        "localai: the fleet's rollout did not complete: localai-prod: instance refresh "
        "0f1e2d3c-refresh ended Failed: health checks\n"
    )
