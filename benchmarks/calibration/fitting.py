"""Fitting the planner's Calibration constants to the recorded runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any

from benchmarks.calibration.constants import TOLERANCE
from benchmarks.calibration.planner_bridge import (
    planner_decode_bytes,
    planner_estimates,
    planner_prefill_flops,
)


def implied_constants(
    runs: Sequence[dict[str, Any]],
    facts: Any,
    bandwidth: dict[str, Any],
    overhead_ms: float | None,
    kernels: str,
) -> dict[str, Any]:
    """What one run says about the constants, in the planner's own formulas.

    ``effective_gbs[T]`` = planner bytes per token / (1 / measured tok/s - decode
    overhead): the ``min(host, T x per_core) x efficiency`` the planner would need.
    ``prefill_gflops_per_core[T]`` = planner FLOPs / (T x (TTFT - server overhead)).
    """
    from components.sizing.calibration import DEFAULT_CALIBRATION

    c = DEFAULT_CALIBRATION
    per_token = planner_decode_bytes(facts)
    flops = planner_prefill_flops(facts)
    effective = {}
    gflops = {}
    for run in runs:
        decode = run["decode_tokens_per_s"]
        if decode:
            seconds = 1.0 / decode - c.decode_overhead_ms / 1000
            effective[str(run["threads"])] = per_token / seconds / 1e9
        if run["ttft_ms"] and overhead_ms is not None and run["ttft_ms"] > overhead_ms:
            prefill_s = (run["ttft_ms"] - overhead_ms) / 1000
            gflops[str(run["threads"])] = flops / (run["threads"] * prefill_s) / 1e9
    return {
        "planner_decode_bytes_per_token": per_token,
        "planner_prefill_flops": flops,
        "effective_gbs": effective,
        "prefill_gflops_per_core": gflops,
        "server_kernels": kernels,
        "host_read_gbs": bandwidth["multi_read_gbs"],
    }


PLANNER_KERNELS = "avx2"


"""The kernels the planner assumes for x86 (LocalAI v2.24.0's CPU image: AVX2 at most)."""


def fit(
    results: Sequence[dict[str, Any]], checks_only: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """One Calibration from several runs, then the planner checked against every run.

    Decode: ``per_core_bandwidth_gbs``, ``cpu_bandwidth_efficiency`` and
    ``decode_overhead_ms`` by grid search, minimising the worst |log(measured /
    estimate)| over the runs without a CPU limit whose server ran the planner's kernels
    (AVX2); the planner's own formula, with its bytes per token. Prefill:
    ``prefill_gflops_per_core_<kernels>`` per kernel set, the geometric middle of the
    values the runs imply (smallest worst-case error). ``ttft_overhead_ms`` stays: it is
    LocalAI's (Go API + gRPC), which this machine cannot measure; the llama-cpp-python
    server's own overhead is measured and subtracted before the prefill rate is derived.
    """
    import numpy as np

    from components.sizing.calibration import DEFAULT_CALIBRATION, Calibration

    default = DEFAULT_CALIBRATION
    fitted = [r for r in results if r.get("cpu_limit") is None]
    decode_runs = [
        r for r in fitted if r["implied_calibration"]["server_kernels"] == PLANNER_KERNELS
    ] or fitted
    rows = []  # (threads, host GB/s, bytes per token, measured tok/s)
    for result in decode_runs:
        implied = result["implied_calibration"]
        for run in result["runs"]:
            if run["decode_tokens_per_s"]:
                rows.append(
                    (
                        run["threads"],
                        implied["host_read_gbs"],
                        implied["planner_decode_bytes_per_token"],
                        run["decode_tokens_per_s"],
                    )
                )
    threads, hosts, per_token, measured = np.array(rows, dtype=float).T
    per_core = np.arange(2.0, 80.0, 0.5)[:, None, None, None]
    efficiency = np.arange(0.10, 1.0001, 0.01)[None, :, None, None]
    overhead_ms = np.arange(0.0, 10.01, 0.25)[None, None, :, None]
    bandwidth = np.minimum(hosts, threads * per_core) * efficiency * 1e9
    modelled = 1.0 / (per_token / bandwidth + overhead_ms / 1000)
    worst = np.abs(np.log(measured / modelled)).max(axis=3)
    # Near-equal fits: prefer constants close to the defaults (the data may not pin them).
    score = (
        worst
        + 0.01 * np.abs(efficiency[..., 0] - default.cpu_bandwidth_efficiency)
        + 0.001 * np.abs(overhead_ms[..., 0] - default.decode_overhead_ms)
    )
    i, j, k = np.unravel_index(np.argmin(score), score.shape)

    gflops: dict[str, float] = {}
    for kernels in sorted({r["implied_calibration"]["server_kernels"] for r in fitted}):
        values = [
            v
            for r in fitted
            if r["implied_calibration"]["server_kernels"] == kernels
            for v in r["implied_calibration"]["prefill_gflops_per_core"].values()
        ]
        if values:
            gflops[kernels] = math.sqrt(min(values) * max(values))
    proposal = replace(
        default,
        per_core_bandwidth_gbs=round(float(per_core[i, 0, 0, 0]), 2),
        cpu_bandwidth_efficiency=round(float(efficiency[0, j, 0, 0]), 3),
        decode_overhead_ms=round(float(overhead_ms[0, 0, k, 0]), 2),
        prefill_gflops_per_core_avx2=round(
            gflops.get("avx2", default.prefill_gflops_per_core_avx2), 1
        ),
        prefill_gflops_per_core_avx512=round(
            gflops.get("avx512", default.prefill_gflops_per_core_avx512), 1
        ),
        source="benchmarks/calibrate_cpu.py --fit (see benchmarks/calibration_results.json)",
    )
    checks = [
        _check(result, run, proposal, used=result in fitted)
        for result in [*results, *checks_only]
        for run in result["runs"]
    ]
    fitted_checks = [c for c in checks if c["used_for_fit"]]
    within = all(
        c[key] is not None and abs(c[key] - 1) <= TOLERANCE
        for c in fitted_checks
        if c["kernels"] == PLANNER_KERNELS
        for key in ("decode_ratio_proposed", "ttft_ratio_proposed")
    )
    fields = {f.name: getattr(proposal, f.name) for f in dataclass_fields(proposal)}
    fields["gpu_prefill_tflops"] = dict(proposal.gpu_prefill_tflops)
    return {
        "proposed_calibration": fields,
        "proposed_calibration_python": _calibration_source(proposal, default),
        "decode_fit_worst_abs_log_error": float(worst[i, j, k]),
        "prefill_gflops_per_core_by_kernels": gflops,
        "checks": checks,
        "all_within_25_percent": within,
        "within_25_percent_means": (
            "every fitted run whose server ran the planner's kernels (AVX2), decode and TTFT"
        ),
        "calibration_class": Calibration.__qualname__,
    }


def _check(result: dict[str, Any], run: dict[str, Any], proposal: Any, used: bool) -> dict:
    facts = _facts_from(result)
    host = _host_from(result)
    threads_used = min(run["threads"], host.physical_cores)
    limit = result["cpu_limit"] or float(host.vcpus)
    before = planner_estimates(host, facts, threads_used, limit)
    after = planner_estimates(host, facts, threads_used, limit, proposal)
    return {
        "model": result["model"],
        "quantization": result["model_file"]["quantization"],
        "kernels": result["implied_calibration"]["server_kernels"],
        "cpu_limit": result["cpu_limit"],
        "threads": run["threads"],
        "used_for_fit": used,
        "measured_tokens_per_s": run["decode_tokens_per_s"],
        "measured_ttft_ms": run["ttft_ms"],
        "default_estimate": before,
        "proposed_estimate": after,
        "decode_ratio_default": ratio(run["decode_tokens_per_s"], before.get("tokens_per_s")),
        "ttft_ratio_default": ratio(run["ttft_ms"], before.get("ttft_ms")),
        "decode_ratio_proposed": ratio(run["decode_tokens_per_s"], after.get("tokens_per_s")),
        "ttft_ratio_proposed": ratio(run["ttft_ms"], after.get("ttft_ms")),
    }


def _calibration_source(proposal: Any, default: Any) -> str:
    changed = [
        f"    {name}={getattr(proposal, name)!r},"
        for name in (
            "per_core_bandwidth_gbs",
            "cpu_bandwidth_efficiency",
            "decode_overhead_ms",
            "prefill_gflops_per_core_avx512",
            "prefill_gflops_per_core_avx2",
            "ttft_overhead_ms",
        )
        if getattr(proposal, name) != getattr(default, name)
    ]
    return "Calibration(\n" + "\n".join(changed) + "\n)"


def _facts_from(result: dict[str, Any]) -> Any:
    from components.models.facts import ModelFacts

    return ModelFacts.model_validate(result["facts_for_planner"])


def _host_from(result: dict[str, Any]) -> Any:
    from components.sizing.resources import HostResources

    return HostResources(**result["host_for_planner"])


def ratio(measured: float | None, estimate: float | None) -> float | None:
    return measured / estimate if measured and estimate else None
