"""What a stack is doing, and who is told when it goes wrong: metric filters, alarms, an SNS
topic and a dashboard, for the single VM and the fleet.

Where the numbers come from (no agent of ours):

- **Events the host writes.** The bootstrap's scripts write one ``localai-boot:`` line per
  event to the CloudWatch stream ``<instance id>/boot`` of the stack's log group
  (``localai-timeline``): ``phase=fetch_failed`` (the weights are not all present and
  verified; the unit retries), ``phase=gpu_fallback`` (a GPU host serving on CPU),
  ``phase=localai_restart`` (a second start of LocalAI in one boot) and, on a fleet,
  ``phase=lifecycle_result result=ABANDON`` (an instance that never answered). A metric
  filter per event counts them in the namespace ``LocalAI/<project>-<stack>``.
- **LocalAI's request log.** LocalAI v2.24.0 logs every request through fiberzerolog
  (``core/http/app.go``), whose message for a status >= 500 is ``Server error`` (the
  middleware's default ``Messages``). The container's stream carries those lines; a filter
  counts them, and another counts requests (``latency=`` and ``url=`` in one line, the
  health checks on ``/readyz`` left out). Its ``/metrics`` route needs the API key (it is
  registered after the key-auth middleware) and has one histogram, ``api_call`` by method
  and path, without status codes: the log lines are the simpler source.
- **The CloudWatch agent** (every fleet host; a single VM unless ``localai:hostMetrics``
  is false): CPU, memory, the weights volume's disk use and the GPU, published by Amazon's agent
  in the same namespace, each also without dimensions (bootstrap/metrics_agent.py). Its
  install is an event too: ``phase=metrics_agent result=failed``.
- **AWS's own metrics.** EC2's ``StatusCheckFailed`` for the single VM; the load
  balancer's ``HealthyHostCount``, ``RequestCount``, ``HTTPCode_Target_5XX_Count``,
  ``HTTPCode_ELB_5XX_Count`` and ``TargetResponseTime`` for a fleet.

Alarms (all to one SNS topic; ``localai:alarmEmail`` subscribes an address): endpoint down,
5xx above 5% of requests, GPU fallback, repeated restarts, weights fetch failures, on a
fleet lifecycle ABANDON, and with the agent a weights volume above 90% and an agent that
could not start. Missing data never alarms: a host stopped by its schedule sends
none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.bootstrap.metrics_agent import DISK_METRIC, published_metrics

ERROR_RATE_PERCENT = 5.0
DISK_FULL_PERCENT = 90.0
RESTARTS_IN_15_MIN = 3


@dataclass(frozen=True)
class LogEvent:
    metric: str
    pattern: str
    """A CloudWatch Logs filter pattern: quoted terms, all required; ``-"x"`` excludes."""
    fleet_only: bool = False
    agent_only: bool = False
    """Only where the CloudWatch agent is installed (``localai:hostMetrics``)."""


HOST_EVENTS = (
    LogEvent("FetchFailures", '"localai-boot:" "phase=fetch_failed"'),
    LogEvent("GpuFallbacks", '"localai-boot:" "phase=gpu_fallback"'),
    LogEvent("Restarts", '"localai-boot:" "phase=localai_restart"'),
    LogEvent(
        "LifecycleAbandons",
        '"localai-boot:" "phase=lifecycle_result" "result=ABANDON"',
        fleet_only=True,
    ),
    LogEvent(
        "MetricsAgentFailures",
        '"localai-boot:" "phase=metrics_agent" "result=failed"',
        agent_only=True,
    ),
    LogEvent("ServerErrors", '"Server error" "latency=" "url="'),
    LogEvent("Requests", '"latency=" "url=" -"/readyz"'),
)


def namespace(resource_prefix: str) -> str:
    return f"LocalAI/{resource_prefix}"


def dashboard_name(resource_prefix: str) -> str:
    """``<project>-<stack>``, in the characters a dashboard name may have (A-Za-z0-9_-)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", resource_prefix)


def dashboard_url(region: str, resource_prefix: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#dashboards:name={dashboard_name(resource_prefix)}"
    )


@dataclass(frozen=True)
class FleetTargets:
    """The load balancer's and target group's ARN suffixes (CloudWatch dimensions)."""

    load_balancer: pulumi.Input[str]
    target_group: pulumi.Input[str]


def _alarm(
    name: str,
    suffix: str,
    *,
    description: str,
    topic: aws.sns.Topic,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    **kwargs: object,
) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        f"{name}-{suffix}",
        alarm_description=description,
        alarm_actions=[topic.arn],
        ok_actions=[topic.arn],
        treat_missing_data="notBreaching",
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
        **kwargs,  # type: ignore[arg-type]
    )


