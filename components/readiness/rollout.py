"""``python -m components.readiness.rollout``: wait for a fleet's instance refresh.

After a launch-template change the provider starts an instance refresh and returns
(terraform-provider-aws, internal/service/autoscaling/group.go, resourceGroupUpdate:
startInstanceRefresh, no wait), so `pulumi up` reported success while new hosts could be
failing their launch hook over and over. This waits for the refresh that the update
started: success when it completes; failure, with the hook's or the launch's reason, when
it fails or is cancelled, or when new instances keep being abandoned (it then cancels the
refresh: the hosts of the previous version keep serving).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DONE = {"Successful"}
FAILED = {"Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed", "Baseline"}
"""Terminal refresh states other than success (EC2 Auto Scaling API Reference,
InstanceRefresh.Status); a Baseline refresh never replaces instances."""
ABANDONS_BEFORE_GIVING_UP = 2
"""New instances abandoned (warm-up failed) since the refresh began before the refresh is
cancelled: one may be bad luck (a zone's capacity), two of the same version are the
version's fault."""
START_MARGIN = timedelta(minutes=15)
"""A refresh older than this before the wait began is not the one this update started."""


class RolloutFailed(Exception):
    pass


@dataclass
class Clock:
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep


def _abandoned(activities: Sequence[dict[str, Any]], since: datetime) -> list[str]:
    """The reasons of launches since ``since`` that ended without an instance in service."""
    reasons = []
    for activity in activities:
        started = activity.get("StartTime")
        if started is None or started < since:
            continue
        if activity.get("StatusCode") not in ("Cancelled", "Failed"):
            continue
        if not str(activity.get("Description", "")).startswith("Launching"):
            continue
        reasons.append(str(activity.get("StatusMessage") or activity.get("Description")))
    return reasons


def wait_for_rollout(
    client: Any,
    group: str,
    *,
    timeout_s: float,
    poll_s: float = 15,
    log_group: str = "",
    clock: Clock | None = None,
    out: Callable[[str], None] = print,
) -> str:
    """Return a line saying how the refresh ended; raise RolloutFailed otherwise."""
    clock = clock or Clock()
    began = clock.now()
    deadline = began + timedelta(seconds=timeout_s)
    where = f" (the hosts' log: aws logs tail {log_group} --follow)" if log_group else ""
    while True:
        refreshes = client.describe_instance_refreshes(AutoScalingGroupName=group).get(
            "InstanceRefreshes", []
        )
        recent = [
            r for r in refreshes if r.get("StartTime") and r["StartTime"] >= began - START_MARGIN
        ]
        if not recent:
            return f"{group}: no instance refresh to wait for"
        refresh = max(recent, key=lambda r: r["StartTime"])
        status = refresh.get("Status") or "Unknown"
        done = refresh.get("PercentageComplete", 0)
        if status in DONE:
            return f"{group}: instance refresh {refresh['InstanceRefreshId']} completed"
        if status in FAILED:
            raise RolloutFailed(
                f"{group}: instance refresh {refresh['InstanceRefreshId']} ended {status}: "
                f"{refresh.get('StatusReason') or 'no reason given'}{where}"
            )
        activities = client.describe_scaling_activities(
            AutoScalingGroupName=group, MaxRecords=50
        ).get("Activities", [])
        abandoned = _abandoned(activities, refresh["StartTime"])
        if len(abandoned) >= ABANDONS_BEFORE_GIVING_UP:
            client.cancel_instance_refresh(AutoScalingGroupName=group)
            raise RolloutFailed(
                f"{group}: {len(abandoned)} new instances of this version failed their launch "
                f"(the last: {abandoned[0]}); the instance refresh was cancelled, and the "
                f"instances of the previous version keep serving{where}"
            )
        if clock.now() >= deadline:
            raise RolloutFailed(
                f"{group}: instance refresh {refresh['InstanceRefreshId']} still {status} "
                f"({done}% done) after {int(timeout_s)}s{where}"
            )
        out(f"{group}: instance refresh {status}, {done}% done")
        clock.sleep(poll_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.readiness.rollout")
    parser.add_argument("--group", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--log-group", default="")
    args = parser.parse_args(argv)
    import boto3  # the machine running Pulumi has its AWS credentials

    client = boto3.client("autoscaling", region_name=args.region)
    try:
        print(
            wait_for_rollout(client, args.group, timeout_s=args.timeout, log_group=args.log_group)
        )
    except RolloutFailed as exc:
        print(f"localai: the fleet's rollout did not complete: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
