"""Human-readable tables of a calibration run and of a fit."""

from __future__ import annotations

import sys
from typing import Any


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(data: dict[str, Any]) -> str:
    m = data["machine"]
    b = data["bandwidth"]
    lines = [
        f"machine: {m['cpu_model']} ({m['hypervisor'] or 'bare metal'}), {m['vcpus']} vCPUs, "
        f"{m['memory_gib']} GiB, avx2={m['avx2']} avx512f={m['avx512f']}",
        f"server: llama-cpp-python {m['llama_cpp_python']} ({m['server_kernels']} kernels)",
        f"bandwidth (read, GB/s): single {b['single_read_gbs']}, multi {b['multi_read_gbs']}"
        + (
            f"; copy: single {b['single_copy_gbs']}, multi {b['multi_copy_gbs']}"
            if "single_copy_gbs" in b
            else ""
        ),
        f"  {b['method']}",
        f"model: {data['model']} shape, {data['model_file']['bytes'] / 1e6:.0f} MB "
        f"{data['model_file']['quantization']}; "
        f"{data['model_file']['weight_bytes_read_per_token'] / 1e6:.0f} MB read per token",
        f"prompt: {data['prompt']['tokens']} tokens (target {data['prompt']['target']}), "
        f"{data['max_tokens']} output tokens, {data['requests_per_thread_count']} requests "
        "per thread count"
        + (f", cpu limit {data['cpu_limit']}" if data["cpu_limit"] is not None else ""),
        f"server TTFT overhead (tiny model): {_f(data['server_overhead_ttft_ms'])} ms",
        "",
        f"{'threads':>7} {'decode tok/s':>12} {'est':>7} {'ratio':>6} "
        f"{'TTFT ms':>8} {'est':>7} {'ratio':>6} {'BW-limit share':>14} {'others':>6}",
    ]
    for run in data["runs"]:
        est = run["estimate"]
        lines.append(
            f"{run['threads']:>7} {_f(run['decode_tokens_per_s']):>12} "
            f"{_f(est.get('tokens_per_s')):>7} {_f(run['decode_ratio'], 2):>6} "
            f"{_f(run['ttft_ms']):>8} {_f(est.get('ttft_ms')):>7} {_f(run['ttft_ratio'], 2):>6} "
            f"{_f((run['share_of_bandwidth_limit'] or 0) * 100, 0) + '%':>14} "
            f"{_f(run.get('background_cores'), 2):>6}"
        )
    d = data["planner_default"]
    implied = data["implied_calibration"]
    lines += [
        "(others = CPU cores other processes used during the measurement)",
        "",
        f"planner's pick here: threads={d.get('threads')} cpu_limit={d.get('cpu_limit')} -> "
        f"{_f(d.get('tokens_per_s'))} tok/s, TTFT {_f(d.get('ttft_ms'))} ms",
        f"best thread count: {data['best_threads']}; default ({data['default_threads']}) "
        f"reaches {_f((data['default_vs_best'] or 0) * 100, 0)}% of the best decode speed",
        f"implied: effective GB/s by threads {_rounded(implied['effective_gbs'])}; "
        f"prefill GFLOP/s per core {_rounded(implied['prefill_gflops_per_core'])}",
    ]
    return "\n".join(lines) + "\n"


def _rounded(mapping: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in mapping.items()}


def format_fit(data: dict[str, Any]) -> str:
    lines = [data["proposed_calibration_python"], ""]
    lines.append(
        f"{'model':<24}{'quant':>7}{'kern':>7}{'cpus':>5}{'thr':>4}{'fit':>4}"
        f"{'tok/s':>8}{'est0':>7}{'est1':>7}{'ratio':>6}"
        f"{'TTFT':>8}{'est0':>8}{'est1':>8}{'ratio':>6}"
    )
    for c in data["checks"]:
        lines.append(
            f"{c['model']:<24}{c['quantization']:>7}{c['kernels']:>7}"
            f"{_f(c['cpu_limit'], 1) if c['cpu_limit'] else 'all':>5}{c['threads']:>4}"
            f"{'yes' if c['used_for_fit'] else 'no':>4}"
            f"{_f(c['measured_tokens_per_s']):>8}"
            f"{_f(c['default_estimate'].get('tokens_per_s')):>7}"
            f"{_f(c['proposed_estimate'].get('tokens_per_s')):>7}"
            f"{_f(c['decode_ratio_proposed'], 2):>6}"
            f"{_f(c['measured_ttft_ms'], 0):>8}"
            f"{_f(c['default_estimate'].get('ttft_ms'), 0):>8}"
            f"{_f(c['proposed_estimate'].get('ttft_ms'), 0):>8}"
            f"{_f(c['ttft_ratio_proposed'], 2):>6}"
        )
    lines.append("(est0: default constants; est1: proposed; ratio: measured / est1)")
    lines.append(f"within 25% ({data['within_25_percent_means']}): {data['all_within_25_percent']}")
    return "\n".join(lines) + "\n"
