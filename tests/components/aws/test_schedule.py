"""Idle hours on AWS: the single VM's stop/start schedules and the fleet's scheduled
actions, under the mocks, with the cost outputs they change."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.errors import ConfigError
from components.sizing.instance_types import lookup
from tests.support.program_run import localai_keys, run_program
from tests.support.pulumi_mocks import ACCOUNT, RecordingMocks, stack_config

DEV = localai_keys(stack_config("dev"))
PROD = localai_keys(stack_config("prod"))
OFFICE = {
    "stop": "cron(0 20 ? * MON-FRI *)",
    "start": "cron(0 8 ? * MON-FRI *)",
    "timezone": "Europe/Berlin",
}
INSTANCE = "i-0123456789abcdef0"
INSTANCE_ARN = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{INSTANCE}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:localai-scheduler"  # the mocks' ARN for that role


def with_fleet_schedule(entries: list[dict]) -> dict[str, str]:
    fleet = json.loads(PROD["fleet"])
    return {**PROD, "fleet": json.dumps({**fleet, "schedule": entries})}


def test_the_scheduler_stops_and_starts_this_instance_and_nothing_else(
    pulumi_mocks: RecordingMocks,
) -> None:
    outputs = run_program({**DEV, "schedule": json.dumps(OFFICE)}, stack="dev").outputs
    schedules = {s.name: s for s in pulumi_mocks.of_type("aws:scheduler/schedule:Schedule")}
    assert set(schedules) == {"localai-stop", "localai-start"}
    (role,) = [
        r for r in pulumi_mocks.of_type("aws:iam/role:Role") if r.name == "localai-scheduler"
    ]
    host = pulumi_mocks.one("localai:aws:Host")
    for action in ("stop", "start"):
        schedule = schedules[f"localai-{action}"]
        assert schedule.inputs["scheduleExpression"] == OFFICE[action]
        assert schedule.inputs["scheduleExpressionTimezone"] == "Europe/Berlin"
        assert schedule.inputs["flexibleTimeWindow"] == {"mode": "OFF"}
        target = schedule.inputs["target"]
        assert target["arn"] == f"arn:aws:scheduler:::aws-sdk:ec2:{action}Instances"
        assert json.loads(target["input"]) == {"InstanceIds": [INSTANCE]}
        assert target["roleArn"] == ROLE_ARN
        assert schedule.parent == host.urn
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]
    (policy,) = [
        p
        for p in pulumi_mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name == "localai-scheduler-stop-start"
    ]
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["ec2:StopInstances", "ec2:StartInstances"],
            "Resource": INSTANCE_ARN,
        }
    ]
    # 12 hours on 261 weekdays: 261 hours a month; the month's price follows.
    assert outputs["runningHoursPerMonth"] == 261.0
    assert outputs["monthlyCostUsd"] == round(261 * lookup("c7a.xlarge").hourly_usd, 2)
    assert 0 < outputs["estimatedScheduledStartSeconds"] < outputs["estimatedReplacementSeconds"]


def test_without_a_schedule_nothing_of_it_exists(pulumi_mocks: RecordingMocks) -> None:
    outputs = run_program(DEV, stack="dev").outputs
    assert not pulumi_mocks.of_type("aws:scheduler/schedule:Schedule")
    assert "localai-scheduler" not in {r.name for r in pulumi_mocks.of_type("aws:iam/role:Role")}
    assert "estimatedScheduledStartSeconds" not in outputs
    assert outputs["runningHoursPerMonth"] == 730.0


def test_the_preview_says_what_a_start_takes(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda m, *a, **k: said.append(m))
    outputs = run_program({**DEV, "schedule": json.dumps(OFFICE)}, stack="dev").outputs
    seconds = outputs["estimatedScheduledStartSeconds"]
    assert any(
        line.startswith(
            f"schedule: each start (cron(0 8 ? * MON-FRI *) Europe/Berlin) is about {seconds} s"
        )
        for line in said
    )
    assert any(line.startswith("cost: $53.58 a month: 261.0 hours of c7a.xlarge") for line in said)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"stop": "cron(0 20 * * * *)", "start": OFFICE["start"]}, "exactly one of day-of-month"),
        ({**OFFICE, "timezone": "Mars/Olympus"}, "'Mars/Olympus' is not an IANA time zone"),
        ({**OFFICE, "start": OFFICE["stop"]}, "the host would never stop"),
        ({"stop": OFFICE["stop"]}, r"localai:schedule\.start = .*: Field required"),
        ({**OFFICE, "start": "cron(0 8 ? * 2#1 *)"}, "uses L, W or #"),
    ],
)
def test_a_bad_schedule_stops_the_preview_naming_it(
    schedule: dict, message: str, pulumi_mocks: RecordingMocks
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_program({**DEV, "schedule": json.dumps(schedule)}, stack="dev")
    assert not pulumi_mocks.resources


def test_a_fleet_takes_schedule_under_fleet_not_the_single_vms_key(
    pulumi_mocks: RecordingMocks,
) -> None:
    with pytest.raises(
        ConfigError,
        match=r"localai:schedule = .*schedule: the single VM's, meaningless with localai:fleet",
    ):
        run_program({**PROD, "schedule": json.dumps(OFFICE)}, stack="prod")


NIGHTS_OFF = [
    {"recurrence": "0 20 * * 1-5", "minSize": 0, "desiredSize": 0, "timezone": "Europe/Berlin"},
    {"recurrence": "0 8 * * 1-5", "minSize": 1, "timezone": "Europe/Berlin"},
]


def test_a_fleet_schedule_is_one_scheduled_action_per_entry_and_owns_the_sizes(
    pulumi_mocks: RecordingMocks,
) -> None:
    outputs = run_program(with_fleet_schedule(NIGHTS_OFF), stack="prod").outputs
    actions = sorted(
        pulumi_mocks.of_type("aws:autoscaling/schedule:Schedule"), key=lambda r: r.name
    )
    assert [a.name for a in actions] == ["localai-schedule-0", "localai-schedule-1"]
    group = pulumi_mocks.one("aws:autoscaling/group:Group")
    night, morning = (a.inputs for a in actions)
    assert night["recurrence"] == "0 20 * * 1-5" and night["timeZone"] == "Europe/Berlin"
    assert (night["minSize"], night["maxSize"], night["desiredCapacity"]) == (0, -1, 0)
    assert (morning["minSize"], morning["maxSize"], morning["desiredCapacity"]) == (1, -1, -1)
    assert night["scheduledActionName"] == "localai-0"
    assert night["autoscalingGroupName"] == group.inputs["name"]
    fleet = pulumi_mocks.one("localai:aws:Fleet")
    assert all(a.parent == fleet.urn for a in actions)
    # `pulumi up` after a scheduled action must not put the sizes back.
    assert set(group.ignore_changes) == {
        "desiredCapacity", "minSize", "maxSize", "initialLifecycleHooks"
    }  # fmt: skip
    # One g6.xlarge 12 h on weekdays (261 h) + the load balancer all month (730 h).
    hourly = lookup("g6.xlarge").hourly_usd
    assert outputs["runningHoursPerMonth"] == 261.0
    assert outputs["monthlyCostUsd"] == round(261 * hourly + 730 * 0.0225, 2)


def test_a_fleet_without_a_schedule_keeps_its_sizes_under_pulumi(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program(PROD, stack="prod")
    assert not pulumi_mocks.of_type("aws:autoscaling/schedule:Schedule")
    group = pulumi_mocks.one("aws:autoscaling/group:Group")
    assert "minSize" not in group.ignore_changes


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (NIGHTS_OFF[:1], "no entry sets minSize 1 or more again"),
        ([{"recurrence": "0 8 * * 1-5"}], "needs minSize, maxSize or desiredSize"),
        ([{"recurrence": "0 8 * * 1-5", "minSize": 3, "maxSize": 2}], r"minSize \(3\) must not"),
        ([{"recurrence": "0 8 * * 1-5", "minSize": 1, "desiredSize": 0}], "must lie between"),
        ([{"recurrence": "cron(0 8 ? * MON *)", "minSize": 1}], "a recurrence takes five"),
        ([{"recurrence": "0 8 * * 1-5", "minSize": 1}] * 51, "at most 50 items"),
    ],
)
def test_a_bad_fleet_schedule_stops_the_preview(
    entries: list, message: str, pulumi_mocks: RecordingMocks
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_program(with_fleet_schedule(entries), stack="prod")
    assert not pulumi_mocks.resources
