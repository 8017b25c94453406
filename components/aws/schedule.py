"""Idle hours: a single VM stopped and started by EventBridge Scheduler, a fleet resized by
Auto Scaling scheduled actions.

- **Single VM.** Two ``aws.scheduler.Schedule``s call EC2's ``StopInstances`` and
  ``StartInstances`` through Scheduler's universal target
  (``arn:<partition>:scheduler:::aws-sdk:ec2:stopInstances``, input ``{"InstanceIds": [id]}``),
  with a role that Scheduler alone may assume, for this account only (the confused-deputy
  condition ``aws:SourceAccount``), and that may stop and start this one instance and
  nothing else. The weights volume stays attached and the image stays on it, so a start is
  a boot, the model read and the first token (``estimatedScheduledStartSeconds``).
- **Fleet.** One ``aws.autoscaling.Schedule`` per ``fleet.schedule`` entry, with its Unix
  cron ``recurrence`` and time zone. An entry may take the group to 0 (target tracking on
  requests per instance cannot scale out from 0: the settings require a later entry
  with ``minSize`` >= 1, which launches the instances through the same lifecycle hook).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.settings import FleetScheduleEntry, ScheduleSettings

SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"


def scheduler_trust_policy(account_id: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": SCHEDULER_PRINCIPAL},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                }
            ],
        }
    )


def stop_start_policy(instance_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["ec2:StopInstances", "ec2:StartInstances"],
                    "Resource": instance_arn,
                }
            ],
        }
    )


def instance_schedule(
    name: str,
    schedule: ScheduleSettings,
    *,
    instance_id: pulumi.Input[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> list[aws.scheduler.Schedule]:
    """The stop and start schedules of one instance, and the role they act with."""
    opts = pulumi.ResourceOptions(parent=parent)
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    identity = aws.get_caller_identity_output(opts=invoke)
    partition = aws.get_partition_output(opts=invoke).partition
    region = aws.get_region_output(opts=invoke).region
    instance_arn = pulumi.Output.format(
        "arn:{0}:ec2:{1}:{2}:instance/{3}", partition, region, identity.account_id, instance_id
    )
    role = aws.iam.Role(
        f"{name}-scheduler",
        assume_role_policy=identity.account_id.apply(scheduler_trust_policy),
        description="EventBridge Scheduler: stops and starts the localai host on its schedule",
        tags=dict(tags),
        opts=opts,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-scheduler-stop-start",
        role=role.id,
        policy=instance_arn.apply(stop_start_policy),
        opts=opts,
    )
    payload = pulumi.Output.from_input(instance_id).apply(
        lambda i: json.dumps({"InstanceIds": [i]})
    )
    schedules = []
    for action, expression in (("stop", schedule.stop), ("start", schedule.start)):
        schedules.append(
            aws.scheduler.Schedule(
                f"{name}-{action}",
                description=f"{action}s the localai host ({expression} {schedule.timezone})",
                schedule_expression=expression,
                schedule_expression_timezone=schedule.timezone,
                flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
                target=aws.scheduler.ScheduleTargetArgs(
                    arn=pulumi.Output.format(
                        "arn:{0}:scheduler:::aws-sdk:ec2:{1}Instances", partition, action
                    ),
                    role_arn=role.arn,
                    input=payload,
                    retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                        maximum_event_age_in_seconds=3600, maximum_retry_attempts=10
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy]),
            )
        )
    return schedules


def fleet_schedule(
    name: str,
    entries: Sequence[FleetScheduleEntry],
    *,
    group_name: pulumi.Input[str],
    parent: pulumi.Resource,
) -> list[aws.autoscaling.Schedule]:
    """One scheduled action per entry, named by its place in the list."""
    return [
        aws.autoscaling.Schedule(
            f"{name}-schedule-{index}",
            scheduled_action_name=f"localai-{index}",
            autoscaling_group_name=group_name,
            recurrence=entry.recurrence,
            time_zone=entry.timezone,
            # -1 leaves a size as it is (the provider's "unset" for these three).
            min_size=-1 if entry.min_size is None else entry.min_size,
            max_size=-1 if entry.max_size is None else entry.max_size,
            desired_capacity=-1 if entry.desired_size is None else entry.desired_size,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for index, entry in enumerate(entries)
    ]
