"""What machine this is: CPU model, flags, cores, and its achievable memory bandwidth."""

from __future__ import annotations

import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.calibration.constants import BANDWIDTH_BYTES_PER_PROCESS, BANDWIDTH_ROUNDS
from benchmarks.endpoint_requests import (
    percentile,
)


def read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def describe_machine(server_python: str) -> dict[str, Any]:
    """lscpu model name, SIMD flags, cores, memory, and the llama.cpp build in use."""
    lscpu = _run_text(["lscpu"])
    fields = {}
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("Flags", "").split())
    if not flags:
        match = re.search(r"^flags\s*:\s*(.*)$", read_file("/proc/cpuinfo"), re.MULTILINE)
        flags = set(match.group(1).split()) if match else set()
    meminfo = re.search(r"MemTotal:\s+(\d+) kB", read_file("/proc/meminfo"))
    build = _run_text(
        [
            server_python,
            "-c",
            "import llama_cpp; print(llama_cpp.__version__); "
            "print(llama_cpp.llama_print_system_info().decode())",
        ]
    ).splitlines()
    system_info = build[1] if len(build) > 1 else ""
    return {
        "cpu_model": fields.get("Model name", platform.processor() or "unknown"),
        "vendor": fields.get("Vendor ID"),
        "hypervisor": fields.get("Hypervisor vendor"),
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "vcpus": len(os.sched_getaffinity(0)),
        "threads_per_core": fields.get("Thread(s) per core"),
        "l3_cache": fields.get("L3 cache"),
        "memory_gib": round(int(meminfo.group(1)) / 1024**2, 1) if meminfo else None,
        "python": platform.python_version(),
        "server_python": server_python,
        "llama_cpp_python": build[0] if build else None,
        "llama_cpp_system_info": system_info,
        "server_kernels": "avx512" if "AVX512 = 1" in system_info else "avx2",
    }


def _run_text(command: list[str]) -> str:
    if shutil.which(command[0]) is None and not Path(command[0]).exists():
        return ""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def _bandwidth_worker(barrier: Any, queue: Any, nbytes: int, rounds: int, kind: str) -> None:
    import numpy as np

    src = np.ones(nbytes // 8)
    dst = np.empty_like(src) if kind == "copy" else None
    for _ in range(2):  # fault the pages in, warm the TLB
        if dst is None:
            src.sum()
        else:
            np.copyto(dst, src)
    for index in range(rounds):
        barrier.wait()
        start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        if dst is None:
            src.sum()
        else:
            np.copyto(dst, src)
        queue.put((index, start, time.perf_counter()))


def measure_bandwidth(
    processes: int,
    kind: str = "read",
    nbytes: int = BANDWIDTH_BYTES_PER_PROCESS,
    rounds: int = BANDWIDTH_ROUNDS,
) -> float:
    """GB/s (10^9) that ``processes`` processes stream together; median of ``rounds``
    (the best round is an outlier on a shared VM: up to 1.6x the typical rate here)."""
    if kind not in ("read", "copy"):
        raise ValueError(f"kind must be 'read' or 'copy', got {kind!r}")
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    barrier = ctx.Barrier(processes)
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_bandwidth_worker, args=(barrier, queue, nbytes, rounds, kind))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    marks = [queue.get(timeout=300) for _ in range(processes * rounds)]
    for worker in workers:
        worker.join()
    moved = processes * nbytes * (2 if kind == "copy" else 1)
    rates = []
    for index in range(rounds):
        starts = [s for i, s, _ in marks if i == index]
        ends = [e for i, _, e in marks if i == index]
        rates.append(moved / (max(ends) - min(starts)) / 1e9)
    return percentile(rates, 50)


def bandwidth_profile(thread_counts: Sequence[int]) -> dict[str, Any]:
    counts = sorted({1, *thread_counts, len(os.sched_getaffinity(0))})
    read = {n: measure_bandwidth(n, "read") for n in counts}
    copy = {n: measure_bandwidth(n, "copy") for n in counts}
    return {
        "method": (
            f"numpy, N processes x {BANDWIDTH_BYTES_PER_PROCESS // 1024**2} MiB float64 "
            "arrays released by a barrier; read = a.sum() (bytes / s), copy = "
            f"np.copyto (2 x bytes / s); median of {BANDWIDTH_ROUNDS} rounds"
        ),
        "read_gbs": {str(n): round(v, 2) for n, v in read.items()},
        "copy_gbs": {str(n): round(v, 2) for n, v in copy.items()},
        "single_read_gbs": round(read[1], 2),
        "multi_read_gbs": round(read[counts[-1]], 2),
        "single_copy_gbs": round(copy[1], 2),
        "multi_copy_gbs": round(copy[counts[-1]], 2),
    }
