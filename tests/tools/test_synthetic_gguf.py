"""tools/synthetic_gguf.py: files gguf reads back and llama.cpp loads and runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from tools import synthetic_gguf
from tools.synthetic_gguf import BYTE_VOCAB_SIZE, PRESETS, write_synthetic_gguf


def field(reader: GGUFReader, key: str):
    return reader.get_field(key).contents()


def test_tiny_default_is_a_small_f32_llama_with_a_byte_vocab(tmp_path: Path) -> None:
    path = write_synthetic_gguf(tmp_path / "tiny.gguf", **PRESETS["tiny"])
    assert 100_000 < path.stat().st_size < 1_000_000
    reader = GGUFReader(path)
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.block_count") == 2
    assert field(reader, "llama.attention.head_count_kv") == 2
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == BYTE_VOCAB_SIZE
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens[3 + 0x41] == "<0x41>"
    assert {t.tensor_type for t in reader.tensors} == {GGMLQuantizationType.F32}


def test_q4_0_blocks_dequantize_to_small_finite_weights(tmp_path: Path) -> None:
    path = write_synthetic_gguf(
        tmp_path / "q4.gguf", n_embd=128, n_ff=256, n_vocab=400, tensor_type="Q4_0"
    )
    reader = GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    ffn_down = tensors["blk.0.ffn_down.weight"]
    assert ffn_down.tensor_type == GGMLQuantizationType.Q4_0
    assert list(ffn_down.shape) == [256, 128]  # ggml order: ne0 (inputs) first
    weights = dequantize(ffn_down.data, ffn_down.tensor_type)
    assert weights.shape == (128, 256)
    assert np.isfinite(weights).all()
    assert 0.01 < float(weights.std()) < 0.04  # ~0.02, like an initialised model
    assert tensors["output_norm.weight"].tensor_type == GGMLQuantizationType.F32
    assert len(field(reader, "tokenizer.ggml.tokens")) == 400
    assert field(reader, "general.file_type") == 2  # MOSTLY_Q4_0


def test_tied_embeddings_omit_the_output_tensor(tmp_path: Path) -> None:
    path = write_synthetic_gguf(tmp_path / "tied.gguf", tie_embeddings=True)
    names = {t.name for t in GGUFReader(path).tensors}
    assert "output.weight" not in names and "token_embd.weight" in names


def test_cli_preset_names_no_real_model(tmp_path: Path, monkeypatch) -> None:
    """llama.cpp takes a Phi-3 vocabulary path for any general.name containing "phi3" or
    "phi-3" and then fails to load the byte vocabulary. The CLI must write a neutral name
    for the phi-3.5-mini preset (its shape swapped for the tiny one: 2 GB otherwise)."""
    monkeypatch.setitem(PRESETS, "phi-3.5-mini", PRESETS["tiny"])
    path = tmp_path / "phi.gguf"
    assert synthetic_gguf.main([str(path), "--preset", "phi-3.5-mini"]) == 0
    name = field(GGUFReader(path), "general.name")
    assert name == "synthetic-2L-64E"
    assert not re.search(r"phi-?3", name, re.IGNORECASE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_embd=80, tensor_type="Q4_0"), "n_embd (80) must be divisible by 32"),
        (dict(n_head=5), "divisible by n_head"),
        (dict(n_head_kv=3), "multiple of n_head_kv"),
        (dict(n_vocab=100), "at least 259"),
        (dict(tensor_type="Q8_0"), "use one of F32, F16, Q4_0"),
        (dict(tensor_type="Q4_0", steer_printable=True), "steer_printable needs float"),
    ],
)
def test_bad_shapes_are_refused_with_the_reason(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        write_synthetic_gguf(tmp_path / "bad.gguf", **kwargs)
    assert not (tmp_path / "bad.gguf").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(PRESETS["tiny"]),
        dict(n_embd=128, n_ff=256, n_vocab=512, tensor_type="Q4_0", tie_embeddings=True),
        dict(n_embd=64, n_ff=128, tensor_type="F16"),
    ],
    ids=["tiny-f32", "q4_0-tied-extra-vocab", "f16"],
)
def test_llama_cpp_loads_and_runs_it(tmp_path: Path, kwargs: dict) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    path = write_synthetic_gguf(tmp_path / "model.gguf", **kwargs)
    llm = llama_cpp.Llama(str(path), n_ctx=128, verbose=False, logits_all=True)
    try:
        tokens = llm.tokenize(b"Hello, world")
        assert tokens[0] == 1 and len(tokens) == 1 + len(b"Hello,") + 3 + len(b"world")
        llm.eval(tokens)
        logits = np.array(llm.scores[: llm.n_tokens])
        assert np.isfinite(logits).all() and float(logits.std()) > 0
        text = llm.create_completion("Hi", max_tokens=12, temperature=0.8)["choices"][0]["text"]
        if kwargs.get("tensor_type", "F32") != "Q4_0":  # steered: printable, never </s>
            assert len(text) == 12 and all(" " <= ch <= "~" for ch in text), repr(text)
    finally:
        llm.close()