def _count_alarm(
    name: str, event: str, threshold: int, minutes: int, description: str, ns: str, **kw: object
) -> aws.cloudwatch.MetricAlarm:
    return _alarm(
        name,
        event.lower(),
        description=description,
        namespace=ns,
        metric_name=event,
        statistic="Sum",
        period=minutes * 60,
        evaluation_periods=1,
        threshold=threshold,
        comparison_operator="GreaterThanOrEqualToThreshold",
        **kw,  # type: ignore[arg-type]
    )


def _error_rate_queries(
    errors: list[tuple[str, str, Mapping[str, pulumi.Input[str]]]],
    requests: tuple[str, str, Mapping[str, pulumi.Input[str]]],
) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """errors / requests x 100 over 5 minutes; every series filled with 0."""

    def series(i: str, ns: str, metric: str, dims: Mapping[str, pulumi.Input[str]]):
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=i,
            return_data=False,
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=ns,
                metric_name=metric,
                dimensions=dict(dims) or None,
                period=300,
                stat="Sum",
            ),
        )

    ids = [f"e{i}" for i in range(len(errors))]
    queries = [series(i, *e) for i, e in zip(ids, errors, strict=True)]
    queries.append(series("r", *requests))
    total = " + ".join(f"FILL({i}, 0)" for i in ids)
    queries.append(
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id="rate",
            expression=f"IF(FILL(r, 0) > 0, 100 * ({total}) / FILL(r, 0), 0)",
            label="5xx, % of requests",
            return_data=True,
        )
    )
    return queries


def observability(
    name: str,
    *,
    resource_prefix: str,
    log_group_name: pulumi.Input[str],
    region: pulumi.Input[str],
    alarm_email: str | None,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    instance_id: pulumi.Input[str] | None = None,
    fleet: FleetTargets | None = None,
    gpu: bool = False,
    host_metrics: bool = False,
) -> aws.cloudwatch.Dashboard:
    """Filters, topic, alarms and dashboard for one host (``instance_id``) or a fleet; the
    dashboard is returned (its name is an output)."""
    ns = namespace(resource_prefix)
    opts = pulumi.ResourceOptions(parent=parent)
    for event in HOST_EVENTS:
        if (event.fleet_only and fleet is None) or (event.agent_only and not host_metrics):
            continue
        aws.cloudwatch.LogMetricFilter(
            f"{name}-{event.metric.lower()}",
            log_group_name=log_group_name,
            pattern=event.pattern,
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                namespace=ns, name=event.metric, value="1", unit="Count"
            ),
            opts=opts,
        )
    topic = aws.sns.Topic(f"{name}-alarms", tags=dict(tags), opts=opts)
    if alarm_email is not None:
        aws.sns.TopicSubscription(
            f"{name}-alarms-email",
            topic=topic.arn,
            protocol="email",
            endpoint=alarm_email,
            opts=opts,
        )
    common = {"topic": topic, "tags": tags, "parent": parent}
    alarms = []
    if fleet is None:
        assert instance_id is not None
        alarms.append(
            _alarm(
                name,
                "endpoint-down",
                description="localai: the host fails its EC2 status checks",
                namespace="AWS/EC2",
                metric_name="StatusCheckFailed",
                dimensions={"InstanceId": instance_id},
                statistic="Maximum",
                period=60,
                evaluation_periods=5,
                datapoints_to_alarm=3,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                **common,  # type: ignore[arg-type]
            )
        )
        rate = _error_rate_queries([(ns, "ServerErrors", {})], (ns, "Requests", {}))
    else:
        lb = {"LoadBalancer": fleet.load_balancer}
        tg = {"TargetGroup": fleet.target_group, **lb}
        alarms.append(
            _alarm(
                name,
                "endpoint-down",
                description="localai: no healthy instance behind the load balancer",
                namespace="AWS/ApplicationELB",
                metric_name="HealthyHostCount",
                dimensions=tg,
                statistic="Minimum",
                period=60,
                evaluation_periods=3,
                threshold=1,
                comparison_operator="LessThanThreshold",
                **common,  # type: ignore[arg-type]
            )
        )
        elb = "AWS/ApplicationELB"
        rate = _error_rate_queries(
            [(elb, "HTTPCode_Target_5XX_Count", tg), (elb, "HTTPCode_ELB_5XX_Count", lb)],
            (elb, "RequestCount", lb),
        )
    alarms.append(
        _alarm(
            name,
            "5xx-rate",
            description=f"localai: more than {ERROR_RATE_PERCENT:g}% of requests answered 5xx",
            metric_queries=rate,
            evaluation_periods=1,
            threshold=ERROR_RATE_PERCENT,
            comparison_operator="GreaterThanThreshold",
            **common,  # type: ignore[arg-type]
        )
    )
    counted = [
        ("Restarts", RESTARTS_IN_15_MIN, 15, "localai: LocalAI restarted repeatedly"),
        ("FetchFailures", 1, 5, "localai: the weights could not be fetched and verified"),
    ]
    if gpu:
        counted.append(("GpuFallbacks", 1, 5, "localai: a GPU host is serving on its CPU"))
    if fleet is not None:
        counted.append(("LifecycleAbandons", 1, 5, "localai: an instance never answered"))
    if host_metrics:
        counted.append(
            ("MetricsAgentFailures", 1, 15, "localai: the CloudWatch agent could not start")
        )
        alarms.append(
            _alarm(
                name,
                "weights-disk-full",
                description=(f"localai: a weights volume is more than {DISK_FULL_PERCENT:g}% full"),
                namespace=ns,
                metric_name=DISK_METRIC,
                statistic="Maximum",
                period=300,
                evaluation_periods=1,
                threshold=DISK_FULL_PERCENT,
                comparison_operator="GreaterThanThreshold",
                **common,  # type: ignore[arg-type]
            )
        )
    events = [event for event, *_ in counted]
    for event, threshold, minutes, description in counted:
        alarms.append(
            _count_alarm(
                name,
                event,
                threshold,
                minutes,
                description,
                ns,
                topic=topic,
                tags=tags,
                parent=parent,
            )
        )
    dashboard = aws.cloudwatch.Dashboard(
        f"{name}-dashboard",
        dashboard_name=dashboard_name(resource_prefix),
        dashboard_body=pulumi.Output.all(
            region,
            [a.arn for a in alarms],
            instance_id,
            fleet.load_balancer if fleet else None,
            fleet.target_group if fleet else None,
        ).apply(
            lambda v: json.dumps(
                dashboard_body(
                    ns,
                    v[0],
                    v[1],
                    v[2],
                    v[3],
                    v[4],
                    events,
                    published_metrics(gpu) if host_metrics else [],
                )
            )
        ),
        opts=opts,
    )
    return dashboard


