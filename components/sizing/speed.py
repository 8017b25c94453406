"""Speed model: decode tokens/s and time to first token for one loaded model.


Speed model (estimates, not promises; constants in :class:`Calibration`):

- Decode is memory-bandwidth bound. Seconds per token = bytes read on the CPU / CPU
  effective bandwidth + bytes read on the GPU / GPU effective bandwidth + a fixed
  per-token overhead. Bytes read = the weights of the layers (and output head) on that
  device + their KV cache at ``DECODE_REFERENCE_TOKENS`` tokens of context. CPU
  effective bandwidth = ``min(host bandwidth, cores used x per-core bandwidth) x
  efficiency``; cores used = ``min(threads, physical cores, cpu limit)``.
- Time to first token for a ``TTFT_PROMPT_TOKENS``-token prompt: prefill is compute
  bound, ``2 x parameters x tokens`` FLOP shared between CPU (cores used x per-core
  effective GFLOP/s for the SIMD level LocalAI's llama.cpp build uses) and GPU
  (effective TFLOP/s per GPU model) in proportion to the weights each holds; each part
  takes at least the time to read its weights once (roofline); plus a fixed overhead
  (HTTP, template, tokenization, sampling). Partial offload ignores llama.cpp's copying
- Throughput with parallel slots (:func:`batched_tokens_per_second`): llama.cpp's server
  decodes every busy slot in one batch (LocalAI v2.24.0's ``backend/cpp/llama/grpc-server.cpp``,
  ``update_slots``), so one step reads the weights once for all of them. A step of ``n``
  slots takes ``max(weights read, n x 2 x weights-parameters FLOP at the prefill rate)`` plus
  each slot's KV-cache read and per-token overhead, and yields ``n`` tokens. Not measured
  here with parallel slots: ``benchmarks/bench_endpoint.py --hourly-usd`` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.sizing.calibration import LOCALAI_CPU_IMAGE_HAS_AVX512, Calibration
from components.sizing.memory import Load
from components.sizing.resources import HostResources

TTFT_TARGET_MS = 500.0
TTFT_PROMPT_TOKENS = 64
DECODE_REFERENCE_TOKENS = 64 + 128
"""Context filled when decode speed is estimated: a short prompt plus half an answer."""


def kernel_isa(host: HostResources, *, cuda_image: bool = False) -> str:
    """The SIMD level of the llama.cpp build that runs the CPU part. LocalAI v2.24.0's CUDA
    images build it with AVX, AVX2, FMA and F16C off (Dockerfile and backend Makefile, see
    ../shared/reference): layers left on the CPU in a partial offload run generic kernels."""
    if cuda_image:
        return "generic"
    if host.arch == "arm64":
        return "arm64"
    if host.cpu_isa == "avx512" and not LOCALAI_CPU_IMAGE_HAS_AVX512:
        return "avx2"
    return host.cpu_isa


@dataclass(frozen=True)
class _Split:
    """Where one token's reads and arithmetic happen: bytes of weights and KV cache on each
    device, each device's effective bandwidth, and the CPU's kernels and FLOP rate."""

    cpu_weights: float
    gpu_weights: float
    cpu_kv: float
    gpu_kv: float
    cpu_bw: float
    gpu_bw: float
    isa: str
    cpu_flops_rate: float


def _split(host: HostResources, load: Load, cores_used: float, c: Calibration) -> _Split:
    s = load.shape
    kv_token_layer = s.kv_layer / s.n_ctx  # bytes per token per layer
    gpu_blocks = load.gpu_blocks if load.use_gpu else 0
    cpu_blocks = s.facts.layers - gpu_blocks
    isa = kernel_isa(host, cuda_image=load.use_gpu)
    return _Split(
        cpu_weights=cpu_blocks * s.layer + (0.0 if load.full and load.use_gpu else s.output),
        gpu_weights=gpu_blocks * s.layer + (s.output if load.full and load.use_gpu else 0.0),
        cpu_kv=cpu_blocks * kv_token_layer * DECODE_REFERENCE_TOKENS,
        gpu_kv=gpu_blocks * kv_token_layer * DECODE_REFERENCE_TOKENS,
        cpu_bw=(
            min(host.memory_bandwidth_gbs, cores_used * c.per_core_bandwidth_gbs)
            * c.cpu_bandwidth_efficiency
            * 1e9
        ),
        gpu_bw=host.gpu_memory_bandwidth_gbs * c.gpu_bandwidth_efficiency * 1e9,
        isa=isa,
        cpu_flops_rate=cores_used * c.prefill_gflops_per_core(isa) * 1e9,
    )


def estimates(
    host: HostResources,
    load: Load,
    *,
    cores_used: float,
    calibration: Calibration,
) -> tuple[float, float]:
    """(tokens per second, TTFT ms) for one loaded model."""
    s = load.shape
    c = calibration
    p = _split(host, load, cores_used, c)
    cpu_read = (p.cpu_weights + p.cpu_kv) / p.cpu_bw
    if p.isa == "generic":
        # Generic kernels cannot keep up with memory: 2 FLOP per weight per token.
        cpu_read = max(
            cpu_read, 2.0 * p.cpu_weights / s.facts.bytes_per_parameter / p.cpu_flops_rate
        )
    seconds = cpu_read + c.decode_overhead_ms / 1000
    if p.gpu_weights:
        seconds += (p.gpu_weights + p.gpu_kv) / p.gpu_bw
    tokens_per_second = 1.0 / seconds

    flops = 2.0 * s.facts.parameters * TTFT_PROMPT_TOKENS
    gpu_share = p.gpu_weights / (p.gpu_weights + p.cpu_weights)
    prefill = 0.0
    if gpu_share < 1.0:
        prefill += max(flops * (1 - gpu_share) / p.cpu_flops_rate, p.cpu_weights / p.cpu_bw)
    if gpu_share > 0.0:
        gpu_rate = c.gpu_tflops(host.gpu_model) * 1e12
        prefill += max(flops * gpu_share / gpu_rate, p.gpu_weights / p.gpu_bw)
    ttft_ms = prefill * 1000 + c.ttft_overhead_ms
    return tokens_per_second, ttft_ms


def batched_tokens_per_second(
    host: HostResources,
    load: Load,
    *,
    slots: int,
    cores_used: float,
    calibration: Calibration,
) -> float:
    """Output tokens per second of ``slots`` streams decoding together (the roofline above).

    With one slot it is :func:`estimates`' decode speed on every host whose decode is bound
    by memory reads, as llama.cpp's SIMD kernels are; generic kernels (the CPU layers of a
    partial offload) differ by the KV read when arithmetic is the longer part."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1 (got {slots})")
    c = calibration
    p = _split(host, load, cores_used, c)
    per_param = load.shape.facts.bytes_per_parameter
    # The CPU part: weights streamed once a step, or the step's arithmetic, whichever is longer.
    cpu_compute = slots * 2.0 * p.cpu_weights / per_param / p.cpu_flops_rate
    step = max(p.cpu_weights / p.cpu_bw, cpu_compute) + slots * (
        p.cpu_kv / p.cpu_bw + c.decode_overhead_ms / 1000
    )
    if p.gpu_weights:
        gpu_compute = (
            slots * 2.0 * p.gpu_weights / per_param / (c.gpu_tflops(host.gpu_model) * 1e12)
        )
        step += max(p.gpu_weights / p.gpu_bw, gpu_compute) + slots * p.gpu_kv / p.gpu_bw
    return slots / step
