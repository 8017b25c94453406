"""Write random-weight GGUF models (llama architecture) for tests and CPU calibration.

Nothing is downloaded: the weights are random, the vocabulary is built here.

* The tiny default (``write_synthetic_gguf(path)``) is a few hundred KB of F32 and
  generates hundreds of tokens per second on one core. Its output layer is steered so
  that sampling only ever picks printable ASCII byte tokens and never end-of-sequence:
  every answer is readable text exactly ``max_tokens`` long, which makes streaming
  tests deterministic in length.
* Real shapes (``write_synthetic_gguf(path, **PRESETS["qwen2.5-0.5b"], tensor_type="Q4_0")``)
  give a file whose matmuls cost what the real model's do. The data is written tensor
  by tensor and in row chunks, so memory stays at a few tens of MB whatever the size.
  Q4_0 blocks are built directly as bytes (fp16 scale + random nibbles), no float32
  copy of the weights ever exists.

Vocabulary: SentencePiece-style (``tokenizer.ggml.model = "llama"``) with
``<unk>``, ``<s>``, ``</s>`` and the 256 byte tokens ``<0x00>`` .. ``<0xFF>``, so any
UTF-8 text tokenizes (one token per byte; llama.cpp's SentencePiece mode still spells
a space in the prompt as "\u2581", i.e. three byte tokens). ``n_vocab`` larger than 259 adds inert
filler tokens (``<extra_N>``) to reach a real model's vocabulary size.

CLI: ``python -m tools.synthetic_gguf out.gguf [--preset qwen2.5-0.5b] [--tensor-type Q4_0]``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
from gguf.constants import GGML_QUANT_SIZES

BYTE_VOCAB_SIZE = 3 + 256  # <unk>, <s>, </s>, then one token per byte value
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_BYTE_ID = 3

# Shapes of real models (llama-architecture equivalents) for CPU speed calibration.
# Qwen2 adds q/k/v biases and Phi-3 fuses qkv; the matmul cost is the same to within
# a few percent, which is what calibration needs.
PRESETS: dict[str, dict[str, int | bool]] = {
    "tiny": dict(n_layers=2, n_embd=64, n_head=4, n_head_kv=2, n_ff=128, context_length=2048),
    "qwen2.5-0.5b": dict(
        n_layers=24,
        n_embd=896,
        n_head=14,
        n_head_kv=2,
        n_ff=4864,
        n_vocab=151936,
        context_length=32768,
        tie_embeddings=True,
    ),
    "phi-3.5-mini": dict(
        n_layers=32,
        n_embd=3072,
        n_head=32,
        n_head_kv=32,
        n_ff=8192,
        n_vocab=32064,
        context_length=131072,
    ),
    "llama-3.1-8b": dict(
        n_layers=32,
        n_embd=4096,
        n_head=32,
        n_head_kv=8,
        n_ff=14336,
        n_vocab=128256,
        context_length=131072,
    ),
}

_SUPPORTED_TYPES = {
    "F32": GGMLQuantizationType.F32,
    "F16": GGMLQuantizationType.F16,
    "Q4_0": GGMLQuantizationType.Q4_0,
}
_FILE_TYPES = {
    GGMLQuantizationType.F32: LlamaFileType.ALL_F32,
    GGMLQuantizationType.F16: LlamaFileType.MOSTLY_F16,
    GGMLQuantizationType.Q4_0: LlamaFileType.MOSTLY_Q4_0,
}
_CHUNK_ELEMENTS = 8 * 1024 * 1024  # rows are generated and written ~8M values at a time
_PRINTABLE = range(0x20, 0x7F)  # space .. '~'


@dataclass(frozen=True)
class _Tensor:
    name: str
    rows: int  # ggml ne[1] (output features); 1 for vectors
    cols: int  # ggml ne[0] (input features), the contiguous dimension
    qtype: GGMLQuantizationType
    kind: str  # "norm", "embd", "output" or "matrix"

    @property
    def nbytes(self) -> int:
        block, block_bytes = GGML_QUANT_SIZES[self.qtype]
        return self.rows * (self.cols // block) * block_bytes

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.cols,) if self.rows == 1 and self.kind == "norm" else (self.rows, self.cols)


def write_synthetic_gguf(
    path: str | Path,
    *,
    n_layers: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int | None = None,
    n_ff: int = 128,
    n_vocab: int = BYTE_VOCAB_SIZE,
    context_length: int = 2048,
    tensor_type: str = "F32",
    tie_embeddings: bool = False,
    steer_printable: bool | None = None,
    rope_freq_base: float = 10000.0,
    rms_eps: float = 1e-5,
    seed: int = 0,
    name: str = "synthetic-llama",
) -> Path:
    """Write a random-weight llama-architecture GGUF to ``path`` and return the path.

    Args:
        path: output file (parent directories are created).
        n_layers: number of transformer blocks (``llama.block_count``).
        n_embd: hidden size; must be divisible by ``n_head`` (and by 32 for Q4_0).
        n_head: attention heads; head size is ``n_embd // n_head``.
        n_head_kv: key/value heads (GQA); defaults to ``n_head``; must divide ``n_head``.
        n_ff: feed-forward size (gate/up/down); divisible by 32 for Q4_0.
        n_vocab: vocabulary size, at least 259 (``<unk>``, ``<s>``, ``</s>`` + 256 bytes);
            extra ids become inert ``<extra_N>`` tokens.
        context_length: ``llama.context_length`` (the training context).
        tensor_type: ``"F32"``, ``"F16"`` or ``"Q4_0"`` for every 2-D weight; norm
            vectors are always F32 as in real files.
        tie_embeddings: omit ``output.weight`` (llama.cpp then reuses ``token_embd``), as
            Qwen2.5-0.5B does.
        steer_printable: make the output layer prefer printable ASCII bytes and never
            emit ``</s>``. Defaults to on for float types with the byte vocabulary and
            untied embeddings; it needs float output weights.
        rope_freq_base: ``llama.rope.freq_base``.
        rms_eps: ``llama.attention.layer_norm_rms_epsilon``.
        seed: numpy random seed; the same arguments and seed give the same file.
        name: ``general.name``.
    """
    path = Path(path)
    n_head_kv = n_head if n_head_kv is None else n_head_kv
    qtype = _parse_type(tensor_type)
    _validate_shape(n_embd, n_head, n_head_kv, n_ff, n_vocab, qtype)
    if steer_printable is None:
        steer_printable = (
            qtype is not GGMLQuantizationType.Q4_0
            and n_vocab == BYTE_VOCAB_SIZE
            and not tie_embeddings
        )
    if steer_printable and (qtype is GGMLQuantizationType.Q4_0 or tie_embeddings):
        raise ValueError("steer_printable needs float (F32/F16) and untied output weights")

    head_dim = n_embd // n_head
    tensors = _tensor_plan(n_layers, n_embd, n_ff, n_vocab, head_dim, n_head_kv, qtype)
    if tie_embeddings:
        tensors = [t for t in tensors if t.name != "output.weight"]

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, "llama")
    try:
        writer.add_name(name)
        writer.add_context_length(context_length)
        writer.add_embedding_length(n_embd)
        writer.add_block_count(n_layers)
        writer.add_feed_forward_length(n_ff)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_head_kv)
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(rope_freq_base)
        writer.add_layer_norm_rms_eps(rms_eps)
        writer.add_vocab_size(n_vocab)
        writer.add_file_type(_FILE_TYPES[qtype])
        if qtype is GGMLQuantizationType.Q4_0:
            writer.add_quantization_version(2)
        _add_byte_vocab(writer, n_vocab)

        for t in tensors:
            # Declared as raw bytes (uint8 + raw_dtype) so nothing is held in memory here.
            byte_shape = (t.rows, t.nbytes // t.rows) if t.kind != "norm" else (t.nbytes,)
            writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), t.nbytes, t.qtype)

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        assert writer.fout is not None and len(writer.fout) == 1
        fout = writer.fout[0]
        rng = np.random.default_rng(seed)
        for t in tensors:
            writer.write_padding(fout, fout.tell())
            _write_tensor_data(fout, t, rng, n_embd=n_embd, steer_printable=steer_printable)
        writer.write_padding(fout, fout.tell())
        writer.flush()
    finally:
        writer.close()
    return path


def _parse_type(tensor_type: str) -> GGMLQuantizationType:
    try:
        return _SUPPORTED_TYPES[tensor_type.upper()]
    except KeyError:
        allowed = ", ".join(_SUPPORTED_TYPES)
        raise ValueError(
            f"tensor_type {tensor_type!r} is not supported; use one of {allowed}"
        ) from None


def _validate_shape(
    n_embd: int, n_head: int, n_head_kv: int, n_ff: int, n_vocab: int, qtype: GGMLQuantizationType
) -> None:
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    if n_head % n_head_kv:
        raise ValueError(f"n_head ({n_head}) must be a multiple of n_head_kv ({n_head_kv})")
    if (n_embd // n_head) % 2:
        raise ValueError(f"head size n_embd/n_head ({n_embd // n_head}) must be even for RoPE")
    if n_vocab < BYTE_VOCAB_SIZE:
        raise ValueError(f"n_vocab ({n_vocab}) must be at least {BYTE_VOCAB_SIZE} (byte vocab)")
    block = GGML_QUANT_SIZES[qtype][0]
    for label, value in (("n_embd", n_embd), ("n_ff", n_ff)):
        if value % block:
            raise ValueError(f"{label} ({value}) must be divisible by {block} for {qtype.name}")


def _tensor_plan(
    n_layers: int,
    n_embd: int,
    n_ff: int,
    n_vocab: int,
    head_dim: int,
    n_head_kv: int,
    qtype: GGMLQuantizationType,
) -> list[_Tensor]:
    f32 = GGMLQuantizationType.F32
    n_embd_kv = head_dim * n_head_kv
    plan = [
        _Tensor("token_embd.weight", n_vocab, n_embd, qtype, "embd"),
        _Tensor("output_norm.weight", 1, n_embd, f32, "norm"),
        _Tensor("output.weight", n_vocab, n_embd, qtype, "output"),
    ]
    for i in range(n_layers):
        b = f"blk.{i}"
        plan += [
            _Tensor(f"{b}.attn_norm.weight", 1, n_embd, f32, "norm"),
            _Tensor(f"{b}.attn_q.weight", n_embd, n_embd, qtype, "matrix"),
            _Tensor(f"{b}.attn_k.weight", n_embd_kv, n_embd, qtype, "matrix"),
            _Tensor(f"{b}.attn_v.weight", n_embd_kv, n_embd, qtype, "matrix"),
            _Tensor(f"{b}.attn_output.weight", n_embd, n_embd, qtype, "matrix"),
            _Tensor(f"{b}.ffn_norm.weight", 1, n_embd, f32, "norm"),
            _Tensor(f"{b}.ffn_gate.weight", n_ff, n_embd, qtype, "matrix"),
            _Tensor(f"{b}.ffn_up.weight", n_ff, n_embd, qtype, "matrix"),
            _Tensor(f"{b}.ffn_down.weight", n_embd, n_ff, qtype, "matrix"),
        ]
    return plan


def _add_byte_vocab(writer: GGUFWriter, n_vocab: int) -> None:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    tokens += [f"<extra_{i}>" for i in range(n_vocab - BYTE_VOCAB_SIZE)]
    types += [TokenType.NORMAL] * (n_vocab - BYTE_VOCAB_SIZE)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)  # no leading "\u2581" (3 byte tokens) on every prompt


def _write_tensor_data(
    fout: BinaryIO, t: _Tensor, rng: np.random.Generator, *, n_embd: int, steer_printable: bool
) -> None:
    if t.kind == "norm":
        np.ones(t.cols, dtype=np.float32).tofile(fout)
        return
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // t.cols)
    for start in range(0, t.rows, rows_per_chunk):
        rows = min(rows_per_chunk, t.rows - start)
        if t.qtype is GGMLQuantizationType.Q4_0:
            fout.write(_random_q4_0(rng, rows, t.cols, scale=_std_for(t) / 4.6))
        else:
            block = _random_float_rows(rng, t, start, rows, n_embd, steer_printable)
            dtype = np.float16 if t.qtype is GGMLQuantizationType.F16 else np.float32
            block.astype(dtype, copy=False).tofile(fout)


def _std_for(t: _Tensor) -> float:
    # Small weights keep activations and logits finite through any number of layers:
    # each block adds a little to the residual stream, RMSNorm rescales before the next.
    return 0.5 if t.kind == "embd" else 0.3 if t.kind == "output" else 0.02


def _random_float_rows(
    rng: np.random.Generator, t: _Tensor, start: int, rows: int, n_embd: int, steer: bool
) -> np.ndarray:
    block = rng.standard_normal((rows, t.cols), dtype=np.float32) * np.float32(_std_for(t))
    if steer and t.kind == "embd":
        # Feature 0 of every token embedding is a constant +1: it dominates the residual
        # stream (the blocks only add ~0.02-scale noise), so after the final RMSNorm it
        # is a reliably positive "bias" input to the output layer.
        block[:, 0] = 1.0
    if steer and t.kind == "output":
        # Output weight on that feature: +6 for printable ASCII bytes, -6 for everything
        # else (</s>, control and high bytes). The logit gap (~20) makes sampling pick
        # printable text only, while the random columns still vary the choice.
        ids = np.arange(start, start + rows)
        printable = (ids >= FIRST_BYTE_ID + _PRINTABLE.start) & (
            ids < FIRST_BYTE_ID + _PRINTABLE.stop
        )
        block[:, 0] = np.where(printable, 6.0, -6.0)
    return block


def _random_q4_0(rng: np.random.Generator, rows: int, cols: int, *, scale: float) -> bytes:
    """Q4_0 blocks as raw bytes: per 32 weights one fp16 scale ``d`` and 16 bytes of
    nibbles; weight = (nibble - 8) * d. Random nibbles, scales near ``scale``."""
    n_blocks = rows * cols // 32
    blocks = np.empty((n_blocks, 18), dtype=np.uint8)
    d = (rng.uniform(0.5, 1.5, n_blocks) * scale).astype(np.float16)
    blocks[:, :2] = d.view(np.uint8).reshape(n_blocks, 2)
    blocks[:, 2:] = np.frombuffer(rng.bytes(n_blocks * 16), dtype=np.uint8).reshape(n_blocks, 16)
    return blocks.tobytes()


def neutral_name(shape: dict[str, int | bool]) -> str:
    """A ``general.name`` for a preset's shape that names no real model: llama.cpp
    special-cases names containing e.g. "phi3"/"phi-3" (any case) and then fails to load
    the byte vocabulary ("error loading model vocabulary: unordered_map::at")."""
    return f"synthetic-{shape['n_layers']}L-{shape['n_embd']}E"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a random-weight llama GGUF.")
    parser.add_argument("output", type=Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--tensor-type", choices=sorted(_SUPPORTED_TYPES), default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shape = PRESETS[args.preset]
    tensor_type = args.tensor_type or ("F32" if args.preset == "tiny" else "Q4_0")
    out = write_synthetic_gguf(
        args.output, tensor_type=tensor_type, seed=args.seed, name=neutral_name(shape), **shape
    )
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
