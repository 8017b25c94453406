"""The cost arithmetic as worked examples, with the numbers written out."""

from __future__ import annotations

import dataclasses

import pytest

from components.sizing.cost import (
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    HostedPrice,
    RequestShape,
    break_even,
    monthly_usd,
    request_seconds,
    token_cost,
)
from components.sizing.planner import SizingPlan
from tests.support.sizing_plans import estimates_plan


def plan(batched_tps: float | None, ttft_ms: float | None, tps: float = 10.0) -> SizingPlan:
    return estimates_plan(tps, ttft_ms, batched_tps=batched_tps, hourly_usd=0.2)


# 1,050 ms to the first token of a 64-token prompt = 1.0 s of prefill + 50 ms overhead.
# 256 tokens at 50 tokens/s (all slots busy) = 5.12 s. One request: 6.12 s of the host.
EXAMPLE = plan(50.0, 1050.0)


def test_a_month_is_aws_730_hours_and_a_day_a_24th_of_it() -> None:
    assert HOURS_PER_MONTH == 730.0
    assert pytest.approx(30.4166667) == DAYS_PER_MONTH


def test_one_request_is_prefill_without_its_overhead_plus_batched_decode() -> None:
    assert request_seconds(EXAMPLE, RequestShape()) == pytest.approx(6.12)
    # A 640-token prompt is ten times the prefill: 10 + 5.12.
    assert request_seconds(EXAMPLE, RequestShape(640, 256)) == pytest.approx(15.12)
    # A TTFT below the overhead has no prefill left, not a negative one.
    assert request_seconds(plan(50.0, 20.0), RequestShape()) == pytest.approx(5.12)
    # The decode is the batched speed, not the single stream's (10 tokens/s here).
    assert request_seconds(plan(25.0, 1050.0, tps=50.0), RequestShape()) == pytest.approx(11.24)


def test_without_estimates_there_is_no_figure() -> None:
    assert request_seconds(plan(None, 1050.0), RequestShape()) is None
    assert request_seconds(plan(50.0, None), RequestShape()) is None
    assert token_cost(plan(0.0, 1050.0), 0.2) is None


def test_dollars_per_million_output_tokens_at_full_use_and_at_a_quarter() -> None:
    # 3600 / 6.12 = 588.24 requests an hour x 256 tokens = 150,588 tokens for $0.20:
    # 0.2 x 6.12 / (3600 x 256) x 10^6 = $1.328125.
    cost = token_cost(EXAMPLE, 0.2)
    assert cost is not None
    assert cost.request_seconds == pytest.approx(6.12)
    assert cost.requests_per_hour == pytest.approx(588.2353, rel=1e-6)
    assert cost.usd_per_1m_full == pytest.approx(1.328125)
    # At 25% use the idle three quarters are paid too: x4.
    assert cost.utilisation == 0.25
    assert cost.usd_per_1m_at_utilisation == pytest.approx(5.3125)
    assert token_cost(EXAMPLE, 0.2, utilisation=1.0).usd_per_1m_at_utilisation == pytest.approx(
        1.328125
    )


@pytest.mark.parametrize("utilisation", [0.0, -0.1, 1.0001])
def test_a_utilisation_outside_zero_to_one_is_refused(utilisation: float) -> None:
    with pytest.raises(ValueError, match=r"utilisation must lie in \(0, 1\]"):
        token_cost(EXAMPLE, 0.2, utilisation=utilisation)


def test_a_hosted_request_is_priced_from_both_token_counts() -> None:
    # 64 x $3 + 256 x $15, per million: $0.004032.
    assert HostedPrice(3.0, 15.0).request_usd(RequestShape()) == pytest.approx(0.004032)
    assert HostedPrice(3.0, 15.0).request_usd(RequestShape(1000, 0 + 1)) == pytest.approx(0.003015)


def test_break_even_against_a_pricier_model() -> None:
    # $0.20/h x 730 h = $146 a month = $4.80 a day; the hosted request costs $0.004032:
    # 4.8 / 0.004032 = 1,190.48 -> 1,191 requests a day. Capacity: 86,400 / 6.12 = 14,117.6.
    even = break_even(hourly_usd=0.2, request_seconds=6.12, hosted=HostedPrice(3.0, 15.0))
    assert even.monthly_usd == pytest.approx(146.0)
    assert even.daily_usd == pytest.approx(4.8)
    assert even.capacity_requests_per_day == pytest.approx(14117.647, rel=1e-6)
    assert even.requests_per_day == 1191


def test_break_even_on_both_sides_of_the_rounding() -> None:
    # $0.0048 a request (256 x $18.75 / 10^6): 4.8 / 0.0048 is exactly 1,000 -> 1,000.
    exact = break_even(hourly_usd=0.2, request_seconds=6.12, hosted=HostedPrice(0.0, 18.75))
    assert exact.requests_per_day == 1000
    # A cent cheaper per million: 1,000.53 -> 1,001.
    above = break_even(hourly_usd=0.2, request_seconds=6.12, hosted=HostedPrice(0.0, 18.74))
    assert above.requests_per_day == 1001


