"""One calibration run: a thread sweep against a real llama.cpp server, with records."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.bench_endpoint import run_benchmark
from benchmarks.calibration.constants import (
    CHAT_FORMAT,
    DISTURBED_CORES,
    N_CTX,
    SERVER_START_TIMEOUT_S,
)
from benchmarks.calibration.fitting import implied_constants, ratio
from benchmarks.calibration.machine import bandwidth_profile, describe_machine
from benchmarks.calibration.model_files import (
    ensure_gguf,
    shape_from_facts,
    tiny_gguf,
    weight_bytes_per_token,
)
from benchmarks.calibration.planner_bridge import (
    gguf_quantization,
    host_for,
    planner_estimates,
    synthetic_facts,
)
from benchmarks.calibration.report import log
from benchmarks.calibration.server import CpuAccount, cpu_quota, fit_prompt, wait_until_quiet
from benchmarks.endpoint_requests import BenchmarkResult, make_client_factory
from tools.llama_server import LlamaServer


def run_thread_count(
    args: argparse.Namespace,
    model_path: Path,
    alias: str,
    threads: int,
    prompt: str | None,
    log_dir: Path,
    cgroup: Path | None,
) -> tuple[BenchmarkResult, str, int | None, CpuAccount]:
    server = LlamaServer(
        model_path,
        log_dir / f"{alias}-t{threads}.log",
        model=alias,
        python=args.server_python,
        threads=threads,
        n_ctx=N_CTX,
        chat_format=CHAT_FORMAT,
        cgroup=cgroup,
        start_timeout_s=SERVER_START_TIMEOUT_S,
    )
    with server:
        factory = make_client_factory(server.base_url, server.api_key)
        counted = None
        if prompt is None:
            prompt, counted = fit_prompt(factory(), alias, args.prompt_tokens)
        with CpuAccount(server) as account:
            result = run_benchmark(
                model=alias,
                requests=args.requests,
                concurrency=1,
                max_tokens=args.max_tokens,
                prompt=prompt,
                warmup=1,
                client_factory=factory,
                unique_prompts=True,
                progress=not args.no_progress,
            )
    return result, prompt, counted, account


def _p50(result: BenchmarkResult, metric: str) -> float | None:
    return result.metric(metric)["p50"]


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    from components.models.facts import load_model_facts

    facts = load_model_facts(args.model)
    if facts is None:
        raise SystemExit(f"error: no model_configs/facts/{args.model}.yaml")
    nproc = len(os.sched_getaffinity(0))
    sweep = args.threads_sweep or _default_sweep(nproc)
    log(f"machine: {nproc} vCPUs; thread sweep {sweep}")
    machine = describe_machine(args.server_python)

    if args.bandwidth_gbs:
        bandwidth = {"method": "given with --bandwidth-gbs", "multi_read_gbs": args.bandwidth_gbs}
        bandwidth["single_read_gbs"] = args.bandwidth_gbs
        bandwidth["read_gbs"] = {str(n): args.bandwidth_gbs for n in sweep}
    else:
        wait_until_quiet(args.quiet_wait)
        log("measuring memory bandwidth ...")
        bandwidth = bandwidth_profile(sweep)
    log(f"bandwidth read GB/s: {bandwidth['read_gbs']}")

    shape = shape_from_facts(facts)
    started = time.monotonic()
    if args.gguf:
        model_path, reused = args.gguf, True
    else:
        model_path, reused = ensure_gguf(args.model, shape, args.cache_dir)
    quantization = gguf_quantization(model_path)
    log(
        f"model file {model_path} ({model_path.stat().st_size / 1e6:.0f} MB, "
        f"{'reused' if reused else f'written in {time.monotonic() - started:.0f} s'})"
    )
    synth = synthetic_facts(facts, model_path, quantization)
    read_per_token = weight_bytes_per_token(model_path)
    kernels = machine["server_kernels"]
    host = host_for(bandwidth["multi_read_gbs"], kernels)

    runs = []
    prompt: str | None = None
    counted: int | None = None
    with (
        tempfile.TemporaryDirectory(prefix="calibrate-") as logs,
        cpu_quota(args.cpu_limit) as cgroup,
    ):
        log_dir = Path(logs)
        wait_until_quiet(args.quiet_wait)
        log("server overhead: tiny model ...")
        tiny, _, _, _ = run_thread_count(
            args, tiny_gguf(args.cache_dir), "tiny", 1, None, log_dir, cgroup
        )
        overhead_ms = _p50(tiny, "ttft_ms")
        for threads in sweep:
            attempts = []
            for attempt in range(1, args.attempts + 1):
                wait_until_quiet(args.quiet_wait)
                log(f"{args.model}: {threads} thread(s), attempt {attempt} ...")
                result, prompt, fitted, account = run_thread_count(
                    args, model_path, args.model, threads, prompt, log_dir, cgroup
                )
                counted = counted or fitted
                attempts.append((account.background_cores, result, account))
                if account.background_cores <= DISTURBED_CORES:
                    break
                log(
                    f"warning: other processes used {account.background_cores:.2f} cores "
                    "during this measurement; it is disturbed"
                )
            _, result, account = min(attempts, key=lambda item: item[0])
            if result.errors == result.requests:
                raise SystemExit(f"error: every request failed: {result.first_error}")
            limit = args.cpu_limit if args.cpu_limit is not None else float(nproc)
            estimate = planner_estimates(host, synth, min(threads, host.physical_cores), limit)
            bw_here = float(bandwidth["read_gbs"].get(str(threads), bandwidth["multi_read_gbs"]))
            record = _thread_record(result, threads, estimate, read_per_token, bw_here)
            record["background_cores"] = round(account.background_cores, 3)
            record["steal_cores"] = round(account.steal_cores, 3)
            record["attempts"] = len(attempts)
            runs.append(record)

    default = planner_estimates(host, synth, None, args.cpu_limit)
    best = max(runs, key=lambda r: r["decode_tokens_per_s"] or 0.0)
    picked = next((r for r in runs if r["threads"] == host.physical_cores), None)
    implied = implied_constants(runs, synth, bandwidth, overhead_ms, kernels)
    return {
        "command": "python -m benchmarks.calibrate_cpu " + " ".join(sys.argv[1:]),
        "model": args.model,
        "shape": shape,
        "model_file": {
            "path": str(model_path),
            "bytes": model_path.stat().st_size,
            "quantization": quantization,
            "synthetic": args.gguf is None,
            "weight_bytes_read_per_token": read_per_token,
        },
        "facts_for_planner": json.loads(synth.model_dump_json()),
        "machine": machine,
        "host_for_planner": _host_dict(host),
        "bandwidth": bandwidth,
        "cpu_limit": args.cpu_limit,
        "prompt": {"text": prompt, "tokens": counted, "target": args.prompt_tokens},
        "max_tokens": args.max_tokens,
        "requests_per_thread_count": args.requests,
        "server_overhead_ttft_ms": overhead_ms,
        "runs": runs,
        "best_threads": best["threads"],
        "default_threads": host.physical_cores,
        "default_vs_best": (
            picked["decode_tokens_per_s"] / best["decode_tokens_per_s"]
            if picked and best["decode_tokens_per_s"]
            else None
        ),
        "planner_default": default,
        "implied_calibration": implied,
    }


def _default_sweep(nproc: int) -> list[int]:
    counts = {nproc}
    n = 1
    while n < nproc:
        counts.add(n)
        n *= 2
    return sorted(counts)


def _host_dict(host: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(host).items() if v is not None}


def _thread_record(
    result: BenchmarkResult,
    threads: int,
    estimate: dict[str, Any],
    read_per_token: int,
    bandwidth_gbs: float,
) -> dict[str, Any]:
    decode = _p50(result, "tokens_per_s")
    ttft = _p50(result, "ttft_ms")
    limit = bandwidth_gbs * 1e9 / read_per_token
    return {
        "threads": threads,
        "decode_tokens_per_s": decode,
        "ttft_ms": ttft,
        "ttft_ms_p95": result.metric("ttft_ms")["p95"],
        "itl_ms": _p50(result, "itl_ms"),
        "e2e_ms": _p50(result, "e2e_ms"),
        "output_tokens_mean": result.output_tokens / max(len(result.ok_samples), 1),
        "token_count_source": result.token_count_source,
        "requests": result.requests,
        "errors": result.errors,
        "estimate": estimate,
        "decode_ratio": ratio(decode, estimate.get("tokens_per_s")),
        "ttft_ratio": ratio(ttft, estimate.get("ttft_ms")),
        "bandwidth_limit_tokens_per_s": limit,
        "share_of_bandwidth_limit": decode / limit if decode else None,
        "achieved_gbs": decode * read_per_token / 1e9 if decode else None,
    }
