"""components/models/catalog.py: every shipped model validates; LocalAI's silent traps are caught."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.errors import ModelConfigError
from components.models.catalog import (
    MODEL_CONFIG_DIR,
    load_catalog,
    parse_model_config,
    render_model_yaml,
)

SHIPPED = sorted(MODEL_CONFIG_DIR.glob("*.yaml"))
GOOD = (MODEL_CONFIG_DIR / "qwen2.5-0.5b-instruct.yaml").read_text()


def mutate(change) -> str:
    data = yaml.safe_load(GOOD)
    change(data)
    return yaml.safe_dump(data)


def test_the_catalog_ships_the_three_models_with_phi_as_one_of_them() -> None:
    assert set(load_catalog()) == {
        "phi-3.5-mini-instruct",
        "llama-3.1-8b-instruct",
        "qwen2.5-0.5b-instruct",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_model_config_is_complete(path: Path) -> None:
    model = parse_model_config(path.read_text(), source=path.name)
    assert model.backend == "llama-cpp"
    assert model.context_size >= 2048, "LocalAI's default of 512 is a trap: set it"
    assert model.parameters.model == model.download_files[0].filename
    assert model.download_files[0].uri.startswith("huggingface://")
    assert model.template is not None and model.template.chat and model.template.chat_message
    assert model.stopwords, "a chat model needs its end-of-turn stopwords"
    assert model.gpu_layers is None, "gpu_layers is decided per host when rendering"


@pytest.mark.parametrize(
    ("name", "end_of_turn"),
    [
        ("phi-3.5-mini-instruct", "<|end|>"),
        ("llama-3.1-8b-instruct", "<|eot_id|>"),
        ("qwen2.5-0.5b-instruct", "<|im_end|>"),
    ],
)
def test_template_and_stopwords_match_the_model_family(name: str, end_of_turn: str) -> None:
    model = load_catalog()[name]
    assert end_of_turn in model.template.chat_message
    assert end_of_turn in model.stopwords


def test_gpu_layers_under_parameters_is_rejected_with_where_it_belongs() -> None:
    text = mutate(lambda d: d["parameters"].update(gpu_layers=99))
    with pytest.raises(
        ModelConfigError,
        match=r"'gpu_layers' is under 'parameters' but LocalAI reads it at the top level.*move 'parameters.gpu_layers' up",
    ):
        parse_model_config(text, source="bad.yaml")


def test_a_sampling_parameter_at_the_top_level_is_rejected() -> None:
    text = mutate(lambda d: d.update(temperature=0.2))
    with pytest.raises(ModelConfigError, match=r"move it to 'parameters.temperature'"):
        parse_model_config(text)


def test_a_missing_filename_is_rejected() -> None:
    text = mutate(lambda d: d["download_files"][0].pop("filename"))
    with pytest.raises(
        ModelConfigError, match=r"download_files.0.filename: required key is missing"
    ):
        parse_model_config(text)


@pytest.mark.parametrize(
    ("sha", "message"),
    [
        ("abc123", "must be 64 lowercase hex characters"),
        (
            "6EB923E7D26E9CEA28811E1A8E852009B21242FB157B26149D3B188F3A8C8653",
            "must be lowercase hex",
        ),
    ],
)
def test_a_bad_sha256_is_rejected(sha: str, message: str) -> None:
    text = mutate(lambda d: d["download_files"][0].update(sha256=sha))
    with pytest.raises(ModelConfigError, match=rf"download_files.0.sha256: .*{message}"):
        parse_model_config(text)


def test_an_unknown_key_is_rejected_as_silently_ignored_by_localai() -> None:
    text = mutate(lambda d: d.update(gpu_layer=99))
    with pytest.raises(
        ModelConfigError, match=r"gpu_layer: unknown key: LocalAI v2.24 has no such key"
    ):
        parse_model_config(text)


def test_minus_one_gpu_layers_is_rejected() -> None:
    text = mutate(lambda d: d.update(gpu_layers=-1))
    with pytest.raises(ModelConfigError, match="gpu_layers"):
        parse_model_config(text)


def test_parameters_model_must_be_the_downloaded_file() -> None:
    text = mutate(lambda d: d["parameters"].update(model="other.gguf"))
    with pytest.raises(ModelConfigError, match="they must name the same file"):
        parse_model_config(text)


def test_a_missing_context_size_is_rejected() -> None:
    text = mutate(lambda d: d.pop("context_size"))
    with pytest.raises(ModelConfigError, match="context_size: required key is missing"):
        parse_model_config(text)


def test_huggingface_blob_urls_are_rejected() -> None:
    text = mutate(lambda d: d["download_files"][0].update(uri="huggingface://o/r/blob/main/f.gguf"))
    with pytest.raises(ModelConfigError, match="without '/blob/main/'"):
        parse_model_config(text)


def test_a_dropped_in_yaml_joins_the_catalog_without_code_changes(tmp_path: Path) -> None:
    data = yaml.safe_load(GOOD)
    data["name"] = "my-model"
    (tmp_path / "my-model.yaml").write_text(
        yaml.safe_dump(data).replace("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "my-model.gguf")
    )
    assert list(load_catalog(tmp_path)) == ["my-model"]


def test_file_name_and_model_name_must_match(tmp_path: Path) -> None:
    (tmp_path / "renamed.yaml").write_text(GOOD)
    with pytest.raises(ModelConfigError, match=r"rename the file to qwen2\.5-0\.5b-instruct\.yaml"):
        load_catalog(tmp_path)


@pytest.mark.parametrize(("gpu_layers", "threads"), [(0, 4), (99, 8)])
def test_rendering_sets_offload_and_threads_at_the_top_level(gpu_layers: int, threads: int) -> None:
    model = load_catalog()["phi-3.5-mini-instruct"]
    rendered = render_model_yaml(model, gpu_layers=gpu_layers, threads=threads, context_size=2048)
    data = yaml.safe_load(rendered)
    assert data["gpu_layers"] == gpu_layers
    assert data["threads"] == threads
    assert data["context_size"] == 2048
    assert "gpu_layers" not in data["parameters"]
    # What we render is itself a valid config (LocalAI would read every key).
    assert parse_model_config(rendered).gpu_layers == gpu_layers
