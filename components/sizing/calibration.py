"""Every constant of the speed estimates (:class:`Calibration`), fitted by
``benchmarks/calibrate_cpu.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

LOCALAI_CPU_IMAGE_HAS_AVX512 = False
"""LocalAI v2.24.0 CPU images ship llama-cpp-avx, -avx2 and -fallback builds only
(``-DGGML_AVX512=off``), so AVX-512 CPUs run the AVX2 kernels."""


@dataclass(frozen=True)
class Calibration:
    """Every constant of the speed estimates, in one place.

    Calibrated by ``benchmarks/calibrate_cpu.py`` on a 2-vCPU AMD EPYC (Genoa) KVM guest
    with an AVX2-only llama.cpp build, like LocalAI v2.24's CPU image (random-weight
    Q4_0 GGUFs with the real shapes of qwen2.5-0.5b and phi-3.5-mini; all runs in
    ``benchmarks/calibration_results.json``; README "Performance"). Fitted there:

    - ``per_core_bandwidth_gbs`` 19: what one llama.cpp thread streams (1-thread decode).
    - ``cpu_bandwidth_efficiency`` 0.82: decode speed relative to the achievable (STREAM-
      like read) bandwidth, which is what ``HostResources.memory_bandwidth_gbs`` holds.
    - ``decode_overhead_ms`` 3: per-token sampling and scheduling on top of the reads.
    - ``prefill_gflops_per_core_avx2`` 97.3 (and 145.6 with AVX-512 kernels, which
      LocalAI's CPU images do not have; see ``LOCALAI_CPU_IMAGE_HAS_AVX512``).

    Not measured here (no such hardware): ``prefill_gflops_per_core_arm64`` is the
    literature estimate scaled by the factor the x86 fit found over its own literature
    estimate (x2.4); the GPU figures are literature-based:

    - ``gpu_bandwidth_efficiency``: llama.cpp CUDA decode of 7-8B Q4_K_M reaches ~65-75%
      of the GPU's memory bandwidth (Llama-3-8B Q4_K_M: ~40-45 tok/s on an L4).
    - ``gpu_prefill_tflops``: effective llama.cpp (MMQ) throughput for a short prompt,
      well below datasheet peaks (T4 65, A10G 125, L4 121, L40S 362 TFLOP/s fp16 tensor).
    - ``ttft_overhead_ms``: LocalAI HTTP + template + gRPC + tokenization + sampling.
    """

    per_core_bandwidth_gbs: float = 19.0
    cpu_bandwidth_efficiency: float = 0.82
    gpu_bandwidth_efficiency: float = 0.7
    prefill_gflops_per_core_avx512: float = 145.6
    prefill_gflops_per_core_avx2: float = 97.3
    prefill_gflops_per_core_arm64: float = 85.0
    prefill_gflops_per_core_generic: float = 10.0
    gpu_prefill_tflops: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType(
            {"T4": 8.0, "A10G": 20.0, "L4": 15.0, "L40S": 45.0}
        )
    )
    gpu_prefill_tflops_unknown: float = 5.0
    decode_overhead_ms: float = 3.0
    ttft_overhead_ms: float = 50.0
    source: str = (
        "benchmarks/calibrate_cpu.py --fit on a 2-vCPU AMD EPYC KVM guest (AVX2 build); "
        "see benchmarks/calibration_results.json"
    )

    def prefill_gflops_per_core(self, isa: str) -> float:
        return {
            "avx512": self.prefill_gflops_per_core_avx512,
            "avx2": self.prefill_gflops_per_core_avx2,
            "arm64": self.prefill_gflops_per_core_arm64,
        }.get(isa, self.prefill_gflops_per_core_generic)

    def gpu_tflops(self, gpu_model: str | None) -> float:
        return self.gpu_prefill_tflops.get(gpu_model or "", self.gpu_prefill_tflops_unknown)


DEFAULT_CALIBRATION = Calibration()
