"""What a million output tokens costs on the planned host, and when it beats a hosted API.

Pure arithmetic over the planner's estimates, so each figure is a worked example in tests:

- **A typical request** is ``prompt_tokens`` in and ``output_tokens`` out (by default the
  fleet's: a ``TTFT_PROMPT_TOKENS``-token prompt and a ``TYPICAL_OUTPUT_TOKENS``-token
  answer). At full use the host spends ``prefill + output_tokens / batched tokens/s`` on
  one: prefill is compute bound and scales with the prompt (``TTFT`` less its fixed
  overhead, times ``prompt_tokens / TTFT_PROMPT_TOKENS``), decode runs with every parallel
  slot busy (:func:`~components.sizing.speed.batched_tokens_per_second`).
- **Dollars per million output tokens at full use** = the hour's price / (typical requests
  an hour x output tokens) x 10^6; at a utilisation ``u`` it is that divided by ``u`` (the
  idle share of the hour is paid too).
- **A month** is ``host_hours_per_month`` running hours (730 without a schedule: AWS's own
  month), a day ``HOURS_PER_MONTH / 24`` of them: 30.42 days.
- **Break-even** against a hosted model priced per million input and output tokens: the
  whole requests per day at which the hosted bill reaches this stack's daily cost
  (``ceil(daily cost / hosted price of one typical request)``). Above the capacity of the
  stack's running hours a day, none: the hosted API is cheaper even at full use.

Instance prices are approximate us-east-1 on-demand (``instance_types.py`` gives source and
date); a hosted price is whatever ``localai:compareWith`` states: none is invented here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.sizing.fleet import TYPICAL_OUTPUT_TOKENS, prefill_ms
from components.sizing.planner import SizingPlan
from components.sizing.speed import TTFT_PROMPT_TOKENS

HOURS_PER_MONTH = 730.0
"""AWS's pricing month (8,760 hours a year / 12)."""
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
DEFAULT_UTILISATION = 0.25
"""The share of its running hours a host spends serving, when the stack states none."""


@dataclass(frozen=True)
class RequestShape:
    prompt_tokens: int = TTFT_PROMPT_TOKENS
    output_tokens: int = TYPICAL_OUTPUT_TOKENS


@dataclass(frozen=True)
class HostedPrice:
    """A hosted model's list price, in dollars per million tokens."""

    input_usd_per_1m: float
    output_usd_per_1m: float

    def request_usd(self, shape: RequestShape) -> float:
        return (
            shape.prompt_tokens * self.input_usd_per_1m
            + shape.output_tokens * self.output_usd_per_1m
        ) / 1e6


@dataclass(frozen=True)
class TokenCost:
    """One host type's price per million output tokens."""

    request_seconds: float
    """Host time of one typical request with every slot busy."""
    requests_per_hour: float
    usd_per_1m_full: float
    usd_per_1m_at_utilisation: float
    utilisation: float


@dataclass(frozen=True)
class BreakEven:
    monthly_usd: float
    daily_usd: float
    hosted_request_usd: float
    capacity_requests_per_day: float
    """Typical requests a day at full use over the running hours."""
    requests_per_day: int | None
    """None: the hosted API costs less even at full use."""


def request_seconds(plan: SizingPlan, shape: RequestShape) -> float | None:
    """Host seconds per typical request at full use, or None without the estimates."""
    prefill = prefill_ms(plan, shape.prompt_tokens)
    if prefill is None or not plan.estimated_batched_tokens_per_second:
        return None
    return prefill / 1000 + shape.output_tokens / plan.estimated_batched_tokens_per_second


def token_cost(
    plan: SizingPlan,
    hourly_usd: float,
    *,
    shape: RequestShape = RequestShape(),
    utilisation: float = DEFAULT_UTILISATION,
) -> TokenCost | None:
    """What ``plan``'s host charges per million output tokens, or None without estimates."""
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must lie in (0, 1] (got {utilisation})")
    seconds = request_seconds(plan, shape)
    if seconds is None:
        return None
    per_hour = 3600.0 / seconds
    full = hourly_usd / (per_hour * shape.output_tokens) * 1e6
    return TokenCost(seconds, per_hour, full, full / utilisation, utilisation)


def monthly_usd(
    hourly_usd: float,
    *,
    host_hours_per_month: float = HOURS_PER_MONTH,
    fixed_hourly_usd: float = 0.0,
) -> float:
    """The hosts' hours at ``hourly_usd``, plus ``fixed_hourly_usd`` (a fleet's load
    balancer, which no schedule stops) for all ``HOURS_PER_MONTH``."""
    return host_hours_per_month * hourly_usd + fixed_hourly_usd * HOURS_PER_MONTH


def break_even(
    *,
    hourly_usd: float,
    request_seconds: float,
    hosted: HostedPrice,
    shape: RequestShape = RequestShape(),
    host_hours_per_month: float = HOURS_PER_MONTH,
    fixed_hourly_usd: float = 0.0,
) -> BreakEven:
    """The requests per day at which ``hosted`` costs what this stack costs.

    The stack costs :func:`monthly_usd`; its capacity is what its hosts serve in their
    ``host_hours_per_month`` (instance-hours: one host all month is 730)."""
    monthly = monthly_usd(
        hourly_usd, host_hours_per_month=host_hours_per_month, fixed_hourly_usd=fixed_hourly_usd
    )
    daily = monthly / DAYS_PER_MONTH
    per_request = hosted.request_usd(shape)
    capacity = host_hours_per_month / DAYS_PER_MONTH * 3600.0 / request_seconds
    requests: int | None = None
    if per_request > 0:
        needed = math.ceil(round(daily / per_request, 9))  # 3.0000000001 is 3
        requests = needed if needed <= round(capacity, 9) else None
    return BreakEven(monthly, daily, per_request, capacity, requests)
