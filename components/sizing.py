"""Hardware-aware sizing: does a model set fit a host, with which limits, and how fast.

Pure functions over :class:`HostResources` (from an EC2 catalog entry or the local
Docker host), :class:`~components.model_facts.ModelFacts` and a :class:`Calibration`.
No I/O, no Pulumi: the caller loads the facts and the host description.

:func:`plan` returns a :class:`SizingPlan` (threads, container limits, ``gpu_layers`` per
model, ``SINGLE_ACTIVE_BACKEND``, cost and speed estimates, warnings) or raises
:class:`SizingError` with the numbers and the cheapest supported instance type that fits.
:func:`volume_size_gb` sizes the EBS weights volume.

Memory model (per loaded model; LocalAI runs one llama.cpp ``grpc-server`` process per
model and keeps every model it has loaded, unless ``SINGLE_ACTIVE_BACKEND`` is set):

- Weights: the GGUF file size (mmap'd; on CPU every page must stay resident or decode
  re-reads the disk). Split into the token embedding (stays on the host: llama.cpp runs
  ``get_rows`` on the CPU), the output head and ``layers`` equal repeating blocks; the
  embedding matrices are ``vocab x n_embd`` parameters at the file's average bytes per
  parameter.
- KV cache: ``2 (K,V) x layers x kv_heads x head_dim x n_ctx x 2 bytes`` (f16, LocalAI
  v2.24's default; flash attention off). **n_ctx is the model's ``context_size`` as a
  total**: LocalAI passes ``context_size`` to llama.cpp as ``n_ctx`` and its grpc-server
  gives each of the ``LLAMACPP_PARALLEL`` slots ``n_ctx / n_parallel`` tokens
  (``const int32_t n_ctx_slot = n_ctx / params.n_parallel``), so parallel requests do
  not multiply the cache; they divide the context each request gets. The plan reports
  that per-request context and warns when it falls below ``MIN_CONTEXT_PER_REQUEST``.
  n_ctx is rounded up to a multiple of 256 (llama.cpp pads the cache).
- Compute buffers: ``1.1 x max(vocab x n_ubatch x 4, n_ctx x n_ubatch x heads x 4)``
  bytes, n_ubatch = 512: the graph's peak is either the f32 logits of a full micro-batch
  or the f32 attention scores (KQ) of one layer, whichever is larger. Checked against
  llama.cpp's logs for Llama-3-8B: 258.5 MiB at n_ctx 2048 (formula: 276), 560 MiB at
  8192 (formula: 563).
- Runtime: ``LOCALAI_PROCESS_MIB`` once (the Go API server), ``BACKEND_PROCESS_MIB`` per
  model process, plus ``CUDA_HOST_OVERHEAD_MIB`` per process on GPU hosts.
- GPU (``use_gpu``): per GPU and model process ``CUDA_VRAM_RESERVE_MIB`` (CUDA context,
  cuBLAS workspace) plus the compute buffer; then whole layers (weights + their KV
  cache) while they fit; the output head last. Layers that do not fit stay in host RAM.
  Models are packed in the configured order (default model first).

Container limits leave room for the OS: memory = host memory minus
``max(1 GiB, 10%)`` on a VM (``max(2 GiB, 25%)`` on a local machine, which also runs
the developer's desktop); CPUs = vCPUs minus 0.5 (VM, >= 4 vCPUs; 0.25 below) or minus
1 (local, >= 4). ``memory_limit_mb`` is MiB, Docker's ``m`` unit.

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
  of CPU-resident weights to the GPU for large batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from components.instance_types import CATALOG, InstanceType
from components.model_facts import ModelFacts

MIB = 1024**2
GIB = 1024**3

GPU_LAYERS_ALL = 99
"""``gpu_layers`` meaning "every layer and the output head" (same value as
``components.model_catalog.ALL_GPU_LAYERS``; LocalAI v2.24's llama.cpp clamps it, and
``-1`` would offload nothing)."""

TTFT_TARGET_MS = 500.0
TTFT_PROMPT_TOKENS = 64
DECODE_REFERENCE_TOKENS = 64 + 128
"""Context filled when decode speed is estimated: a short prompt plus half an answer."""
MIN_CONTEXT_PER_REQUEST = 1024

# -- memory model constants (see the module docstring) -------------------------------------
N_UBATCH = 512
KV_CONTEXT_PADDING = 256
COMPUTE_BUFFER_FACTOR = 1.1
HOST_COMPUTE_SHARE_FULL_OFFLOAD = 0.1
"""With every layer on the GPU the host keeps only a staging buffer (llama.cpp logs
``CUDA_Host compute buffer`` ~24 MiB for Llama-3-8B at 8192; 10% is generous)."""
LOCALAI_PROCESS_MIB = 256
BACKEND_PROCESS_MIB = 160
CUDA_HOST_OVERHEAD_MIB = 512
CUDA_VRAM_RESERVE_MIB = 512

# -- container limits -----------------------------------------------------------------------
VM_MEMORY_RESERVE_MIN_MIB = 1024
VM_MEMORY_RESERVE_SHARE = 0.10
LOCAL_MEMORY_RESERVE_MIN_MIB = 2048
LOCAL_MEMORY_RESERVE_SHARE = 0.25
LOCAL_DEFAULT_BANDWIDTH_GBS = 40.0
"""Assumed when the local host's DRAM bandwidth is unknown: dual-channel DDR4-3200 peaks
at 51.2 GB/s; most laptops and desktops sit between 40 and 100."""
LOCAL_DEFAULT_GPU_BANDWIDTH_GBS = 250.0

# -- EBS weights volume ------------------------------------------------------------------------
VOLUME_FILE_FACTOR = 1.1
VOLUME_HEADROOM_GIB = 10
VOLUME_UNKNOWN_MODEL_GIB = 16
VOLUME_STEP_GIB = 10
VOLUME_MIN_GIB = 20

LOCALAI_CPU_IMAGE_HAS_AVX512 = False
"""LocalAI v2.24.0 CPU images ship llama-cpp-avx, -avx2 and -fallback builds only
(``-DGGML_AVX512=off``), so AVX-512 CPUs run the AVX2 kernels."""


class SizingError(ValueError):
    """The models cannot run with these resources; the message gives the numbers."""


class _CapacityError(SizingError):
    """A model does not fit this host (plan() adds the instance type that fits)."""


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


@dataclass(frozen=True)
class SizingPlan:
    """Runtime settings and estimates for one host and model set.

    ``gpu_layers[m]`` is the value for model ``m``'s YAML: 0 on CPU, a layer count for a
    partial offload, :data:`GPU_LAYERS_ALL` for everything. ``memory_needed_mib[m]`` is
    the host RAM model ``m`` takes while loaded (its backend process included; not the
    shared LocalAI process), ``vram_needed_mib[m]`` its GPU memory over all GPUs.
    """

    host_name: str
    threads: int
    cpu_limit: float
    memory_limit_mb: int
    gpu_layers: Mapping[str, int]
    single_active_backend: bool
    hourly_cost_usd: float | None
    estimated_tokens_per_second: float | None
    estimated_ttft_ms: float | None
    memory_needed_mib: Mapping[str, int]
    vram_needed_mib: Mapping[str, int]
    total_memory_needed_mib: int
    """LocalAI process + every model loaded together (or the largest, single-active)."""
    per_request_context: Mapping[str, int]
    warnings: tuple[str, ...]
    use_gpu: bool = False


# ---------------------------------------------------------------------------------------------
# Memory model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """Byte sizes of one model at one context."""

    facts: ModelFacts
    n_ctx: int
    token_embd: float
    output: float  # the output head's bytes (a copy of token_embd when tied)
    layer: float  # one repeating block's weights
    kv_layer: float  # one layer's KV cache at n_ctx
    compute: float

    @classmethod
    def of(cls, facts: ModelFacts, context: int) -> _Shape:
        n_ctx = math.ceil(context / KV_CONTEXT_PADDING) * KV_CONTEXT_PADDING
        embedding = facts.vocab * facts.n_embd * facts.bytes_per_parameter
        in_file_heads = embedding * (1 if facts.tied_embeddings else 2)
        layer = (facts.file_size_bytes - in_file_heads) / facts.layers
        kv_layer = 2 * facts.kv_heads * facts.head_dim * 2 * n_ctx
        logits = facts.vocab * N_UBATCH * 4
        scores = n_ctx * N_UBATCH * facts.heads * 4
        compute = COMPUTE_BUFFER_FACTOR * max(logits, scores)
        return cls(facts, n_ctx, embedding, embedding, layer, kv_layer, compute)


@dataclass(frozen=True)
class _Load:
    """One model as loaded on one host: where its bytes sit."""

    shape: _Shape
    offload: int  # 0..layers+1; layers+1 = output head on the GPU too
    use_gpu: bool
    gpu_count: int
    placeable: bool = True  # False: its CUDA context and buffers do not fit the VRAM left

    @property
    def gpu_blocks(self) -> int:
        return min(self.offload, self.shape.facts.layers)

    @property
    def full(self) -> bool:
        return self.offload > self.shape.facts.layers

    @property
    def gpu_layers(self) -> int:
        if not self.use_gpu:
            return 0
        return GPU_LAYERS_ALL if self.full else self.offload

    # host side ---------------------------------------------------------------------------
    @property
    def host_weights(self) -> float:
        s = self.shape
        moved = self.gpu_blocks * s.layer
        if self.full and not s.facts.tied_embeddings:
            moved += s.output
        return s.facts.file_size_bytes - moved

    @property
    def host_kv(self) -> float:
        return (self.shape.facts.layers - self.gpu_blocks) * self.shape.kv_layer

    @property
    def host_runtime(self) -> float:
        s = self.shape
        compute = s.compute * (HOST_COMPUTE_SHARE_FULL_OFFLOAD if self.full else 1.0)
        overhead = BACKEND_PROCESS_MIB + (CUDA_HOST_OVERHEAD_MIB if self.use_gpu else 0)
        return compute + overhead * MIB

    @property
    def host_total(self) -> float:
        if not self.placeable:
            return math.inf
        return self.host_weights + self.host_kv + self.host_runtime

    # GPU side ----------------------------------------------------------------------------
    @property
    def vram_total(self) -> float:
        if not self.use_gpu:
            return 0.0
        if not self.placeable:
            return math.inf
        s = self.shape
        fixed = _fixed_vram(s, self.gpu_count)
        blocks = self.gpu_blocks * (s.layer + s.kv_layer)
        return fixed + blocks + (s.output if self.full else 0.0)


def _fixed_vram(shape: _Shape, gpu_count: int) -> float:
    return gpu_count * (CUDA_VRAM_RESERVE_MIB * MIB + shape.compute)


def _offload_into(shape: _Shape, vram_free: float, gpu_count: int) -> int | None:
    """Most layers (0..layers+1) that fit ``vram_free``; None if not even the context fits."""
    room = vram_free - _fixed_vram(shape, gpu_count)
    if room < 0:
        return None
    per_block = shape.layer + shape.kv_layer
    blocks = min(shape.facts.layers, int(room // per_block))
    if blocks == shape.facts.layers and room - blocks * per_block >= shape.output:
        return blocks + 1
    return blocks


@dataclass(frozen=True)
class _Placement:
    loads: dict[str, _Load]
    together: bool


def _place(
    host: HostResources,
    shapes: Sequence[tuple[str, _Shape]],
    *,
    use_gpu: bool,
    together: bool,
) -> _Placement:
    vram_pool = host.gpu_count * host.gpu_memory_mib * MIB
    loads: dict[str, _Load] = {}
    for name, shape in shapes:
        if not use_gpu:
            loads[name] = _Load(shape, 0, False, 0)
            continue
        free = vram_pool if not together else vram_pool - sum(x.vram_total for x in loads.values())
        offload = _offload_into(shape, free, host.gpu_count)
        loads[name] = _Load(shape, offload or 0, True, host.gpu_count, offload is not None)
    return _Placement(loads, together)


# ---------------------------------------------------------------------------------------------
# Speed model
# ---------------------------------------------------------------------------------------------


def _kernel_isa(host: HostResources) -> str:
    if host.arch == "arm64":
        return "arm64"
    if host.cpu_isa == "avx512" and not LOCALAI_CPU_IMAGE_HAS_AVX512:
        return "avx2"
    return host.cpu_isa


def _estimates(
    host: HostResources,
    load: _Load,
    *,
    cores_used: float,
    calibration: Calibration,
) -> tuple[float, float]:
    """(tokens per second, TTFT ms) for one loaded model."""
    s = load.shape
    c = calibration
    kv_token_layer = s.kv_layer / s.n_ctx  # bytes per token per layer
    gpu_blocks = load.gpu_blocks if load.use_gpu else 0
    cpu_blocks = s.facts.layers - gpu_blocks
    gpu_weights = gpu_blocks * s.layer + (s.output if load.full and load.use_gpu else 0.0)
    cpu_weights = cpu_blocks * s.layer + (0.0 if load.full and load.use_gpu else s.output)
    cpu_kv = cpu_blocks * kv_token_layer * DECODE_REFERENCE_TOKENS
    gpu_kv = gpu_blocks * kv_token_layer * DECODE_REFERENCE_TOKENS

    cpu_bw = (
        min(host.memory_bandwidth_gbs, cores_used * c.per_core_bandwidth_gbs)
        * c.cpu_bandwidth_efficiency
        * 1e9
    )
    gpu_bw = host.gpu_memory_bandwidth_gbs * c.gpu_bandwidth_efficiency * 1e9
    seconds = (cpu_weights + cpu_kv) / cpu_bw + c.decode_overhead_ms / 1000
    if gpu_weights:
        seconds += (gpu_weights + gpu_kv) / gpu_bw
    tokens_per_second = 1.0 / seconds

    flops = 2.0 * s.facts.parameters * TTFT_PROMPT_TOKENS
    gpu_share = gpu_weights / (gpu_weights + cpu_weights)
    cpu_flops_rate = cores_used * c.prefill_gflops_per_core(_kernel_isa(host)) * 1e9
    prefill = 0.0
    if gpu_share < 1.0:
        prefill += max(flops * (1 - gpu_share) / cpu_flops_rate, cpu_weights / cpu_bw)
    if gpu_share > 0.0:
        gpu_rate = c.gpu_tflops(host.gpu_model) * 1e12
        prefill += max(flops * gpu_share / gpu_rate, gpu_weights / gpu_bw)
    ttft_ms = prefill * 1000 + c.ttft_overhead_ms
    return tokens_per_second, ttft_ms


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


def _gib(value: float) -> str:
    return f"{value / GIB:.2f} GiB"


def _default_threads(host: HostResources, cpu_limit: float, explicit_cpu_limit: bool) -> int:
    # Under an explicit lower CPU quota, round up: 2 threads in 1.5 CPUs measured faster
    # than 1 (benchmarks/calibration_results.json, --cpu-limit 1.5 runs).
    threads = host.physical_cores
    if explicit_cpu_limit and cpu_limit < threads:
        threads = max(1, math.ceil(cpu_limit))
    return threads


@dataclass(frozen=True)
class _Evaluation:
    plan: SizingPlan
    placement: _Placement


def _limits(
    host: HostResources,
    cpu_limit: float | None,
    memory_limit_mb: int | None,
) -> tuple[float, int]:
    if cpu_limit is not None:
        if cpu_limit <= 0:
            raise SizingError(f"cpuLimit must be > 0 (got {cpu_limit})")
        if cpu_limit > host.vcpus:
            raise SizingError(
                f"cpuLimit {cpu_limit:g} is more than {host.name} has: {host.vcpus} vCPUs "
                f"(the default leaves {host.cpu_reserve:g} for the OS: "
                f"{host.default_cpu_limit:g})"
            )
    limit_cpu = host.default_cpu_limit if cpu_limit is None else float(cpu_limit)
    available = host.default_memory_limit_mib
    if memory_limit_mb is not None:
        if memory_limit_mb <= 0:
            raise SizingError(f"memoryLimitMb must be > 0 (got {memory_limit_mb})")
        if memory_limit_mb > available:
            raise SizingError(
                f"memoryLimitMb {memory_limit_mb} MiB is more than {host.name} can give "
                f"the container: {host.memory_mib} MiB - {host.memory_reserve_mib} MiB kept "
                f"for the OS = {available} MiB; leave it unset or lower it"
            )
    limit_mem = available if memory_limit_mb is None else int(memory_limit_mb)
    return limit_cpu, limit_mem


def _describe_need(name: str, load: _Load) -> str:
    s = load.shape
    runtime = load.host_runtime + LOCALAI_PROCESS_MIB * MIB
    where = ""
    if load.use_gpu:
        where = (
            f" with {load.gpu_blocks} of {s.facts.layers} layers on the GPU (the rest in host RAM)"
        )
    return (
        f"{name} ({s.facts.quantization}, context {s.n_ctx}) needs "
        f"{_gib(load.host_total + LOCALAI_PROCESS_MIB * MIB)} of container memory{where}: "
        f"weights {_gib(load.host_weights)} + KV cache {_gib(load.host_kv)} + "
        f"compute buffers and runtime {_gib(runtime)}"
    )


def _evaluate(
    host: HostResources,
    models: Sequence[tuple[str, ModelFacts | None]],
    *,
    use_gpu: bool,
    context_size: Mapping[str, int],
    parallel_requests: int,
    threads: int | None,
    cpu_limit: float | None,
    memory_limit_mb: int | None,
    calibration: Calibration,
) -> _Evaluation:
    """Plan for one host; raises SizingError (without suggestions) when a model can't fit."""
    warnings: list[str] = []
    if not models:
        raise SizingError("no models to plan for")
    if parallel_requests < 1:
        raise SizingError(f"parallelRequests must be >= 1 (got {parallel_requests})")
    if use_gpu and not host.has_gpu:
        warnings.append(f"a GPU was requested but {host.name} has none: planned for CPU only")
        use_gpu = False
    limit_cpu, limit_mem = _limits(host, cpu_limit, memory_limit_mb)
    if threads is not None and threads < 1:
        raise SizingError(f"threads must be >= 1 (got {threads})")
    n_threads = (
        threads if threads is not None else _default_threads(host, limit_cpu, cpu_limit is not None)
    )
    if threads is not None and threads > host.physical_cores:
        warnings.append(
            f"threads={threads} exceeds the {host.physical_cores} physical cores of "
            f"{host.name}: llama.cpp gets slower with SMT siblings or oversubscribed cores"
        )
    if host.burstable:
        warnings.append(
            f"{host.name} is burstable: sustained inference spends CPU credits and then "
            "runs at the baseline share (or bills surplus credits in unlimited mode)"
        )

    shapes: list[tuple[str, _Shape]] = []
    per_request: dict[str, int] = {}
    for name, facts in models:
        context = context_size.get(name)
        if facts is None:
            warnings.append(
                f"{name}: no facts file (model_configs/facts/{name}.yaml), so its memory "
                f"fit was not checked and the weights volume allows "
                f"{VOLUME_UNKNOWN_MODEL_GIB} GiB for it"
            )
            if context is not None:
                per_request[name] = context // parallel_requests
            continue
        context = facts.default_context if context is None else context
        if context < 1:
            raise SizingError(f"{name}: contextSize must be >= 1 (got {context})")
        if facts.max_context is not None and context > facts.max_context:
            raise SizingError(
                f"{name}: contextSize {context} cannot fit anywhere: the model was trained "
                f"for at most {facts.max_context} tokens; lower contextSize"
            )
        per_request[name] = context // parallel_requests
        if per_request[name] < MIN_CONTEXT_PER_REQUEST:
            warnings.append(
                f"{name}: llama.cpp splits contextSize {context} across {parallel_requests} "
                f"parallel slots, so each request gets only {per_request[name]} tokens; "
                f"raise contextSize to {MIN_CONTEXT_PER_REQUEST * parallel_requests} "
                "or lower parallelRequests"
            )
        shapes.append((name, _Shape.of(facts, context)))

    base = LOCALAI_PROCESS_MIB * MIB
    limit_bytes = limit_mem * MIB
    # Each model alone, with the whole GPU: the largest one must fit.
    alone = _place(host, shapes, use_gpu=use_gpu, together=False)
    too_big = [(n, ld) for n, ld in alone.loads.items() if base + ld.host_total > limit_bytes]
    if too_big:
        name, load = max(too_big, key=lambda item: item[1].host_total)
        if not load.placeable:
            raise _CapacityError(
                f"{name} (context {load.shape.n_ctx}) needs "
                f"{_gib(_fixed_vram(load.shape, host.gpu_count))} of GPU memory for its "
                f"CUDA context and compute buffers alone; {host.name} has "
                f"{_gib(host.gpu_count * host.gpu_memory_mib * MIB)}"
            )
        source = (
            f"the container limit (memoryLimitMb) is {_gib(limit_bytes)}"
            if memory_limit_mb is not None
            else f"{host.name} gives the container {_gib(limit_bytes)} "
            f"({_gib(host.memory_mib * MIB)} - {_gib((host.memory_reserve_mib or 0) * MIB)} "
            "kept for the OS)"
        )
        raise _CapacityError(f"{_describe_need(name, load)}; {source}")

    together = _place(host, shapes, use_gpu=use_gpu, together=True)
    together_need = base + sum(ld.host_total for ld in together.loads.values())
    vram_ok = all(ld.vram_total < math.inf for ld in together.loads.values())
    single_active = False
    placement = together
    if not vram_ok or together_need > limit_bytes:
        single_active = True
        placement = alone
        names = ", ".join(n for n, _ in shapes)
        shortfall = (
            f"{_gib(together_need)} of container memory needed, {_gib(limit_bytes)} available"
            if vram_ok
            else f"their CUDA contexts and buffers exceed {host.name}'s GPU memory"
        )
        warnings.append(
            f"the models ({names}) do not fit loaded together ({shortfall}), but each fits "
            "alone: SINGLE_ACTIVE_BACKEND is on, so switching models unloads the previous "
            "one (the first request after a switch waits for a load)"
        )
    if use_gpu:
        for name, load in placement.loads.items():
            if load.full:
                continue
            layers = load.shape.facts.layers
            if load.offload < alone.loads[name].offload:
                why = (
                    "in the GPU memory the models before it leave (alone it would get "
                    f"{alone.loads[name].gpu_blocks})"
                )
            else:
                why = f"in {host.name}'s GPU memory"
            warnings.append(
                f"{name}: only {load.gpu_blocks} of {layers} layers fit {why}; "
                "the rest run on the CPU, much slower"
            )

    loads = placement.loads
    if single_active:
        total_need = base + max(ld.host_total for ld in loads.values())
    else:
        total_need = together_need

    cores_used = max(min(n_threads, host.physical_cores, limit_cpu), 0.25)
    default_name = models[0][0]
    tps = ttft = None
    if default_name in loads:
        tps, ttft = _estimates(
            host, loads[default_name], cores_used=cores_used, calibration=calibration
        )
    else:
        warnings.append(f"{default_name}: no facts, so no speed estimates")

    gpu_layers: dict[str, int] = {}
    for name, _facts in models:
        if name in loads:
            gpu_layers[name] = loads[name].gpu_layers
        else:
            gpu_layers[name] = GPU_LAYERS_ALL if use_gpu else 0

    plan = SizingPlan(
        host_name=host.name,
        threads=n_threads,
        cpu_limit=round(limit_cpu, 2),
        memory_limit_mb=limit_mem,
        gpu_layers=MappingProxyType(gpu_layers),
        single_active_backend=single_active,
        hourly_cost_usd=host.hourly_usd,
        estimated_tokens_per_second=None if tps is None else round(tps, 1),
        estimated_ttft_ms=None if ttft is None else round(ttft),
        memory_needed_mib=MappingProxyType(
            {n: math.ceil(ld.host_total / MIB) for n, ld in loads.items()}
        ),
        vram_needed_mib=MappingProxyType(
            {n: math.ceil(ld.vram_total / MIB) for n, ld in loads.items()}
        ),
        total_memory_needed_mib=math.ceil(total_need / MIB),
        per_request_context=MappingProxyType(per_request),
        warnings=tuple(warnings),
        use_gpu=use_gpu,
    )
    return _Evaluation(plan, placement)


