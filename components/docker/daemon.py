"""What the local Docker daemon offers: CPUs, memory and the NVIDIA runtime.

The daemon is the host the local target deploys to (with Docker Desktop it is a VM
with its own CPU and memory budget), so sizing and ``accelerator: auto`` ask it,
not the machine running Pulumi. The query never raises: an unreachable daemon is
reported as such and the caller falls back to CPU.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

Runner = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class DaemonInfo:
    reachable: bool
    ncpu: int | None = None
    mem_total_bytes: int | None = None
    runtimes: frozenset[str] = field(default_factory=frozenset)
    error: str | None = None

    @property
    def has_nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes


def query_daemon(runner: Runner = subprocess.run, timeout_s: float = 15.0) -> DaemonInfo:
    """``docker info`` as a :class:`DaemonInfo`; never raises."""
    try:
        done = runner(
            ["docker", "info", "--format", "{{json .}}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        return DaemonInfo(reachable=False, error="the docker CLI is not installed")
    except (OSError, subprocess.SubprocessError) as exc:
        return DaemonInfo(reachable=False, error=f"docker info failed: {exc}")
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip().splitlines()
        return DaemonInfo(
            reachable=False,
            error=f"docker info failed: {detail[-1] if detail else done.returncode}",
        )
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        return DaemonInfo(reachable=False, error="docker info did not return JSON")
    runtimes = info.get("Runtimes") or {}
    ncpu = info.get("NCPU")
    mem = info.get("MemTotal")
    return DaemonInfo(
        reachable=True,
        ncpu=int(ncpu) if isinstance(ncpu, int) and ncpu > 0 else None,
        mem_total_bytes=int(mem) if isinstance(mem, int) and mem > 0 else None,
        runtimes=frozenset(runtimes) if isinstance(runtimes, dict) else frozenset(),
    )
