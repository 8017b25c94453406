"""The cost outputs and the preview's cost summary, for a single VM and for a fleet.

The arithmetic is :mod:`components.sizing.cost`'s; this module picks the inputs from the
settings and the plans, names the outputs (numbers or single shell words, so
``export $(pulumi stack output --shell)`` still works) and writes the summary lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.settings import Settings
from components.sizing.cost import (
    HOURS_PER_MONTH,
    HostedPrice,
    RequestShape,
    break_even,
    monthly_usd,
    token_cost,
)
from components.sizing.planner import SizingPlan


@dataclass(frozen=True)
class CostReport:
    outputs: dict[str, Any]
    summary: tuple[str, ...]


def _shape(settings: Settings) -> RequestShape:
    compare = settings.compare_with
    if compare is None:
        return RequestShape()
    return RequestShape(compare.input_tokens_per_request, compare.output_tokens_per_request)


def _usd(value: float) -> float:
    return round(value, 4)


def cost_report(
    settings: Settings,
    plans: Mapping[str, SizingPlan],
    hourly_usd: Mapping[str, float],
    *,
    host_hours_per_month: float = HOURS_PER_MONTH,
    fixed_hourly_usd: float = 0.0,
) -> CostReport:
    """Cost outputs for the first of ``plans`` (the type in service), per type when several.

    Instances of the first type (a fleet's minimum) run ``host_hours_per_month``
    instance-hours; ``fixed_hourly_usd`` (the load balancer) runs all month."""
    shape = _shape(settings)
    costs = {
        name: token_cost(
            plan, hourly_usd[name], shape=shape, utilisation=settings.expected_utilisation
        )
        for name, plan in plans.items()
    }
    first = next(iter(plans))
    cost = costs[first]
    monthly = monthly_usd(
        hourly_usd[first],
        host_hours_per_month=host_hours_per_month,
        fixed_hourly_usd=fixed_hourly_usd,
    )
    outputs: dict[str, Any] = {
        "runningHoursPerMonth": round(host_hours_per_month, 1),
        "monthlyCostUsd": round(monthly, 2),
    }
    request = f"{shape.prompt_tokens}-token prompts, {shape.output_tokens}-token answers"
    summary = [
        f"cost: ${monthly:,.2f} a month: {host_hours_per_month:,.1f} hours of {first} at "
        f"${hourly_usd[first]:.4f}/h"
        + (
            f" + the load balancer's {HOURS_PER_MONTH:g} hours at ${fixed_hourly_usd:.4f}/h"
            if fixed_hourly_usd
            else ""
        )
        + " (approximate us-east-1 on-demand)"
    ]
    if cost is None:
        summary.append(f"cost per token: {first} has no speed estimate (a model without facts)")
        return CostReport(outputs, tuple(summary))
    outputs.update(
        {
            "usdPerMillionOutputTokens": _usd(cost.usd_per_1m_full),
            "usdPerMillionOutputTokensAtUtilisation": _usd(cost.usd_per_1m_at_utilisation),
            "expectedUtilisation": cost.utilisation,
        }
    )
    known = {n: c for n, c in costs.items() if c is not None}
    if len(plans) > 1:
        outputs["usdPerMillionOutputTokensByType"] = ",".join(
            f"{n}={_usd(c.usd_per_1m_full)}" for n, c in known.items()
        )
    for name, each in known.items():
        summary.append(
            f"cost per million output tokens on {name}: ${each.usd_per_1m_full:.4f} at full "
            f"use ({each.requests_per_hour:,.0f} requests an hour of {request}, every "
            f"parallel slot busy), ${each.usd_per_1m_at_utilisation:.4f} at "
            f"{each.utilisation:.0%} use"
        )
    compare = settings.compare_with
    if compare is None:
        summary.append(
            "break-even: set localai:compareWith {inputUsdPer1M, outputUsdPer1M} to the "
            "hosted model's prices to compare"
        )
        return CostReport(outputs, tuple(summary))
    hosted = HostedPrice(compare.input_usd_per_1m, compare.output_usd_per_1m)
    even = break_even(
        hourly_usd=hourly_usd[first],
        request_seconds=cost.request_seconds,
        hosted=hosted,
        shape=shape,
        host_hours_per_month=host_hours_per_month,
        fixed_hourly_usd=fixed_hourly_usd,
    )
    outputs["capacityRequestsPerDay"] = int(even.capacity_requests_per_day)
    if even.requests_per_day is None:
        outputs["breakEvenRequestsPerDay"] = "never"
        at_capacity = even.capacity_requests_per_day * even.hosted_request_usd
        summary.append(
            f"break-even: never. The hosted model costs ${even.hosted_request_usd:.6f} a "
            f"request, so even {int(even.capacity_requests_per_day):,} requests a day (this "
            f"stack at full use) cost ${at_capacity:,.2f}, under this stack's "
            f"${even.daily_usd:,.2f} a day"
        )
    else:
        outputs["breakEvenRequestsPerDay"] = even.requests_per_day
        summary.append(
            f"break-even: {even.requests_per_day:,} requests a day of {request} (the hosted "
            f"model at ${even.hosted_request_usd:.6f} a request reaches this stack's "
            f"${even.daily_usd:,.2f} a day); this stack serves up to "
            f"{int(even.capacity_requests_per_day):,}"
        )
    return CostReport(outputs, tuple(summary))
