"""A SizingPlan carrying only the estimates, for tests of the arithmetic built on them."""

from __future__ import annotations

from types import MappingProxyType

from components.sizing.planner import SizingPlan


def estimates_plan(
    tps: float | None,
    ttft_ms: float | None,
    *,
    batched_tps: float | None = None,
    hourly_usd: float = 1.0,
) -> SizingPlan:
    return SizingPlan(
        host_name="x",
        threads=4,
        cpu_limit=4.0,
        memory_limit_mb=8192,
        gpu_layers=MappingProxyType({}),
        single_active_backend=False,
        hourly_cost_usd=hourly_usd,
        estimated_tokens_per_second=tps,
        estimated_ttft_ms=ttft_ms,
        memory_needed_mib=MappingProxyType({}),
        vram_needed_mib=MappingProxyType({}),
        total_memory_needed_mib=0,
        per_request_context=MappingProxyType({}),
        warnings=(),
        estimated_batched_tokens_per_second=batched_tps,
    )
