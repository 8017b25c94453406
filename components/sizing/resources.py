"""What the LocalAI container can get on one machine: :class:`HostResources`.

Container limits leave room for the OS: memory = host memory minus
``max(1 GiB, 10%)`` on a VM (``max(2 GiB, 25%)`` on a local machine, which also runs
the developer's desktop); CPUs = vCPUs minus 0.5 (VM, >= 4 vCPUs; 0.25 below) or minus
1 (local, >= 4). ``memory_limit_mb`` is MiB, Docker's ``m`` unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.sizing.instance_types import InstanceType

MIB = 1024**2
GIB = 1024**3


# -- container limits -----------------------------------------------------------------------
VM_MEMORY_RESERVE_MIN_MIB = 1024
VM_MEMORY_RESERVE_SHARE = 0.10
LOCAL_MEMORY_RESERVE_MIN_MIB = 2048
LOCAL_MEMORY_RESERVE_SHARE = 0.25
LOCAL_DEFAULT_BANDWIDTH_GBS = 40.0
"""Assumed when the local host's DRAM bandwidth is unknown: dual-channel DDR4-3200 peaks
at 51.2 GB/s; most laptops and desktops sit between 40 and 100."""
LOCAL_DEFAULT_GPU_BANDWIDTH_GBS = 250.0


@dataclass(frozen=True)
class HostResources:
    """What the LocalAI container can get on one machine.

    ``gpu_memory_mib`` and ``gpu_memory_bandwidth_gbs`` are per GPU. The OS reserves
    (``memory_reserve_mib``, ``cpu_reserve``) are filled in from the VM rule when not
    given; :meth:`local` applies the local-machine rule.
    """

    name: str
    vcpus: int
    physical_cores: int
    memory_mib: int
    arch: str
    gpu_count: int = 0
    gpu_memory_mib: int = 0
    memory_bandwidth_gbs: float = LOCAL_DEFAULT_BANDWIDTH_GBS
    gpu_memory_bandwidth_gbs: float = 0.0
    hourly_usd: float | None = None
    cpu_isa: str = "avx2"
    gpu_model: str | None = None
    burstable: bool = False
    memory_reserve_mib: int | None = None
    cpu_reserve: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.vcpus < 1:
            problems.append(f"vcpus must be >= 1 (got {self.vcpus})")
        if not 1 <= self.physical_cores <= max(self.vcpus, 1):
            problems.append(
                f"physical_cores must be between 1 and vcpus={self.vcpus} "
                f"(got {self.physical_cores})"
            )
        if self.memory_mib <= 0:
            problems.append(f"memory_mib must be > 0 (got {self.memory_mib})")
        if self.arch not in ("x86_64", "arm64"):
            problems.append(f"arch must be 'x86_64' or 'arm64' (got {self.arch!r})")
        if self.gpu_count < 0 or (self.gpu_count > 0 and self.gpu_memory_mib <= 0):
            problems.append(
                f"a GPU host needs gpu_memory_mib > 0 (gpu_count={self.gpu_count}, "
                f"gpu_memory_mib={self.gpu_memory_mib})"
            )
        if self.memory_bandwidth_gbs <= 0:
            problems.append(f"memory_bandwidth_gbs must be > 0 (got {self.memory_bandwidth_gbs})")
        if problems:
            raise ValueError(f"host {self.name!r}: " + "; ".join(problems))
        if self.memory_reserve_mib is None:
            reserve = max(VM_MEMORY_RESERVE_MIN_MIB, VM_MEMORY_RESERVE_SHARE * self.memory_mib)
            object.__setattr__(self, "memory_reserve_mib", math.ceil(reserve))
        if self.cpu_reserve is None:
            cpu_reserve = 0.5 if self.vcpus >= 4 else 0.25 if self.vcpus >= 2 else 0.0
            object.__setattr__(self, "cpu_reserve", cpu_reserve)

    @classmethod
    def from_instance_type(cls, it: InstanceType) -> HostResources:
        return cls(
            name=it.name,
            vcpus=it.vcpus,
            physical_cores=it.physical_cores,
            memory_mib=round(it.memory_gib * 1024),
            arch=it.arch,
            gpu_count=it.gpu_count,
            gpu_memory_mib=round(it.gpu_memory_gib * 1024),
            memory_bandwidth_gbs=it.memory_bandwidth_gbs,
            gpu_memory_bandwidth_gbs=it.gpu_memory_bandwidth_gbs,
            hourly_usd=it.hourly_usd,
            cpu_isa=it.cpu_isa,
            gpu_model=it.gpu_model,
            burstable=it.burstable,
        )

    @classmethod
    def local(
        cls,
        cpu_count: int,
        physical_cores: int,
        memory_mib: int,
        memory_bandwidth_gbs: float | None = None,
        *,
        arch: str = "x86_64",
        cpu_isa: str = "avx2",
        gpu_count: int = 0,
        gpu_memory_mib: int = 0,
        gpu_model: str | None = None,
        gpu_memory_bandwidth_gbs: float | None = None,
        name: str = "local Docker host",
    ) -> HostResources:
        """The machine running the local Docker daemon; it also runs a desktop."""
        reserve = max(LOCAL_MEMORY_RESERVE_MIN_MIB, LOCAL_MEMORY_RESERVE_SHARE * memory_mib)
        return cls(
            name=name,
            vcpus=cpu_count,
            physical_cores=physical_cores,
            memory_mib=memory_mib,
            arch=arch,
            gpu_count=gpu_count,
            gpu_memory_mib=gpu_memory_mib,
            memory_bandwidth_gbs=memory_bandwidth_gbs or LOCAL_DEFAULT_BANDWIDTH_GBS,
            gpu_memory_bandwidth_gbs=(
                (gpu_memory_bandwidth_gbs or LOCAL_DEFAULT_GPU_BANDWIDTH_GBS) if gpu_count else 0.0
            ),
            hourly_usd=None,
            cpu_isa=cpu_isa,
            gpu_model=gpu_model,
            memory_reserve_mib=min(math.ceil(reserve), max(memory_mib - 512, 0)),
            cpu_reserve=1.0 if cpu_count >= 4 else 0.5 if cpu_count >= 2 else 0.0,
        )

    @property
    def has_gpu(self) -> bool:
        return self.gpu_count > 0

    @property
    def default_memory_limit_mib(self) -> int:
        return self.memory_mib - (self.memory_reserve_mib or 0)

    @property
    def default_cpu_limit(self) -> float:
        """vCPUs minus the OS reserve, but never fewer than the default thread count:
        llama.cpp threads spin, and a quota below them throttles every token (2 threads
        in 1.5 CPUs decoded 23% slower than in 2, benchmarks/calibration_results.json).
        On SMT types the reserve comes out of the sibling hyperthreads."""
        return max(self.vcpus - (self.cpu_reserve or 0.0), float(self.physical_cores), 0.25)