def dashboard_body(
    ns: str,
    region: str,
    alarm_arns: Sequence[str],
    instance_id: str | None,
    load_balancer: str | None,
    target_group: str | None,
    events: Sequence[str],
    agent_metrics: Sequence[str] = (),
) -> dict[str, object]:
    """The dashboard's JSON (CloudWatch's dashboard body structure); ``events`` are the
    host-event metrics the alarms watch, ``agent_metrics`` the CloudWatch agent's (their
    series without dimensions: the fullest, busiest host of the stack)."""

    def widget(title: str, metrics: list[list[object]], stat: str = "Sum", **extra: object):
        return {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "metrics": metrics,
                "stat": stat,
                "period": 300,
                "view": "timeSeries",
                **extra,
            },
        }

    widgets: list[dict[str, object]] = [
        {
            "type": "alarm",
            "width": 24,
            "height": 4,
            "properties": {"title": "Alarms", "alarms": list(alarm_arns)},
        }
    ]
    if load_balancer is not None:
        lb = ["LoadBalancer", load_balancer]
        widgets += [
            widget(
                "Requests and 5xx",
                [
                    ["AWS/ApplicationELB", "RequestCount", *lb],
                    ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *lb],
                    ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *lb],
                ],
            ),
            widget(
                "Response time (to the last byte of a stream)",
                [
                    ["AWS/ApplicationELB", "TargetResponseTime", *lb, {"stat": "p50"}],
                    ["AWS/ApplicationELB", "TargetResponseTime", *lb, {"stat": "p95"}],
                ],
                stat="p50",
            ),
            widget(
                "Healthy instances",
                [
                    [
                        "AWS/ApplicationELB",
                        "HealthyHostCount",
                        "TargetGroup",
                        target_group,
                        *lb,
                    ]
                ],
                stat="Minimum",
            ),
        ]
    else:
        widgets += [
            widget("Requests and 5xx", [[ns, "Requests"], [ns, "ServerErrors"]]),
            widget(
                "Host",
                [
                    ["AWS/EC2", "CPUUtilization", "InstanceId", instance_id],
                    [
                        "AWS/EC2",
                        "StatusCheckFailed",
                        "InstanceId",
                        instance_id,
                        {"stat": "Maximum"},
                    ],
                ],
                stat="Average",
            ),
        ]
    if agent_metrics:
        widgets.append(
            widget(
                "Hosts: % used, GPU memory in MiB (CloudWatch agent; the highest host)",
                [[ns, metric] for metric in agent_metrics],
                stat="Maximum",
            )
        )
    widgets.append(widget("Host events", [[ns, event] for event in events]))
    return {"widgets": widgets}
