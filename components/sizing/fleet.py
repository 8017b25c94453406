"""What a fleet's load balancer and scaling policy are set to, from the planner's estimates.

Pure arithmetic over :class:`~components.sizing.planner.SizingPlan` values (one per instance
type the group may launch), so every figure is checked in tests with the numbers written out:

- **Capacity of one instance**, in requests per minute, for a *typical request*: a
  ``TTFT_PROMPT_TOKENS``-token prompt and a ``TYPICAL_OUTPUT_TOKENS``-token answer. One
  request takes ``ttft + TYPICAL_OUTPUT_TOKENS / tokens_per_second`` seconds; decode is
  memory-bandwidth bound, so requests served in parallel share that bandwidth and the
  instance completes about ``60 / that`` requests a minute whatever ``parallelRequests``
  is (parallel slots cut the waiting, not the work).
- **Default scaling target** (``ALBRequestCountPerTarget``, requests per minute per
  instance): ``TARGET_UTILISATION`` of the *slowest* type's capacity (any type of the list
  may be the one in service), rounded down, at least 1.
- **Idle timeout**: the load balancer closes a connection that sends no byte for that
  long; a streamed answer sends a byte per token, so the longest silence is the first
  token of a full-context prompt. Prefill is compute bound (linear in prompt tokens,
  ``components/sizing/speed.py``): ``full = (ttft - overhead) x context / 64 + overhead``
  for the slowest type, times ``SAFETY``, at least ``MIN_IDLE_TIMEOUT_S``.
- **Deregistration delay**: how long a draining instance keeps its open requests (scale-in,
  instance refresh): the idle timeout plus a whole context of decode at the slowest
  type's speed, within the ELB limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from components.aws_limits import ALB_IDLE_TIMEOUT_MAX_S, TARGET_DEREGISTRATION_MAX_S
from components.sizing.calibration import DEFAULT_CALIBRATION
from components.sizing.planner import SizingPlan
from components.sizing.speed import TTFT_PROMPT_TOKENS

TYPICAL_OUTPUT_TOKENS = 256
TARGET_UTILISATION = 0.7
"""Scale out before an instance is saturated: new capacity takes minutes to warm up."""
MIN_IDLE_TIMEOUT_S = 300
SAFETY = 1.5
FALLBACK_CAPACITY_RPM = 6.0
"""When the planner has no estimate (a model without facts): one request every 10 s."""


@dataclass(frozen=True)
class FleetTimings:
    capacity_rpm: Mapping[str, float]
    """Instance type -> typical requests per minute one instance completes."""
    target_requests_per_minute: int
    idle_timeout_s: int
    deregistration_delay_s: int


def request_seconds(plan: SizingPlan) -> float | None:
    """Seconds one typical request takes on ``plan``'s host, or None without estimates."""
    if plan.estimated_ttft_ms is None or not plan.estimated_tokens_per_second:
        return None
    return plan.estimated_ttft_ms / 1000 + TYPICAL_OUTPUT_TOKENS / plan.estimated_tokens_per_second


def capacity_rpm(plan: SizingPlan) -> float:
    seconds = request_seconds(plan)
    return FALLBACK_CAPACITY_RPM if seconds is None else 60.0 / seconds


def prefill_ms(plan: SizingPlan, prompt_tokens: int) -> float | None:
    """Milliseconds of prefill for a prompt of ``prompt_tokens``: compute bound, so the
    TTFT estimate less its fixed overhead, scaled from ``TTFT_PROMPT_TOKENS``."""
    if plan.estimated_ttft_ms is None:
        return None
    overhead = DEFAULT_CALIBRATION.ttft_overhead_ms
    return max(plan.estimated_ttft_ms - overhead, 0.0) * prompt_tokens / TTFT_PROMPT_TOKENS


def full_context_first_token_s(plan: SizingPlan, context_size: int) -> float | None:
    prefill = prefill_ms(plan, context_size)
    if prefill is None:
        return None
    return (prefill + DEFAULT_CALIBRATION.ttft_overhead_ms) / 1000


def fleet_timings(
    plans: Mapping[str, SizingPlan], context_size: int, target_override: int | None = None
) -> FleetTimings:
    """The load balancer's and the scaling policy's numbers for these per-type plans."""
    if not plans:
        raise ValueError("a fleet needs at least one instance type")
    capacities = {name: capacity_rpm(plan) for name, plan in plans.items()}
    target = target_override or max(1, math.floor(min(capacities.values()) * TARGET_UTILISATION))
    first_tokens = [full_context_first_token_s(p, context_size) for p in plans.values()]
    slowest_first = max((t for t in first_tokens if t is not None), default=0.0)
    idle = min(ALB_IDLE_TIMEOUT_MAX_S, max(MIN_IDLE_TIMEOUT_S, math.ceil(slowest_first * SAFETY)))
    speeds = [p.estimated_tokens_per_second for p in plans.values()]
    slowest_decode = min((s for s in speeds if s), default=None)
    stream_s = context_size / slowest_decode if slowest_decode else float(MIN_IDLE_TIMEOUT_S)
    drain = min(TARGET_DEREGISTRATION_MAX_S, math.ceil(idle + stream_s))
    return FleetTimings(capacities, target, idle, drain)


ALB_HOURLY_USD = 0.0225
"""APPROXIMATE Application Load Balancer hour in us-east-1 (without LCUs, which grow with
traffic; ELB pricing page, late 2024). Like the instance prices, an estimate."""


def fleet_hourly_cost(size: int, first_type_hourly_usd: float) -> float:
    """On-demand instances of the first (preferred) type plus the load balancer's hour:
    falls back to other types and Spot change it; EBS and LCUs are extra (README)."""
    return size * first_type_hourly_usd + ALB_HOURLY_USD
