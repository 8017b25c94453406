"""What the sizing planner estimates for this machine and these files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.calibration.constants import N_CTX


def synthetic_facts(facts: Any, path: Path, quantization: str) -> Any:
    """The catalog facts, with the measured file's size and quantization."""
    return facts.model_copy(
        update={
            "file_size_bytes": path.stat().st_size,
            "quantization": quantization,
            "gguf_file": path.name,
        }
    )


def gguf_quantization(path: Path) -> str:
    """The file type (``general.file_type``) name, e.g. ``Q4_0`` or ``Q4_K_M``."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(path)
    field = reader.fields.get("general.file_type")
    if field is None:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return f"file_type {value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def planner_estimates(
    host: Any,
    facts: Any,
    threads: int | None,
    cpu_limit: float | None,
    calibration: Any = None,
) -> dict[str, Any]:
    from components.sizing.planner import DEFAULT_CALIBRATION, SizingError, plan

    try:
        result = plan(
            host,
            [(facts.name, facts)],
            use_gpu=False,
            context_size={facts.name: N_CTX},
            parallel_requests=1,
            threads=threads,
            cpu_limit=cpu_limit,
            calibration=calibration or DEFAULT_CALIBRATION,
        )
    except SizingError as exc:
        return {"error": str(exc)}
    return {
        "threads": result.threads,
        "cpu_limit": result.cpu_limit,
        "tokens_per_s": result.estimated_tokens_per_second,
        "ttft_ms": result.estimated_ttft_ms,
    }


def planner_decode_bytes(facts: Any) -> float:
    """Bytes per decode token in the planner's model (weights on the CPU + KV cache)."""
    from components.sizing.speed import DECODE_REFERENCE_TOKENS

    embedding = facts.vocab * facts.n_embd * facts.bytes_per_parameter
    weights = facts.file_size_bytes - (0.0 if facts.tied_embeddings else embedding)
    return weights + facts.kv_bytes_per_token * DECODE_REFERENCE_TOKENS


def planner_prefill_flops(facts: Any) -> float:
    from components.sizing.speed import TTFT_PROMPT_TOKENS

    return 2.0 * facts.parameters * TTFT_PROMPT_TOKENS


def host_for(bandwidth_gbs: float, kernels: str) -> Any:
    """This machine for the planner: measured bandwidth; ``cpu_isa`` = the kernels the
    server build runs (the planner maps AVX-512 to AVX2 for LocalAI's images)."""
    from components.sizing.local_host import local_host_resources

    host = local_host_resources()
    return replace(host, memory_bandwidth_gbs=bandwidth_gbs, cpu_isa=kernels)
