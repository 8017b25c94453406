"""Metric filters, alarms, the alarm topic and the dashboard, under the mocks: every alarm
names a metric that exists (AWS's, with its real dimensions, or one of our filters')."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.aws.bootstrap.metrics_agent import published_metrics
from components.aws.observability import HOST_EVENTS, dashboard_name, dashboard_url
from components.errors import ConfigError
from tests.support.program_run import localai_keys, run_program
from tests.support.pulumi_mocks import ACCOUNT, RecordingMocks, stack_config

FILTERS = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARMS = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:localai-alarms-0a1b2c3"
LB = "app/localai-lb/50dc6c495c0c9188"
TG = "targetgroup/localai-targets/943f017f100becff"


def run(stack: str, **extra: str) -> dict:
    return run_program({**localai_keys(stack_config(stack)), **extra}, stack=stack).outputs


def alarms(mocks: RecordingMocks) -> dict[str, dict]:
    return {a.name.removeprefix("localai-"): a.inputs for a in mocks.of_type(ALARMS)}


def filters(mocks: RecordingMocks) -> dict[str, dict]:
    return {f.inputs["metricTransformation"]["name"]: f.inputs for f in mocks.of_type(FILTERS)}


@pytest.mark.parametrize(("stack", "gpu"), [("dev", False), ("gpu", True)])
def test_a_single_vm_has_its_filters_alarms_and_dashboard(
    stack: str, gpu: bool, pulumi_mocks: RecordingMocks
) -> None:
    outputs = run(stack)
    namespace = f"LocalAI/localai-{stack}"
    found = filters(pulumi_mocks)
    assert set(found) == {
        "FetchFailures", "GpuFallbacks", "Restarts", "ServerErrors", "Requests",
        "MetricsAgentFailures",
    }  # fmt: skip
    for name, inputs in found.items():
        assert inputs["logGroupName"] == f"/localai/localai-{stack}"
        assert inputs["metricTransformation"] == {
            "namespace": namespace, "name": name, "value": "1", "unit": "Count"
        }  # fmt: skip
        assert inputs["pattern"] == next(e.pattern for e in HOST_EVENTS if e.metric == name)
    by_name = alarms(pulumi_mocks)
    expected = {
        "endpoint-down", "5xx-rate", "restarts", "fetchfailures", "metricsagentfailures",
        "weights-disk-full",
    }  # fmt: skip
    assert set(by_name) == expected | ({"gpufallbacks"} if gpu else set())
    down = by_name["endpoint-down"]
    assert (down["namespace"], down["metricName"]) == ("AWS/EC2", "StatusCheckFailed")
    assert down["dimensions"] == {"InstanceId": "i-0123456789abcdef0"}
    assert (down["statistic"], down["threshold"], down["comparisonOperator"]) == (
        "Maximum", 1, "GreaterThanOrEqualToThreshold"
    )  # fmt: skip
    restarts = by_name["restarts"]
    assert (restarts["namespace"], restarts["metricName"], restarts["threshold"]) == (
        namespace, "Restarts", 3
    )  # fmt: skip
    assert (restarts["period"], restarts["statistic"]) == (900, "Sum")
    for alarm in by_name.values():
        assert alarm["alarmActions"] == [TOPIC_ARN] == alarm["okActions"]
        assert alarm["treatMissingData"] == "notBreaching"  # a scheduled stop is not an alarm
        metric = alarm.get("metricName")
        if metric is not None and alarm["namespace"] == namespace:
            assert metric in found or metric in published_metrics(gpu), f"nothing sends {metric}"
    disk = by_name["weights-disk-full"]
    # The agent's series without dimensions (metrics_agent.py): the fullest weights volume.
    assert (disk["namespace"], disk["metricName"], disk.get("dimensions")) == (
        namespace, "disk_used_percent", None
    )  # fmt: skip
    assert (disk["statistic"], disk["threshold"], disk["comparisonOperator"]) == (
        "Maximum", 90.0, "GreaterThanThreshold"
    )  # fmt: skip
    queries = {q["id"]: q for q in by_name["5xx-rate"]["metricQueries"]}
    assert queries["e0"]["metric"]["metricName"] == "ServerErrors"
    assert queries["r"]["metric"]["metricName"] == "Requests"
    assert (
        queries["rate"]["expression"] == "IF(FILL(r, 0) > 0, 100 * (FILL(e0, 0)) / FILL(r, 0), 0)"
    )
    assert [q["id"] for q in queries.values() if q.get("returnData")] == ["rate"]
    assert by_name["5xx-rate"]["threshold"] == 5.0
    assert not pulumi_mocks.of_type("aws:sns/topicSubscription:TopicSubscription")
    dashboard = pulumi_mocks.one("aws:cloudwatch/dashboard:Dashboard")
    assert outputs["dashboardName"] == dashboard.inputs["dashboardName"] == f"localai-{stack}"
    body = json.loads(dashboard.inputs["dashboardBody"])
    alarm_widget = body["widgets"][0]["properties"]
    assert sorted(alarm_widget["alarms"]) == sorted(
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:localai-{n}-0a1b2c3" for n in by_name
    )
    plotted = {tuple(m[:2]) for w in body["widgets"][1:] for m in w["properties"]["metrics"]}
    assert (namespace, "Requests") in plotted and (namespace, "Restarts") in plotted
    assert ((namespace, "GpuFallbacks") in plotted) is gpu
    assert {(namespace, m) for m in published_metrics(gpu)} <= plotted
    assert ((namespace, "nvidia_smi_utilization_gpu") in plotted) is gpu
    host = pulumi_mocks.one("localai:aws:Host")
    for resource in [*pulumi_mocks.of_type(ALARMS), *pulumi_mocks.of_type(FILTERS), dashboard]:
        assert resource.parent == host.urn


def test_the_fleet_alarms_on_the_load_balancers_metrics_and_abandons(
    pulumi_mocks: RecordingMocks,
) -> None:
    outputs = run("prod")
    by_name = alarms(pulumi_mocks)
    assert set(by_name) == {
        "endpoint-down", "5xx-rate", "restarts", "fetchfailures", "gpufallbacks",
        "lifecycleabandons", "metricsagentfailures", "weights-disk-full",
    }  # fmt: skip
    down = by_name["endpoint-down"]
    assert (down["namespace"], down["metricName"]) == ("AWS/ApplicationELB", "HealthyHostCount")
    assert down["dimensions"] == {"TargetGroup": TG, "LoadBalancer": LB}
    assert (down["statistic"], down["threshold"], down["comparisonOperator"]) == (
        "Minimum", 1, "LessThanThreshold"
    )  # fmt: skip
    queries = {q["id"]: q for q in by_name["5xx-rate"]["metricQueries"]}
    assert queries["e0"]["metric"]["metricName"] == "HTTPCode_Target_5XX_Count"
    assert queries["e0"]["metric"]["dimensions"] == {"TargetGroup": TG, "LoadBalancer": LB}
    assert queries["e1"]["metric"]["metricName"] == "HTTPCode_ELB_5XX_Count"
    assert queries["e1"]["metric"]["dimensions"] == {"LoadBalancer": LB}
    assert queries["r"]["metric"]["metricName"] == "RequestCount"
    assert "FILL(e0, 0) + FILL(e1, 0)" in queries["rate"]["expression"]
    assert "LifecycleAbandons" in filters(pulumi_mocks)
    body = json.loads(
        pulumi_mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"]
    )
    plotted = {tuple(m[:2]) for w in body["widgets"][1:] for m in w["properties"]["metrics"]}
    assert ("AWS/ApplicationELB", "TargetResponseTime") in plotted
    assert outputs["dashboardName"] == "localai-prod"
    fleet = pulumi_mocks.one("localai:aws:Fleet")
    assert all(a.parent == fleet.urn for a in pulumi_mocks.of_type(ALARMS))


def test_an_alarm_email_is_subscribed_to_the_topic(pulumi_mocks: RecordingMocks) -> None:
    run("dev", alarmEmail="oncall@example.com")
    subscription = pulumi_mocks.one("aws:sns/topicSubscription:TopicSubscription")
    inputs = subscription.inputs
    assert (inputs["topic"], inputs["protocol"], inputs["endpoint"]) == (
        TOPIC_ARN, "email", "oncall@example.com"
    )  # fmt: skip


@pytest.mark.parametrize("email", ["oncall", "a b@example.com", "x@y", "a@b.c,d@e.f"])
def test_a_bad_alarm_email_stops_the_preview(email: str, pulumi_mocks: RecordingMocks) -> None:
    with pytest.raises(ConfigError, match="localai:alarmEmail"):
        run("dev", alarmEmail=email)
    assert not pulumi_mocks.resources


def test_the_preview_prints_the_dashboards_url(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda m, *a, **k: said.append(m))
    run("dev")
    assert (
        "dashboard: https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards:name=localai-dev"
    ) in said
    assert dashboard_url("eu-west-1", "p-s").endswith("region=eu-west-1#dashboards:name=p-s")


def test_a_dashboard_name_keeps_only_the_characters_cloudwatch_takes() -> None:
    assert dashboard_name("localai-dev") == "localai-dev"
    assert dashboard_name("my.app-dev_1") == "my-app-dev_1"


def test_host_metrics_off_leaves_out_the_agent_its_alarms_and_its_permission(
    pulumi_mocks: RecordingMocks,
) -> None:
    run("gpu", hostMetrics="false")
    assert "MetricsAgentFailures" not in filters(pulumi_mocks)
    assert not {"weights-disk-full", "metricsagentfailures"} & set(alarms(pulumi_mocks))
    body = json.loads(
        pulumi_mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"]
    )
    plotted = {m[1] for w in body["widgets"][1:] for m in w["properties"]["metrics"]}
    assert not plotted & set(published_metrics(True))
    policies = [p.inputs["policy"] for p in pulumi_mocks.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert policies and not any("cloudwatch:PutMetricData" in p for p in policies)


@pytest.mark.parametrize("stack", ["dev", "gpu"])
def test_the_host_may_publish_metrics_to_its_own_namespace_only(
    stack: str, pulumi_mocks: RecordingMocks
) -> None:
    run(stack)
    [role_policy] = [
        json.loads(p.inputs["policy"])
        for p in pulumi_mocks.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.endswith("-host-access")
    ]
    [statement] = [s for s in role_policy["Statement"] if s.get("Sid") == "PublishHostMetrics"]
    assert statement == {
        "Sid": "PublishHostMetrics",
        "Effect": "Allow",
        "Action": ["cloudwatch:PutMetricData"],
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": f"LocalAI/localai-{stack}"}},
    }
    # Nothing else of CloudWatch or EC2 (the agent reads its instance id from IMDS).
    actions = [a for s in role_policy["Statement"] for a in s["Action"]]
    assert not [
        a
        for a in actions
        if a.startswith(("cloudwatch:", "ec2:")) and a != "cloudwatch:PutMetricData"
    ]
