"""The fleet's load-balancer and scaling numbers, with the arithmetic written out."""

from __future__ import annotations

import dataclasses

import pytest

from components.sizing.fleet import (
    capacity_rpm,
    fleet_hourly_cost,
    fleet_timings,
    full_context_first_token_s,
)
from components.sizing.planner import SizingPlan
from tests.support.sizing_plans import estimates_plan


def plan(tps: float | None, ttft_ms: float | None) -> SizingPlan:
    return estimates_plan(tps, ttft_ms)


def test_capacity_of_one_instance():
    # 0.5 s to the first token + 256 tokens at 32 tokens/s = 8.5 s a request: 60 / 8.5.
    assert capacity_rpm(plan(32.0, 500.0)) == pytest.approx(60 / 8.5)
    assert capacity_rpm(plan(None, 500.0)) == 6.0  # no estimate: one request per 10 s


def test_full_context_first_token():
    # (450 ms - 50 ms overhead) x 8192 / 64 prompt tokens + 50 ms = 51,250 ms.
    assert full_context_first_token_s(plan(32.0, 450.0), 8192) == pytest.approx(51.25)
    assert full_context_first_token_s(plan(32.0, None), 8192) is None


def test_timings_take_the_slowest_type():
    fast, slow = plan(40.0, 150.0), plan(10.0, 1050.0)
    timings = fleet_timings({"fast": fast, "slow": slow}, 4096)
    # slow: 1.05 + 256 / 10 = 26.65 s a request -> 2.251 rpm x 0.7 = 1.58 -> 1.
    assert timings.target_requests_per_minute == 1
    assert timings.capacity_rpm["fast"] == pytest.approx(60 / (0.15 + 6.4))
    # slow: (1050 - 50) x 4096 / 64 + 50 = 64,050 ms x 1.5 = 96.1 s, below the 300 s floor.
    assert timings.idle_timeout_s == 300
    # drain: 300 s idle + 4096 tokens / 10 tokens/s = 709.6 -> 710 s.
    assert timings.deregistration_delay_s == 710


def test_a_long_prefill_raises_the_idle_timeout_and_both_stay_within_elb_limits():
    slow = plan(2.0, 5050.0)
    # (5050 - 50) x 8192 / 64 + 50 = 640,050 ms x 1.5 = 960.075 -> 961 s.
    assert fleet_timings({"t": slow}, 8192).idle_timeout_s == 961
    huge = plan(0.5, 50_050.0)
    timings = fleet_timings({"t": huge}, 131_072)
    assert timings.idle_timeout_s == 4000  # ALB maximum
    assert timings.deregistration_delay_s == 3600  # target group maximum


def test_target_override_and_floor():
    assert fleet_timings({"t": plan(32.0, 500.0)}, 4096, 42).target_requests_per_minute == 42
    # 60 / 8.5 = 7.06 x 0.7 = 4.94 -> 4.
    assert fleet_timings({"t": plan(32.0, 500.0)}, 4096).target_requests_per_minute == 4
    with pytest.raises(ValueError, match="at least one instance type"):
        fleet_timings({}, 4096)


def test_hourly_cost():
    assert fleet_hourly_cost(0, 0.8048) == pytest.approx(0.0225)
    assert fleet_hourly_cost(4, 0.8048) == pytest.approx(4 * 0.8048 + 0.0225)


def test_plan_helper_is_a_real_plan():
    assert dataclasses.is_dataclass(plan(1.0, 1.0))


def test_timings_without_any_estimate_fall_back_to_the_floors():
    """No type has estimates (models without facts): the idle timeout is its floor, the
    drain that floor plus the floor again for the stream, the target the fallback's."""
    timings = fleet_timings({"a": plan(None, None), "b": plan(None, None)}, 4096)
    assert timings.idle_timeout_s == 300
    assert timings.deregistration_delay_s == 600
    assert timings.target_requests_per_minute == 4  # 6 rpm x 0.7 = 4.2 -> 4


def test_timings_are_frozen():
    timings = fleet_timings({"a": plan(32.0, 500.0)}, 4096)
    with pytest.raises(dataclasses.FrozenInstanceError):
        timings.idle_timeout_s = 1  # type: ignore[misc]


def test_full_context_first_token_edges():
    # A first token faster than the fixed overhead: no prefill left to scale, the overhead.
    assert full_context_first_token_s(plan(32.0, 30.0), 8192) == pytest.approx(0.05)
    # Not a whole multiple of 64 tokens: (401 - 50) x 100 / 64 + 50 = 598.4375 ms.
    assert full_context_first_token_s(plan(32.0, 401.0), 100) == pytest.approx(0.5984375)


def test_a_target_below_one_request_a_minute_is_one():
    # 1 s + 256 tokens at 1 token/s = 257 s a request: 0.233 rpm x 0.7 = 0.16 -> at least 1.
    assert fleet_timings({"slow": plan(1.0, 1000.0)}, 512).target_requests_per_minute == 1