def test_never_when_the_hosted_model_is_cheaper_even_at_full_use() -> None:
    # 86.4 s a request: 1,000 a day at most. Needing exactly 1,000 still breaks even...
    at_capacity = break_even(hourly_usd=0.2, request_seconds=86.4, hosted=HostedPrice(0, 18.75))
    assert at_capacity.capacity_requests_per_day == pytest.approx(1000.0)
    assert at_capacity.requests_per_day == 1000
    # ...needing 1,001 never does.
    beyond = break_even(hourly_usd=0.2, request_seconds=86.4, hosted=HostedPrice(0, 18.74))
    assert beyond.requests_per_day is None
    # A cheap model ($0.15 / $0.60): 29,412 needed, 14,118 possible.
    cheap = break_even(hourly_usd=0.2, request_seconds=6.12, hosted=HostedPrice(0.15, 0.6))
    assert cheap.hosted_request_usd == pytest.approx(163.2e-6)
    assert cheap.requests_per_day is None


def test_a_fleet_counts_its_hosts_and_its_load_balancer_in_cost_and_capacity() -> None:
    # 2 x $0.80 + $0.0225 = $1.6225/h x 730 = $1,184.425 a month = $38.94 a day.
    even = break_even(
        hourly_usd=0.8,
        request_seconds=6.12,
        hosted=HostedPrice(3.0, 15.0),
        host_hours_per_month=2 * 730,
        fixed_hourly_usd=0.0225,
    )
    assert even.monthly_usd == pytest.approx(1184.425)
    assert even.daily_usd == pytest.approx(38.94)
    assert even.capacity_requests_per_day == pytest.approx(2 * 14117.647, rel=1e-6)
    assert even.requests_per_day == 9658  # 38.94 / 0.004032 = 9,657.7


def test_fewer_running_hours_cost_less_and_serve_less() -> None:
    # 12 h on weekdays: 60 h a week x 52 / 12 = 260 h a month.
    even = break_even(
        hourly_usd=0.2,
        request_seconds=6.12,
        hosted=HostedPrice(3.0, 15.0),
        host_hours_per_month=260,
    )
    assert even.monthly_usd == pytest.approx(52.0)
    assert even.daily_usd == pytest.approx(52.0 / (730 / 24))
    assert even.requests_per_day == 425  # $1.7096 a day / 0.004032 = 424.005 -> 425
    assert even.capacity_requests_per_day == pytest.approx(260 / (730 / 24) * 3600 / 6.12)


def test_fractions_of_a_second_and_of_the_reference_prompt_count() -> None:
    # 1,550 ms: 1.5 s of prefill (not 1); a 96-token prompt is 1.5 reference prompts.
    assert request_seconds(plan(50.0, 1550.0), RequestShape()) == pytest.approx(1.5 + 5.12)
    assert request_seconds(EXAMPLE, RequestShape(96, 256)) == pytest.approx(1.5 + 5.12)


def test_the_price_is_exact_to_the_dollar_per_million() -> None:
    cost = token_cost(EXAMPLE, 0.2)
    assert cost is not None
    assert cost.usd_per_1m_full == pytest.approx(0.2 * 6.12 / (3600 * 256) * 1e6, rel=1e-12)


def test_a_free_hosted_model_has_no_break_even_and_no_division_by_zero() -> None:
    even = break_even(hourly_usd=0.2, request_seconds=6.12, hosted=HostedPrice(0.0, 0.0))
    assert even.hosted_request_usd == 0.0
    assert even.requests_per_day is None


def test_the_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        token_cost(EXAMPLE, 0.2, RequestShape())  # type: ignore[misc]
    with pytest.raises(TypeError):
        break_even(0.2, 6.12, HostedPrice(3.0, 15.0))  # type: ignore[misc]


@pytest.mark.parametrize(
    "value",
    [RequestShape(), HostedPrice(1.0, 2.0), token_cost(EXAMPLE, 0.2),
     break_even(hourly_usd=0.2, request_seconds=6.12, hosted=HostedPrice(3.0, 15.0))],
    ids=["RequestShape", "HostedPrice", "TokenCost", "BreakEven"],
)  # fmt: skip
def test_the_results_are_frozen(value: object) -> None:
    field = next(iter(vars(value)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, 0)


def test_a_month_is_the_hosts_hours_plus_the_load_balancers_whole_month() -> None:
    assert monthly_usd(0.2) == pytest.approx(146.0)  # one host, 730 h, nothing fixed
    assert monthly_usd(0.8, host_hours_per_month=261, fixed_hourly_usd=0.0225) == pytest.approx(
        261 * 0.8 + 730 * 0.0225
    )
    with pytest.raises(TypeError):
        monthly_usd(0.2, 730, 0.0)  # type: ignore[misc]
