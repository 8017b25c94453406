"""Model facts beside the catalog: the shipped figures, the loader and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.models.facts import (
    FACTS_DIR,
    ModelFacts,
    ModelFactsError,
    load_facts_for,
    load_model_facts,
    parse_model_facts,
)

MODEL_CONFIG_DIR = FACTS_DIR.parent

PUBLISHED = {
    "phi-3.5-mini-instruct": dict(
        quantization="Q4_K_M",
        file_size_bytes=2_393_231_072,
        layers=32,
        n_embd=3072,
        heads=32,
        kv_heads=32,
        head_dim=96,
        vocab=32064,
        default_context=4096,
    ),
    "llama-3.1-8b-instruct": dict(
        quantization="Q4_K_M",
        file_size_bytes=4_920_734_016,
        layers=32,
        n_embd=4096,
        heads=32,
        kv_heads=8,
        head_dim=128,
        vocab=128256,
        default_context=8192,
    ),
    "qwen2.5-0.5b-instruct": dict(
        quantization="Q4_K_M",
        file_size_bytes=397_808_192,
        layers=24,
        n_embd=896,
        heads=14,
        kv_heads=2,
        head_dim=64,
        vocab=151936,
        default_context=4096,
    ),
}
PARAMETERS_BILLIONS = {
    "phi-3.5-mini-instruct": 3.82,
    "llama-3.1-8b-instruct": 8.03,
    "qwen2.5-0.5b-instruct": 0.494,
}

VALID = """\
name: my-model
quantization: Q4_K_M
file_size_bytes: 4000000000
parameters: 7000000000
layers: 32
n_embd: 4096
heads: 32
kv_heads: 8
head_dim: 128
vocab: 32000
default_context: 4096
"""


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_facts_carry_the_published_figures(name: str) -> None:
    facts = load_model_facts(name)
    assert facts is not None
    assert facts.name == name
    assert facts.model_dump(include=set(PUBLISHED[name])) == PUBLISHED[name]
    assert facts.parameters / 1e9 == pytest.approx(PARAMETERS_BILLIONS[name], abs=0.005)


@pytest.mark.parametrize("path", sorted(FACTS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_facts_match_the_model_config_they_describe(path: Path) -> None:
    """Same weights file and the same default context as model_configs/<name>.yaml."""
    config = yaml.safe_load((MODEL_CONFIG_DIR / path.name).read_text())
    facts = load_model_facts(path.stem)
    assert facts is not None
    assert facts.gguf_file == config["parameters"]["model"]
    assert facts.default_context == config["context_size"]


def test_kv_cache_per_token_follows_grouped_query_attention() -> None:
    llama = load_model_facts("llama-3.1-8b-instruct")
    phi = load_model_facts("phi-3.5-mini-instruct")
    assert llama is not None and phi is not None
    assert llama.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # 128 KiB
    assert phi.kv_bytes_per_token == 2 * 32 * 32 * 96 * 2  # 384 KiB: no GQA


def test_a_model_without_facts_loads_as_none(tmp_path: Path) -> None:
    assert load_model_facts("my-own-model", tmp_path) is None
    (tmp_path / "my-model.yaml").write_text(VALID)
    assert load_facts_for(["my-model", "other"], tmp_path) == [
        ("my-model", parse_model_facts(VALID)),
        ("other", None),
    ]


def test_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "my-model.yaml").write_text(VALID + "n_layers: 32\n")
    with pytest.raises(ModelFactsError, match=r"my-model.yaml.*\n  - n_layers: unknown key"):
        load_model_facts("my-model", tmp_path)


def test_a_missing_key_is_named() -> None:
    text = VALID.replace("kv_heads: 8\n", "")
    with pytest.raises(ModelFactsError, match=r"kv_heads: required key is missing"):
        parse_model_facts(text)


def test_a_bad_value_is_refused_with_field_and_value() -> None:
    with pytest.raises(ModelFactsError, match=r"layers: .*greater than 0 \(got -1\)"):
        parse_model_facts(VALID.replace("layers: 32", "layers: -1"))


def test_kv_heads_must_divide_heads() -> None:
    with pytest.raises(ModelFactsError, match=r"kv_heads \(5\) must divide heads \(32\)"):
        parse_model_facts(VALID.replace("kv_heads: 8", "kv_heads: 5"))


def test_an_implausible_file_size_is_refused() -> None:
    with pytest.raises(ModelFactsError, match=r"bits per parameter"):
        parse_model_facts(VALID.replace("file_size_bytes: 4000000000", "file_size_bytes: 4000"))


def test_a_default_context_beyond_the_trained_one_is_refused() -> None:
    with pytest.raises(ModelFactsError, match=r"default_context \(4096\) exceeds max_context"):
        parse_model_facts(VALID + "max_context: 2048\n")


def test_the_name_must_match_the_file(tmp_path: Path) -> None:
    (tmp_path / "other-model.yaml").write_text(VALID)
    with pytest.raises(ModelFactsError, match=r"name is 'my-model' but the file is for"):
        load_model_facts("other-model", tmp_path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "my-model.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ModelFactsError, match=r"model_configs/facts/my-model.yaml is not valid"):
        load_model_facts("my-model", tmp_path)


@pytest.mark.parametrize("name", ["../secrets", "a/b", ""])
def test_a_model_name_cannot_escape_the_facts_directory(name: str) -> None:
    with pytest.raises(ModelFactsError, match="is not a model name"):
        load_model_facts(name)


def test_facts_are_immutable() -> None:
    facts = parse_model_facts(VALID)
    with pytest.raises(ValueError, match="frozen"):
        facts.layers = 1  # type: ignore[misc]
    assert isinstance(facts, ModelFacts)
