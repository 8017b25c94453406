"""Running the llama.cpp server under a CPU quota and accounting for its CPU time."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.calibration.constants import DISTURBED_CORES, FILLER
from benchmarks.calibration.machine import read_file
from benchmarks.calibration.report import log
from benchmarks.endpoint_requests import (
    tag_prompt,
)
from tools.llama_server import LlamaServer


@contextlib.contextmanager
def cpu_quota(limit: float | None) -> Iterator[Path | None]:
    """A cgroup with ``limit`` CPUs of quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``)."""
    if limit is None:
        yield None
        return
    period = 100_000
    quota = round(limit * period)
    name = f"localai-calibrate-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    group = Path("/sys/fs/cgroup") / name if v2 else Path("/sys/fs/cgroup/cpu") / name
    try:
        group.mkdir()
        if v2:
            (group / "cpu.max").write_text(f"{quota} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
    except OSError as exc:
        raise RuntimeError(
            f"--cpu-limit needs a writable cgroup cpu controller ({group}): {exc}"
        ) from None
    try:
        yield group
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, all threads) process ``pid`` has used."""
    if pid is None:
        return 0.0
    stat = read_file(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 15:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _system_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in read_file("/proc/stat").splitlines()[0].split()[1:]]
    if len(values) < 8:
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


class CpuAccount:
    """How much CPU others used while we measured: (machine busy - server - this process)
    / wall time, in cores; and the hypervisor's steal time, in cores."""

    def __init__(self, server: LlamaServer):
        self.server = server

    def __enter__(self) -> CpuAccount:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        wall = end[0] - self._start[0]
        busy, steal, server, own = (e - s for e, s in zip(end[1:], self._start[1:], strict=True))
        self.background_cores = max(busy - server - own, 0.0) / wall if wall > 0 else 0.0
        self.steal_cores = steal / wall if wall > 0 else 0.0

    def _snapshot(self) -> tuple[float, float, float, float, float]:
        busy, steal = _system_cpu()
        times = os.times()
        return (
            time.monotonic(),
            busy,
            steal,
            cpu_seconds(self.server.pid),
            times.user + times.system,
        )


def wait_until_quiet(max_wait_s: float, window_s: float = 2.0) -> float:
    """Wait (up to ``max_wait_s``) for a ``window_s`` window in which the machine uses less
    than ``DISTURBED_CORES`` of CPU (this process excluded); returns the last load seen."""
    deadline = time.monotonic() + max_wait_s
    load = math.inf
    while True:
        busy0, _ = _system_cpu()
        own0 = sum(os.times()[:2])
        time.sleep(window_s)
        busy1, _ = _system_cpu()
        load = max(busy1 - busy0 - (sum(os.times()[:2]) - own0), 0.0) / window_s
        if load <= DISTURBED_CORES or time.monotonic() >= deadline:
            if load > DISTURBED_CORES:
                log(f"warning: the machine is busy ({load:.2f} cores used by others)")
            return load


def prompt_tokens(client: Any, model: str, content: str) -> int:
    """Prompt tokens the server counts for one user message (chat template included)."""
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=1
    )
    if response.usage is None:
        raise RuntimeError("the server reports no usage; cannot size the prompt")
    return int(response.usage.prompt_tokens)


def fit_prompt(client: Any, model: str, target: int) -> tuple[str, int]:
    """(prompt, tokens): filler text that, behind :func:`tag_prompt`'s tag, makes the
    server count ``target`` prompt tokens (or the closest it can)."""
    base = prompt_tokens(client, model, tag_prompt(""))
    if base >= target:
        return "", base
    probe = 400
    per_char = max(prompt_tokens(client, model, tag_prompt(FILLER[:probe])) - base, 1) / probe
    length = round((target - base) / per_char)
    best = ("", base)
    for _ in range(8):
        length = max(0, min(length, len(FILLER)))
        text = FILLER[:length].rstrip() if length else ""
        count = prompt_tokens(client, model, tag_prompt(text))
        if abs(count - target) < abs(best[1] - target):
            best = (text, count)
        if count == target:
            break
        length += max(1, round(abs(target - count) / per_char)) * (1 if count < target else -1)
    return best
