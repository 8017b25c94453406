"""Hardware-aware sizing: does a model set fit a host, with which limits, and how fast.

Pure functions over :class:`HostResources` (from an EC2 catalog entry or the local
Docker host), :class:`~components.models.facts.ModelFacts` and a :class:`Calibration`.
No I/O, no Pulumi: the caller loads the facts and the host description.

:func:`plan` returns a :class:`SizingPlan` (threads, container limits, ``gpu_layers`` per
model, ``SINGLE_ACTIVE_BACKEND``, cost and speed estimates, warnings) or raises
:class:`SizingError` with the numbers and the cheapest supported instance type that fits.
:func:`volume_size_gb` sizes the EBS weights volume.

The parts: :mod:`~components.sizing.resources` (what a host gives the container),
:mod:`~components.sizing.memory` (where each model's bytes sit),
:mod:`~components.sizing.speed` with :mod:`~components.sizing.calibration` (tokens/s and
TTFT estimates) and :mod:`~components.sizing.volume` (the EBS weights volume).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from components.models.facts import ModelFacts
from components.sizing.calibration import DEFAULT_CALIBRATION, Calibration
from components.sizing.instance_types import CATALOG, InstanceType
from components.sizing.memory import (
    GPU_LAYERS_ALL,
    KV_CONTEXT_PADDING,
    LOCALAI_PROCESS_MIB,
    Load,
    Placement,
    Shape,
    describe_need,
    fixed_vram,
    gib,
    place,
)
from components.sizing.resources import MIB, HostResources
from components.sizing.speed import (
    TTFT_PROMPT_TOKENS,
    TTFT_TARGET_MS,
    batched_tokens_per_second,
    estimates,
)
from components.sizing.volume import VOLUME_UNKNOWN_MODEL_GIB, volume_size_gb

MIN_CONTEXT_PER_REQUEST = 1024


class SizingError(ValueError):
    """The models cannot run with these resources; the message gives the numbers."""


class _CapacityError(SizingError):
    """A model does not fit this host (plan() adds the instance type that fits)."""


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
    default_model: str = ""
    """The first model: the estimates and ``contextPerRequest`` are about it."""
    estimated_batched_tokens_per_second: float | None = None
    """Output tokens per second with every parallel slot busy (``parallelRequests``)."""


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
    placement: Placement


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
    n_threads = _threads(host, threads, limit_cpu, cpu_limit is not None, warnings)
    if host.burstable:
        warnings.append(
            f"{host.name} is burstable: sustained inference spends CPU credits and then "
            "runs at the baseline share (or bills surplus credits in unlimited mode)"
        )
    shapes, per_request = _shapes(models, context_size, parallel_requests, warnings)
    if parallel_requests > 1:
        # llama.cpp (LocalAI v2.24.0's grpc-server.cpp) gives a request the idle slot used
        # least recently, and each slot caches only its own last prompt.
        warnings.append(
            f"parallelRequests {parallel_requests}: requests run side by side, but each of "
            "the slots keeps only its own last prompt, so a conversation's follow-up "
            "re-reads its whole history unless it lands on its previous slot (with 1, each "
            "follow-up reads only its new turn)"
        )

    limit_bytes = limit_mem * MIB
    alone = _require_each_fits(
        host, shapes, use_gpu=use_gpu, limit_bytes=limit_bytes, explicit_limit=memory_limit_mb
    )
    placement, single_active, total_need = _choose_placement(
        host, shapes, alone, use_gpu=use_gpu, limit_bytes=limit_bytes, warnings=warnings
    )
    if use_gpu:
        warnings.extend(_partial_offload_warnings(host, placement, alone))

    loads = placement.loads
    cores_used = max(min(n_threads, host.physical_cores, limit_cpu), 0.25)
    default_name = models[0][0]
    tps = ttft = batched = None
    if default_name in loads:
        tps, ttft = estimates(
            host, loads[default_name], cores_used=cores_used, calibration=calibration
        )
        batched = batched_tokens_per_second(
            host,
            loads[default_name],
            slots=parallel_requests,
            cores_used=cores_used,
            calibration=calibration,
        )
        warnings.extend(_slower_than_cpu(host, loads[default_name], tps, cores_used, calibration))
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
        default_model=default_name,
        estimated_batched_tokens_per_second=None if batched is None else round(batched, 1),
    )
    return _Evaluation(plan, placement)


def _threads(
    host: HostResources,
    threads: int | None,
    limit_cpu: float,
    explicit_cpu_limit: bool,
    warnings: list[str],
) -> int:
    if threads is None:
        return _default_threads(host, limit_cpu, explicit_cpu_limit)
    if threads < 1:
        raise SizingError(f"threads must be >= 1 (got {threads})")
    if threads > host.physical_cores:
        warnings.append(
            f"threads={threads} exceeds the {host.physical_cores} physical cores of "
            f"{host.name}: llama.cpp gets slower with SMT siblings or oversubscribed cores"
        )
    return threads


def _shapes(
    models: Sequence[tuple[str, ModelFacts | None]],
    context_size: Mapping[str, int],
    parallel_requests: int,
    warnings: list[str],
) -> tuple[list[tuple[str, Shape]], dict[str, int]]:
    """Each model with facts at its context, and the context each request gets."""
    shapes: list[tuple[str, Shape]] = []
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
        shapes.append((name, Shape.of(facts, context)))
    return shapes, per_request


def _require_each_fits(
    host: HostResources,
    shapes: Sequence[tuple[str, Shape]],
    *,
    use_gpu: bool,
    limit_bytes: int,
    explicit_limit: int | None,
) -> Placement:
    """Each model alone, with the whole GPU: the largest one must fit."""
    base = LOCALAI_PROCESS_MIB * MIB
    alone = place(host, shapes, use_gpu=use_gpu, together=False)
    too_big = [(n, ld) for n, ld in alone.loads.items() if base + ld.host_total > limit_bytes]
    if not too_big:
        return alone
    name, load = max(too_big, key=lambda item: item[1].host_total)
    if not load.placeable:
        raise _CapacityError(
            f"{name} (context {load.shape.n_ctx}) needs "
            f"{gib(fixed_vram(load.shape, host.gpu_count))} of GPU memory for its "
            f"CUDA context and compute buffers alone; {host.name} has "
            f"{gib(host.gpu_count * host.gpu_memory_mib * MIB)}"
        )
    source = (
        f"the container limit (memoryLimitMb) is {gib(limit_bytes)}"
        if explicit_limit is not None
        else f"{host.name} gives the container {gib(limit_bytes)} "
        f"({gib(host.memory_mib * MIB)} - {gib((host.memory_reserve_mib or 0) * MIB)} "
        "kept for the OS)"
    )
    raise _CapacityError(f"{describe_need(name, load)}; {source}")


def _choose_placement(
    host: HostResources,
    shapes: Sequence[tuple[str, Shape]],
    alone: Placement,
    *,
    use_gpu: bool,
    limit_bytes: int,
    warnings: list[str],
) -> tuple[Placement, bool, float]:
    """All models loaded together if they fit, else one at a time (SINGLE_ACTIVE_BACKEND).

    Returns the placement, whether single-active is on, and the container memory needed
    (the LocalAI process plus every model together, or plus the largest one)."""
    base = LOCALAI_PROCESS_MIB * MIB
    together = place(host, shapes, use_gpu=use_gpu, together=True)
    together_need = base + sum(ld.host_total for ld in together.loads.values())
    vram_ok = all(ld.vram_total < math.inf for ld in together.loads.values())
    if vram_ok and together_need <= limit_bytes:
        return together, False, together_need
    names = ", ".join(n for n, _ in shapes)
    shortfall = (
        f"{gib(together_need)} of container memory needed, {gib(limit_bytes)} available"
        if vram_ok
        else f"their CUDA contexts and buffers exceed {host.name}'s GPU memory"
    )
    warnings.append(
        f"the models ({names}) do not fit loaded together ({shortfall}), but each fits "
        "alone: SINGLE_ACTIVE_BACKEND is on, so switching models unloads the previous "
        "one (the first request after a switch waits for a load)"
    )
    return alone, True, base + max(ld.host_total for ld in alone.loads.values())


def _slower_than_cpu(
    host: HostResources, load: Load, gpu_tps: float, cores_used: float, calibration: Calibration
) -> list[str]:
    """A partial offload runs the CPU layers on the CUDA image's generic kernels: say so
    when the CPU image (SIMD kernels, no GPU) would decode faster."""
    if not load.use_gpu or load.full:
        return []
    cpu_tps, _ttft = estimates(
        host, Load(load.shape, 0, False, 0), cores_used=cores_used, calibration=calibration
    )
    if gpu_tps >= cpu_tps:
        return []
    return [
        f"{host.name}: with {load.gpu_blocks} of {load.shape.facts.layers} layers on the GPU "
        f"the rest run on the CUDA image's generic CPU kernels (LocalAI v2.24.0 builds them "
        f"without AVX): about {gpu_tps:.1f} tokens/s, slower than the CPU image's "
        f"{cpu_tps:.1f}; set localai:accelerator cpu, or use a type whose GPU holds the model"
    ]


def _partial_offload_warnings(
    host: HostResources, placement: Placement, alone: Placement
) -> list[str]:
    warnings = []
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
    return warnings


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
        placed = place(host, [(name, Shape.of(facts, ctx))], use_gpu=use_gpu, together=False)
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
                f"{gib(HostResources.from_instance_type(largest).default_memory_limit_mib * MIB)})"
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


__all__ = [
    "DEFAULT_CALIBRATION",
    "GPU_LAYERS_ALL",
    "MIN_CONTEXT_PER_REQUEST",
    "TTFT_TARGET_MS",
    "Calibration",
    "HostResources",
    "SizingError",
    "SizingPlan",
    "plan",
    "volume_size_gb",
]