def _default_candidates(use_gpu: bool) -> list[InstanceType]:
    return [t for t in CATALOG.values() if t.has_gpu == use_gpu and not t.burstable]


def _rank(host: HostResources):
    def key(t: InstanceType) -> tuple:
        return (t.arch != host.arch, t.hourly_usd, t.memory_gib, t.name)

    return key


def _suggest(
    host: HostResources,
    candidates: Sequence[InstanceType],
    accept,
) -> tuple[InstanceType | None, InstanceType | None]:
    """(cheapest accepted of the host's arch, or of any arch; cheapest overall if cheaper)."""
    ranked = sorted(candidates, key=_rank(host))
    best = next((t for t in ranked if accept(t)), None)
    if best is None:
        return None, None
    cheaper = next(
        (
            t
            for t in sorted(candidates, key=lambda t: (t.hourly_usd, t.memory_gib, t.name))
            if t.hourly_usd < best.hourly_usd and t.arch != best.arch and accept(t)
        ),
        None,
    )
    return best, cheaper


def _suggestion_text(best: InstanceType, cheaper: InstanceType | None) -> str:
    text = best.describe()
    if cheaper is not None:
        text += f"; cheaper on {cheaper.arch}: {cheaper.describe()}"
    return text


def _largest_fitting_context(
    host: HostResources,
    name: str,
    facts: ModelFacts,
    limit_mib: int,
    use_gpu: bool,
    requested: int,
) -> int | None:
    def fits(ctx: int) -> bool:
        placed = _place(host, [(name, _Shape.of(facts, ctx))], use_gpu=use_gpu, together=False)
        return LOCALAI_PROCESS_MIB * MIB + placed.loads[name].host_total <= limit_mib * MIB

    low, high = 1, requested // KV_CONTEXT_PADDING
    if not fits(KV_CONTEXT_PADDING):
        return None
    while low < high:  # largest multiple of 256 that fits
        mid = (low + high + 1) // 2
        if fits(mid * KV_CONTEXT_PADDING):
            low = mid
        else:
            high = mid - 1
    return low * KV_CONTEXT_PADDING


