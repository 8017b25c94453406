"""The GGUF files calibrated on: synthetic, with the real shapes from the facts files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def shape_from_facts(facts: Any) -> dict[str, Any]:
    """``write_synthetic_gguf`` arguments for the model's real transformer shape.

    The facts give layers, widths, heads and vocabulary; the FFN width follows from the
    parameter count: per block, q/k/v/o + 3 FFN matrices + 2 norm vectors.
    """
    q_width = facts.heads * facts.head_dim
    if q_width != facts.n_embd:
        raise ValueError(
            f"{facts.name}: heads x head_dim = {q_width} differs from n_embd = {facts.n_embd}; "
            "the synthetic llama writer cannot represent that shape"
        )
    kv_width = facts.kv_heads * facts.head_dim
    embeddings = facts.vocab * facts.n_embd * (1 if facts.tied_embeddings else 2)
    per_block = (facts.parameters - embeddings - facts.n_embd) / facts.layers
    attention = facts.n_embd * (q_width + 2 * kv_width) + q_width * facts.n_embd
    n_ff = (per_block - attention - 2 * facts.n_embd) / (3 * facts.n_embd)
    n_ff = round(n_ff / 32) * 32
    if n_ff <= 0:
        raise ValueError(f"{facts.name}: parameters too small for its shape (n_ff = {n_ff})")
    return {
        "n_layers": facts.layers,
        "n_embd": facts.n_embd,
        "n_head": facts.heads,
        "n_head_kv": facts.kv_heads,
        "n_ff": n_ff,
        "n_vocab": facts.vocab,
        "tie_embeddings": facts.tied_embeddings,
        "context_length": facts.max_context or 4096,
    }


def ensure_gguf(name: str, shape: dict[str, Any], cache_dir: Path) -> tuple[Path, bool]:
    """(path, reused): the Q4_0 synthetic file for ``shape``, written once per shape."""
    from tools.synthetic_gguf import write_synthetic_gguf

    tag = (
        f"L{shape['n_layers']}-E{shape['n_embd']}-H{shape['n_head']}-KV{shape['n_head_kv']}"
        f"-FF{shape['n_ff']}-V{shape['n_vocab']}{'-tied' if shape['tie_embeddings'] else ''}"
    )
    path = cache_dir / f"{name}-{tag}-Q4_0.gguf"
    if path.is_file():
        return path, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    try:
        # general.name must not name the model: llama.cpp special-cases names containing
        # "phi-3" and then fails to load the synthetic vocabulary (no "<|end|>" token).
        write_synthetic_gguf(partial, tensor_type="Q4_0", name=f"synthetic {tag}", **shape)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path, False


def tiny_gguf(cache_dir: Path) -> Path:
    from tools.synthetic_gguf import PRESETS, write_synthetic_gguf

    path = cache_dir / "tiny-F32.gguf"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_synthetic_gguf(path, name="tiny", **PRESETS["tiny"])
    return path


def weight_bytes_per_token(path: Path) -> int:
    """Tensor bytes one decode step reads: every tensor except an untied token embedding
    (a lookup reads one row of it); a tied one is read in full as the output head."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    sizes = {t.name: int(t.n_bytes) for t in reader.tensors}
    if "output.weight" in sizes:
        sizes.pop("token_embd.weight", None)
    return sum(sizes.values())
