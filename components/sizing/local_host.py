"""Describe the machine that runs the local Docker daemon, for :mod:`components.sizing.planner`.

Kept apart from the pure planner because it reads the machine: CPU affinity, physical
cores (``/proc/cpuinfo`` core ids, else ``lscpu``), memory (``/proc/meminfo``; macOS
``sysctl``), SIMD level and NVIDIA GPUs (``nvidia-smi``, when present). Every reader
falls back to something safe instead of failing.

It describes the machine this program runs on. When the Docker daemon runs elsewhere
(``DOCKER_HOST`` on another machine) or in a VM with its own limits (Docker Desktop on
macOS and Windows), pass the daemon's figures (``docker info``: NCPU, MemTotal) to
:meth:`HostResources.local` instead.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from components.sizing.resources import HostResources

Runner = Callable[[list[str]], str | None]

# Per-GPU memory bandwidth (GB/s) of NVIDIA parts a developer may have; others get the
# planner's conservative default.
_GPU_BANDWIDTH_GBS = {
    "T4": 320.0,
    "A10G": 600.0,
    "L4": 300.0,
    "L40S": 864.0,
    "RTX 3060": 360.0,
    "RTX 3090": 936.0,
    "RTX 4060": 272.0,
    "RTX 4070": 504.0,
    "RTX 4080": 717.0,
    "RTX 4090": 1008.0,
}


def _run(command: list[str]) -> str | None:
    """Output of a command, or None if it is missing, fails or takes over 5 s."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_meminfo(text: str) -> int | None:
    """MemTotal from /proc/meminfo, in MiB."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) // 1024
    return None


def parse_cpuinfo(text: str, cpus: set[int] | None = None) -> tuple[int | None, str]:
    """(physical cores among ``cpus`` or None when not listed, SIMD level) from /proc/cpuinfo.

    The SIMD level is ``avx512`` (avx512f), ``avx2``, ``arm64`` (any ARM ``Features``
    line) or ``generic``.
    """
    cores: set[tuple[str, str]] = set()
    isa = "generic"
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields or not fields["processor"].isdigit():
            continue
        if cpus is not None and int(fields["processor"]) not in cpus:
            continue
        flags = set(fields.get("flags", "").split())
        if "avx512f" in flags:
            isa = "avx512"
        elif "avx2" in flags and isa != "avx512":
            isa = "avx2"
        elif "Features" in fields or "CPU implementer" in fields:
            isa = "arm64"
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return (len(cores) or None), isa


def parse_lscpu(text: str, cpus: set[int] | None = None) -> int | None:
    """Physical cores from ``lscpu -p=CPU,CORE,SOCKET`` output."""
    cores: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        if cpus is not None and int(parts[0]) not in cpus:
            continue
        cores.add((parts[2], parts[1]))
    return len(cores) or None


def parse_nvidia_smi(text: str) -> list[tuple[str, int]]:
    """[(name, memory MiB)] from ``nvidia-smi --query-gpu=name,memory.total
    --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        name, sep, memory = line.rpartition(",")
        if sep and memory.strip().isdigit():
            gpus.append((name.strip(), int(memory.strip())))
    return gpus


def _known_gpu(name: str) -> str | None:
    """'NVIDIA L4' -> 'L4' (the key sizing's calibration and bandwidth tables use)."""
    for key in sorted(_GPU_BANDWIDTH_GBS, key=len, reverse=True):
        if key in name:
            return key
    return None


def _arch() -> str:
    machine = platform.machine().lower()
    return "arm64" if machine in ("arm64", "aarch64") else "x86_64"


def local_host_resources(
    *,
    proc: Path = Path("/proc"),
    run: Runner = _run,
    system: str | None = None,
) -> HostResources:
    """This machine as a :class:`HostResources` (local reserves applied)."""
    system = system or platform.system()
    try:
        allowed: set[int] | None = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = None
    vcpus = len(allowed) if allowed else (os.cpu_count() or 1)
    arch = _arch()
    physical: int | None = None
    memory_mib: int | None = None
    isa = "arm64" if arch == "arm64" else "avx2"

    if system == "Darwin":
        memsize = run(["sysctl", "-n", "hw.memsize"])
        cores = run(["sysctl", "-n", "hw.physicalcpu"])
        if memsize and memsize.strip().isdigit():
            memory_mib = int(memsize.strip()) // (1024 * 1024)
        if cores and cores.strip().isdigit():
            physical = int(cores.strip())
    else:
        try:
            memory_mib = parse_meminfo((proc / "meminfo").read_text())
        except OSError:
            memory_mib = None
        try:
            physical, isa = parse_cpuinfo((proc / "cpuinfo").read_text(), allowed)
        except OSError:
            physical = None
        if physical is None:
            lscpu = run(["lscpu", "-p=CPU,CORE,SOCKET"])
            physical = parse_lscpu(lscpu, allowed) if lscpu else None
        if isa == "generic" and arch == "arm64":
            isa = "arm64"

    if memory_mib is None:
        try:
            memory_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        except (ValueError, OSError, AttributeError):
            memory_mib = 4096  # unknown: assume a small machine
    physical = min(physical or vcpus, vcpus)

    gpus = parse_nvidia_smi(
        run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]) or ""
    )
    gpu_name = gpus[0][0] if gpus else None
    known = _known_gpu(gpu_name) if gpu_name else None
    return HostResources.local(
        vcpus,
        physical,
        memory_mib,
        arch=arch,
        cpu_isa=isa,
        gpu_count=len(gpus),
        gpu_memory_mib=min(m for _, m in gpus) if gpus else 0,
        gpu_model=known or gpu_name,
        gpu_memory_bandwidth_gbs=_GPU_BANDWIDTH_GBS.get(known or ""),
    )