def plan(
    host: HostResources,
    models: list[tuple[str, ModelFacts | None]],
    *,
    use_gpu: bool,
    context_size: Mapping[str, int],
    parallel_requests: int,
    threads: int | None = None,
    cpu_limit: float | None = None,
    memory_limit_mb: int | None = None,
    candidates: Iterable[InstanceType] | None = None,
    calibration: Calibration = DEFAULT_CALIBRATION,
) -> SizingPlan:
    """Size LocalAI for ``models`` (first = default model) on ``host``.

    ``context_size`` maps a model to the ``context_size`` its YAML will carry (the total
    llama.cpp shares among ``parallel_requests`` slots); models missing from it use their
    facts' ``default_context``. Raises :class:`SizingError` when a model cannot fit,
    naming the cheapest type from ``candidates`` (default: the non-burstable catalog
    types of the plan's kind, CPU or GPU) that fits.
    """
    models = list(models)
    gpu_kind = use_gpu and host.has_gpu
    pool = list(candidates) if candidates is not None else _default_candidates(gpu_kind)
    kwargs = dict(
        use_gpu=use_gpu,
        context_size=context_size,
        parallel_requests=parallel_requests,
        calibration=calibration,
    )

    def evaluate_on(t: InstanceType) -> _Evaluation | None:
        try:
            return _evaluate(
                HostResources.from_instance_type(t),
                models,
                threads=None,
                cpu_limit=None,
                memory_limit_mb=None,
                **kwargs,
            )
        except SizingError:
            return None

    try:
        evaluation = _evaluate(
            host,
            models,
            threads=threads,
            cpu_limit=cpu_limit,
            memory_limit_mb=memory_limit_mb,
            **kwargs,
        )
    except _CapacityError as exc:
        message = str(exc)
        best, cheaper = _suggest(host, pool, lambda t: evaluate_on(t) is not None)
        if best is not None:
            raise SizingError(
                f"{message}. The cheapest supported instance type that fits: "
                f"{_suggestion_text(best, cheaper)}"
            ) from None
        largest = max(pool, key=lambda t: t.memory_gib, default=None)
        hint = ""
        if largest is not None:
            hint = (
                f" (the largest, {largest.name}, gives the container "
                f"{_gib(HostResources.from_instance_type(largest).default_memory_limit_mib * MIB)})"
            )
        limit = _limits(host, cpu_limit, memory_limit_mb)[1]
        contexts = []
        for name, facts in models:
            if facts is None:
                continue
            requested = context_size.get(name, facts.default_context)
            best_ctx = _largest_fitting_context(host, name, facts, limit, use_gpu, requested)
            if best_ctx is not None and best_ctx < requested:
                contexts.append(f"{name} fits {host.name} with contextSize <= {best_ctx}")
            elif best_ctx is None:
                contexts.append(f"{name} does not fit {host.name} even at the smallest context")
        tail = f"; {'; '.join(contexts)}" if contexts else ""
        raise SizingError(
            f"{message}. No supported instance type fits this at the requested "
            f"context{hint}: lower contextSize{tail}"
        ) from None

    result = evaluation.plan
    ttft = result.estimated_ttft_ms
    if ttft is not None and ttft > TTFT_TARGET_MS:

        def meets(t: InstanceType) -> bool:
            candidate = evaluate_on(t)
            return (
                candidate is not None
                and candidate.plan.estimated_ttft_ms is not None
                and candidate.plan.estimated_ttft_ms <= TTFT_TARGET_MS
            )

        best, cheaper = _suggest(host, pool, meets)
        if best is not None:
            advice = f"the cheapest type whose estimate meets it: {_suggestion_text(best, cheaper)}"
        else:
            advice = "no supported instance type of this kind is estimated to meet it"
        warning = (
            f"estimated time to first token for a {TTFT_PROMPT_TOKENS}-token prompt on "
            f"{host.name} is {ttft:.0f} ms, above the {TTFT_TARGET_MS:.0f} ms target; {advice}"
        )
        result = replace(result, warnings=(*result.warnings, warning))
    return result


