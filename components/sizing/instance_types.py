"""The EC2 instance types this package supports, with the hardware facts sizing needs.

A static catalog (no AWS calls, no I/O): settings validation and the sizing planner
read it. :func:`lookup` turns a name such as ``"c7i.xlarge"`` into an
:class:`InstanceType` or raises :class:`UnknownInstanceTypeError` listing what is
supported.

Where the figures come from
---------------------------
- vCPUs, memory, GPU count: the AWS instance type pages (docs.aws.amazon.com/ec2/latest/
  instancetypes/: "Compute optimized", "General purpose", "Memory optimized",
  "Accelerated computing"); GPU sizes also in the AWS Batch GPU table. Memory is in GiB.
- Physical cores: Intel (c7i/m7i/r7i, t3, g4dn) and the AMD EPYC hosts of g5/g6/g6e run
  two hyperthreads per core, so ``physical_cores = vcpus / 2``. AMD 4th-gen EPYC in
  c7a/m7a and every Graviton give one full core per vCPU (no SMT).
- ``gpu_memory_gib`` is the memory one GPU reports to ``nvidia-smi`` (what CUDA can
  allocate from), not the marketing "GB": T4 15360 MiB, A10G 23028 MiB, L4 23034 MiB,
  L40S 46068 MiB.
- ``gpu_memory_bandwidth_gbs``: NVIDIA datasheets: T4 320, A10G 600, L4 300, L40S 864 GB/s.
- ``memory_bandwidth_gbs`` (host DRAM): the achievable (STREAM-like) read bandwidth of
  the socket the instance runs on: channels x transfer rate x 8 bytes, times 0.8.
  AWS does not partition memory bandwidth between the instances on a host, so this is
  what one instance can reach when its neighbours are quiet; how much of it a small
  instance actually pulls is bounded by its cores (``per_core_bandwidth_gbs`` in
  ``components.sizing.calibration.Calibration``, measured at ~19 GB/s per llama.cpp thread). The
  first version of this catalog used the vCPU share of the host instead: it put c7a.large
  at 9.6 GB/s where a 2-vCPU Genoa guest measured 30-35 GB/s (benchmarks/
  calibration_results.json). Per socket:

    families     CPU (per AWS)                       DRAM per socket   peak GB/s
    c7i/m7i/r7i  Xeon 8488C (Sapphire Rapids)        8ch DDR5-4800     307.2
    c7a/m7a      EPYC 9R14 (Genoa)                   12ch DDR5-4800    460.8
    c7g/m7g      Graviton3                           8ch DDR5-4800     307.2
    c8g          Graviton4                           12ch DDR5-5600    537.6
    t3           Xeon 8175M/8259CL (Skylake/CLX)     6ch DDR4-2666     128.0
    g4dn         Xeon 8259CL (Cascade Lake)          6ch DDR4-2933     140.8
    g5           EPYC 7R32 (Rome)                    8ch DDR4-3200     204.8
    g6/g6e       EPYC 7R13 (Milan)                   8ch DDR4-3200     204.8

  Large instances share the socket with neighbours: under contention their estimate is
  optimistic. Measure after deploy with benchmarks/bench_endpoint.py.
- ``hourly_usd``: APPROXIMATE on-demand Linux prices in us-east-1 (late 2024 / 2025 price
  list; per-vCPU rates are linear within a family). Use them to compare types, not to
  budget; verify with the AWS pricing calculator.
- ``cpu_isa``: the widest SIMD the CPU offers to llama.cpp (``avx512``, ``avx2`` or
  ``arm64``). Whether LocalAI's build uses it is the sizing module's business.

t3 is burstable: its vCPUs run at a baseline share (20-40%) and spend CPU credits above
it; sustained inference drains the credits (standard mode) or bills surplus credits
(unlimited mode, the t3 default). The planner never suggests a burstable type on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Arch = Literal["x86_64", "arm64"]
CpuIsa = Literal["avx512", "avx2", "arm64", "generic"]


class UnknownInstanceTypeError(ValueError):
    """The instance type is not in the supported catalog (message lists what is)."""


@dataclass(frozen=True, slots=True)
class InstanceType:
    """One supported EC2 instance type. Memory figures are GiB; bandwidths GB/s (10^9)."""

    name: str
    vcpus: int
    physical_cores: int
    memory_gib: float
    arch: Arch
    cpu: str
    cpu_isa: CpuIsa
    memory_bandwidth_gbs: float
    hourly_usd: float
    """Approximate on-demand Linux price in us-east-1 (USD per hour)."""
    gpu_count: int = 0
    gpu_model: str | None = None
    gpu_memory_gib: float = 0.0
    """Per GPU, as nvidia-smi reports it."""
    gpu_memory_bandwidth_gbs: float = 0.0
    """Per GPU."""
    burstable: bool = False

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def size(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def has_gpu(self) -> bool:
        return self.gpu_count > 0

    def describe(self) -> str:
        """Short human description, e.g. 'c7i.xlarge (4 vCPU, 8 GiB, ~$0.179/h)'."""
        parts = [f"{self.vcpus} vCPU", f"{self.memory_gib:g} GiB"]
        if self.gpu_count:
            parts.append(f"{self.gpu_count}x {self.gpu_model} {self.gpu_memory_gib:.1f} GiB")
        if self.arch == "arm64":
            parts.append("arm64")
        if self.burstable:
            parts.append("burstable")
        parts.append(f"~${self.hourly_usd:.3f}/h")
        return f"{self.name} ({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    arch: Arch
    cpu: str
    cpu_isa: CpuIsa
    smt: bool
    socket_bandwidth_gbs: float
    # size -> (vcpus, memory GiB, GPU count, approx. $/h)
    sizes: dict[str, tuple[int, float, int, float]]
    gpu_model: str | None = None
    gpu_memory_gib: float = 0.0
    gpu_memory_bandwidth_gbs: float = 0.0
    burstable: bool = False


ACHIEVABLE_SHARE_OF_PEAK = 0.8
"""STREAM-like read bandwidth is about 80% of the theoretical DRAM peak."""


def _ddr_gbs(channels: int, mt_s: int) -> float:
    """Theoretical peak of one socket: channels x MT/s x 8 bytes."""
    return channels * mt_s * 8 / 1000


_CPU_SIZES = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32}
_CPU_SIZES |= {"12xlarge": 48, "16xlarge": 64}


def _linear_sizes(gib_per_vcpu: float, usd_per_vcpu_hour: float) -> dict:
    return {
        size: (vcpus, vcpus * gib_per_vcpu, 0, round(vcpus * usd_per_vcpu_hour, 5))
        for size, vcpus in _CPU_SIZES.items()
    }


_SPR = _ddr_gbs(8, 4800)  # 307.2 GB/s per socket
_GENOA = _ddr_gbs(12, 4800)  # 460.8
_GRAVITON4 = _ddr_gbs(12, 5600)  # 537.6
_DDR4_3200_8CH = _ddr_gbs(8, 3200)  # 204.8

_FAMILIES: tuple[_Family, ...] = (
    # -- Intel Sapphire Rapids: AVX-512 (and AMX), SMT ------------------------------------
    _Family("c7i", "x86_64", "Intel Xeon 8488C", "avx512", True, _SPR,
            _linear_sizes(2, 0.044625)),  # c7i.xlarge $0.1785
    _Family("m7i", "x86_64", "Intel Xeon 8488C", "avx512", True, _SPR,
            _linear_sizes(4, 0.0504)),  # m7i.xlarge $0.2016
    _Family("r7i", "x86_64", "Intel Xeon 8488C", "avx512", True, _SPR,
            _linear_sizes(8, 0.06615)),  # r7i.xlarge $0.2646
    # -- AMD Genoa: AVX-512, one core per vCPU ---------------------------------------------
    _Family("c7a", "x86_64", "AMD EPYC 9R14", "avx512", False, _GENOA,
            _linear_sizes(2, 0.0513175)),  # c7a.xlarge $0.20527
    _Family("m7a", "x86_64", "AMD EPYC 9R14", "avx512", False, _GENOA,
            _linear_sizes(4, 0.05796)),  # m7a.xlarge $0.23184
    # -- Graviton: arm64, one core per vCPU -------------------------------------------------
    _Family("c7g", "arm64", "AWS Graviton3", "arm64", False, _SPR,
            _linear_sizes(2, 0.03625)),  # c7g.xlarge $0.145; Graviton3 is 8ch DDR5-4800
    _Family("m7g", "arm64", "AWS Graviton3", "arm64", False, _SPR,
            _linear_sizes(4, 0.0408)),  # m7g.xlarge $0.1632
    _Family("c8g", "arm64", "AWS Graviton4", "arm64", False, _GRAVITON4,
            _linear_sizes(2, 0.03988)),  # c8g.xlarge $0.15952
    # -- Burstable (baseline CPU share + credits) ------------------------------------------
    _Family("t3", "x86_64", "Intel Xeon 8175M/8259CL", "avx512", True,
            _ddr_gbs(6, 2666),
            {"medium": (2, 4, 0, 0.0416), "large": (2, 8, 0, 0.0832),
             "xlarge": (4, 16, 0, 0.1664), "2xlarge": (8, 32, 0, 0.3328)},
            burstable=True),
    # -- NVIDIA GPU families -----------------------------------------------------------------
    _Family("g4dn", "x86_64", "Intel Xeon 8259CL", "avx512", True, _ddr_gbs(6, 2933),
            {"xlarge": (4, 16, 1, 0.526), "2xlarge": (8, 32, 1, 0.752),
             "4xlarge": (16, 64, 1, 1.204), "8xlarge": (32, 128, 1, 2.176),
             "12xlarge": (48, 192, 4, 3.912), "16xlarge": (64, 256, 1, 4.352)},
            gpu_model="T4", gpu_memory_gib=15360 / 1024, gpu_memory_bandwidth_gbs=320),
    _Family("g5", "x86_64", "AMD EPYC 7R32", "avx2", True, _DDR4_3200_8CH,
            {"xlarge": (4, 16, 1, 1.006), "2xlarge": (8, 32, 1, 1.212),
             "4xlarge": (16, 64, 1, 1.624), "8xlarge": (32, 128, 1, 2.448),
             "12xlarge": (48, 192, 4, 5.672), "16xlarge": (64, 256, 1, 4.096)},
            gpu_model="A10G", gpu_memory_gib=23028 / 1024, gpu_memory_bandwidth_gbs=600),
    _Family("g6", "x86_64", "AMD EPYC 7R13", "avx2", True, _DDR4_3200_8CH,
            {"xlarge": (4, 16, 1, 0.8048), "2xlarge": (8, 32, 1, 0.9776),
             "4xlarge": (16, 64, 1, 1.3232), "8xlarge": (32, 128, 1, 2.0144),
             "12xlarge": (48, 192, 4, 4.6016), "16xlarge": (64, 256, 1, 3.3968)},
            gpu_model="L4", gpu_memory_gib=23034 / 1024, gpu_memory_bandwidth_gbs=300),
    _Family("g6e", "x86_64", "AMD EPYC 7R13", "avx2", True, _DDR4_3200_8CH,
            {"xlarge": (4, 32, 1, 1.861), "2xlarge": (8, 64, 1, 2.24208),
             "4xlarge": (16, 128, 1, 3.00424), "8xlarge": (32, 256, 1, 4.52856),
             "12xlarge": (48, 384, 4, 10.49264), "16xlarge": (64, 512, 1, 7.57656)},
            gpu_model="L40S", gpu_memory_gib=46068 / 1024, gpu_memory_bandwidth_gbs=864),
)  # fmt: skip


def _build(family: _Family, size: str) -> InstanceType:
    vcpus, memory_gib, gpus, price = family.sizes[size]
    return InstanceType(
        name=f"{family.name}.{size}",
        vcpus=vcpus,
        physical_cores=vcpus // 2 if family.smt else vcpus,
        memory_gib=float(memory_gib),
        arch=family.arch,
        cpu=family.cpu,
        cpu_isa=family.cpu_isa,
        memory_bandwidth_gbs=round(family.socket_bandwidth_gbs * ACHIEVABLE_SHARE_OF_PEAK, 1),
        hourly_usd=price,
        gpu_count=gpus,
        gpu_model=family.gpu_model if gpus else None,
        gpu_memory_gib=family.gpu_memory_gib if gpus else 0.0,
        gpu_memory_bandwidth_gbs=float(family.gpu_memory_bandwidth_gbs) if gpus else 0.0,
        burstable=family.burstable,
    )


CATALOG: dict[str, InstanceType] = {
    f"{family.name}.{size}": _build(family, size) for family in _FAMILIES for size in family.sizes
}
"""Every supported instance type by name, CPU families first, cheapest size first."""

FAMILIES: dict[str, tuple[str, ...]] = {f.name: tuple(f.sizes) for f in _FAMILIES}
"""Supported family -> its supported sizes, smallest first."""

GPU_FAMILIES = frozenset(f.name for f in _FAMILIES if f.gpu_model)
BURSTABLE_FAMILIES = frozenset(f.name for f in _FAMILIES if f.burstable)


def lookup(name: str) -> InstanceType:
    """The catalog entry for ``name``; :class:`UnknownInstanceTypeError` if unsupported."""
    if not isinstance(name, str):
        raise UnknownInstanceTypeError(f"instance type must be a string, got {name!r}")
    key = name.strip().lower()
    if key in CATALOG:
        return CATALOG[key]
    family, _dot, size = key.partition(".")
    if family not in FAMILIES:
        raise UnknownInstanceTypeError(
            f"instance type {name!r} is not supported: unknown family {family!r}. "
            f"Supported families: {', '.join(FAMILIES)} "
            f"(NVIDIA GPU: {', '.join(f for f in FAMILIES if f in GPU_FAMILIES)})"
        )
    raise UnknownInstanceTypeError(
        f"instance type {name!r} is not supported: family {family} comes in sizes "
        f"{', '.join(FAMILIES[family])} (got {size!r})"
    )


def cpu_types() -> list[InstanceType]:
    """Catalog entries without a GPU."""
    return [t for t in CATALOG.values() if not t.has_gpu]


def gpu_types() -> list[InstanceType]:
    """Catalog entries with at least one NVIDIA GPU."""
    return [t for t in CATALOG.values() if t.has_gpu]
