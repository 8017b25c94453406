"""Memory model: where one model's bytes sit on a host (host RAM, VRAM) at one context.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from components.models.facts import ModelFacts
from components.sizing.resources import GIB, MIB, HostResources

GPU_LAYERS_ALL = 99
"""``gpu_layers`` meaning "every layer and the output head" (same value as
``components.models.catalog.ALL_GPU_LAYERS``; LocalAI v2.24's llama.cpp clamps it, and
``-1`` would offload nothing)."""

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


@dataclass(frozen=True)
class Shape:
    """Byte sizes of one model at one context."""

    facts: ModelFacts
    n_ctx: int
    token_embd: float
    output: float  # the output head's bytes (a copy of token_embd when tied)
    layer: float  # one repeating block's weights
    kv_layer: float  # one layer's KV cache at n_ctx
    compute: float

    @classmethod
    def of(cls, facts: ModelFacts, context: int) -> Shape:
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
class Load:
    """One model as loaded on one host: where its bytes sit."""

    shape: Shape
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
        fixed = fixed_vram(s, self.gpu_count)
        blocks = self.gpu_blocks * (s.layer + s.kv_layer)
        return fixed + blocks + (s.output if self.full else 0.0)


def fixed_vram(shape: Shape, gpu_count: int) -> float:
    return gpu_count * (CUDA_VRAM_RESERVE_MIB * MIB + shape.compute)


def offload_into(shape: Shape, vram_free: float, gpu_count: int) -> int | None:
    """Most layers (0..layers+1) that fit ``vram_free``; None if not even the context fits."""
    room = vram_free - fixed_vram(shape, gpu_count)
    if room < 0:
        return None
    per_block = shape.layer + shape.kv_layer
    blocks = min(shape.facts.layers, int(room // per_block))
    if blocks == shape.facts.layers and room - blocks * per_block >= shape.output:
        return blocks + 1
    return blocks


@dataclass(frozen=True)
class Placement:
    loads: dict[str, Load]
    together: bool


def place(
    host: HostResources,
    shapes: Sequence[tuple[str, Shape]],
    *,
    use_gpu: bool,
    together: bool,
) -> Placement:
    vram_pool = host.gpu_count * host.gpu_memory_mib * MIB
    loads: dict[str, Load] = {}
    for name, shape in shapes:
        if not use_gpu:
            loads[name] = Load(shape, 0, False, 0)
            continue
        free = vram_pool if not together else vram_pool - sum(x.vram_total for x in loads.values())
        offload = offload_into(shape, free, host.gpu_count)
        loads[name] = Load(shape, offload or 0, True, host.gpu_count, offload is not None)
    return Placement(loads, together)


def gib(value: float) -> str:
    return f"{value / GIB:.2f} GiB"


def describe_need(name: str, load: Load) -> str:
    s = load.shape
    runtime = load.host_runtime + LOCALAI_PROCESS_MIB * MIB
    where = ""
    if load.use_gpu:
        where = (
            f" with {load.gpu_blocks} of {s.facts.layers} layers on the GPU (the rest in host RAM)"
        )
    return (
        f"{name} ({s.facts.quantization}, context {s.n_ctx}) needs "
        f"{gib(load.host_total + LOCALAI_PROCESS_MIB * MIB)} of container memory{where}: "
        f"weights {gib(load.host_weights)} + KV cache {gib(load.host_kv)} + "
        f"compute buffers and runtime {gib(runtime)}"
    )