# ---------------------------------------------------------------------------------------------
# EBS volume
# ---------------------------------------------------------------------------------------------


def volume_size_gb(models: Sequence[tuple[str, ModelFacts | None]]) -> int:
    """EBS weights volume in GiB.

    ``sum(file sizes) x 1.1`` (ext4 metadata and reserved blocks) ``+ 10 GiB`` (one more
    7-8B Q4 model, or the old and new file side by side during a model change, plus
    LocalAI's own files), unknown models counted at 16 GiB each (room for a 13-14B model at Q8_0,
    ~14-16 GB), rounded up to a multiple of 10, at least 20.
    """
    total = VOLUME_HEADROOM_GIB * GIB
    for _name, facts in models:
        if facts is None:
            total += VOLUME_UNKNOWN_MODEL_GIB * GIB
        else:
            total += facts.file_size_bytes * VOLUME_FILE_FACTOR
    size = math.ceil(total / GIB / VOLUME_STEP_GIB) * VOLUME_STEP_GIB
    return max(VOLUME_MIN_GIB, size)


__all__ = [
    "DEFAULT_CALIBRATION",
    "GPU_LAYERS_ALL",
    "TTFT_TARGET_MS",
    "Calibration",
    "HostResources",
    "SizingError",
    "SizingPlan",
    "plan",
    "volume_size_gb",
]
