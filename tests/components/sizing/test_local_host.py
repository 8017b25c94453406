"""Reading the local Docker host: /proc parsing, fallbacks and the real machine."""

from __future__ import annotations

import os
from pathlib import Path

from components.sizing.local_host import (
    local_host_resources,
    parse_cpuinfo,
    parse_lscpu,
    parse_meminfo,
    parse_nvidia_smi,
)

# Two sockets' worth of a 2-core, 2-thread x86 layout: 4 logical CPUs, 2 physical cores.
X86_CPUINFO = "\n\n".join(
    f"processor\t: {cpu}\nphysical id\t: 0\ncore id\t\t: {cpu % 2}\n"
    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw"
    for cpu in range(4)
)
ARM_CPUINFO = "\n\n".join(
    f"processor\t: {cpu}\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd sve\nCPU implementer\t: 0x41"
    for cpu in range(4)
)
LSCPU = "# CPU,Core,Socket\n0,0,0\n1,1,0\n2,0,0\n3,1,0\n"


def test_meminfo_total_is_read_in_mib() -> None:
    assert parse_meminfo("MemTotal:       24684084 kB\nMemFree: 1 kB\n") == 24105
    assert parse_meminfo("nothing here") is None


def test_cpuinfo_counts_physical_cores_not_hyperthreads() -> None:
    assert parse_cpuinfo(X86_CPUINFO) == (2, "avx512")
    assert parse_cpuinfo(X86_CPUINFO, cpus={0}) == (1, "avx512")  # affinity respected


def test_cpuinfo_without_core_ids_leaves_the_count_to_the_fallback() -> None:
    assert parse_cpuinfo(ARM_CPUINFO) == (None, "arm64")
    assert parse_cpuinfo(X86_CPUINFO.replace(" avx512f avx512bw", "")) == (2, "avx2")


def test_lscpu_parsing_counts_distinct_cores() -> None:
    assert parse_lscpu(LSCPU) == 2
    assert parse_lscpu(LSCPU, cpus={0, 2}) == 1


def test_nvidia_smi_lines_become_gpus() -> None:
    text = "NVIDIA L4, 23034\nNVIDIA L4, 23034\n"
    assert parse_nvidia_smi(text) == [("NVIDIA L4", 23034), ("NVIDIA L4", 23034)]
    assert parse_nvidia_smi("") == []


def test_a_linux_host_is_described_from_proc_and_nvidia_smi(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal:       16777216 kB\n")
    (tmp_path / "cpuinfo").write_text(ARM_CPUINFO)
    calls: list[list[str]] = []

    def run(command: list[str]) -> str | None:
        calls.append(command)
        if command[0] == "lscpu":
            return LSCPU
        if command[0] == "nvidia-smi":
            return "NVIDIA L4, 23034\n"
        return None

    resources = local_host_resources(proc=tmp_path, run=run, system="Linux")
    allowed = os.sched_getaffinity(0)
    layout = {0: 0, 1: 1, 2: 0, 3: 1}  # LSCPU: cpu -> core
    expected = len({core for cpu, core in layout.items() if cpu in allowed}) or len(allowed)
    assert resources.memory_mib == 16384
    assert resources.physical_cores == min(expected, len(allowed))
    assert resources.arch in ("x86_64", "arm64")
    assert resources.gpu_count == 1 and resources.gpu_model == "L4"
    assert resources.gpu_memory_mib == 23034 and resources.gpu_memory_bandwidth_gbs == 300
    assert resources.hourly_usd is None
    assert resources.default_memory_limit_mib == 16384 - 4096  # the local reserve
    assert ["lscpu", "-p=CPU,CORE,SOCKET"] in calls  # cpuinfo had no core ids


def test_missing_tools_and_files_fall_back_to_safe_values(tmp_path: Path) -> None:
    resources = local_host_resources(proc=tmp_path, run=lambda _cmd: None, system="Linux")
    assert resources.vcpus >= 1
    assert resources.physical_cores == resources.vcpus  # unknown layout: count vCPUs
    assert resources.memory_mib > 0
    assert resources.gpu_count == 0


def test_macos_memory_and_cores_come_from_sysctl(tmp_path: Path) -> None:
    answers = {"hw.memsize": "17179869184\n", "hw.physicalcpu": "1\n"}

    def run(command: list[str]) -> str | None:
        return answers.get(command[-1])

    resources = local_host_resources(proc=tmp_path, run=run, system="Darwin")
    assert resources.memory_mib == 16384
    assert resources.physical_cores == 1


def test_this_machine_can_be_described() -> None:
    resources = local_host_resources()
    assert 1 <= resources.physical_cores <= resources.vcpus
    assert resources.memory_mib > 0
    assert resources.default_memory_limit_mib < resources.memory_mib
