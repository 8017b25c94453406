"""components/models/catalog.py: every shipped model validates; LocalAI's silent traps are caught."""

from __future__ import annotations

import re
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


def test_the_catalog_ships_three_chat_models_and_one_embeddings_model() -> None:
    catalog = load_catalog()
    assert set(catalog) == {
        "phi-3.5-mini-instruct",
        "llama-3.1-8b-instruct",
        "qwen2.5-0.5b-instruct",
        "nomic-embed-text-v1.5",
    }
    assert [n for n, m in sorted(catalog.items()) if m.embeddings] == ["nomic-embed-text-v1.5"]
    embedder = catalog["nomic-embed-text-v1.5"]
    assert embedder.template is None and embedder.function is None


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_model_config_is_complete(path: Path) -> None:
    model = parse_model_config(path.read_text(), source=path.name)
    assert model.backend == "llama-cpp"
    assert model.context_size >= 2048, "LocalAI's default of 512 is a trap: set it"
    assert model.parameters.model == model.download_files[0].filename
    assert model.download_files[0].uri.startswith("huggingface://")
    assert model.gpu_layers is None, "gpu_layers is decided per host when rendering"
    if model.embeddings:
        return  # an encoder: no chat template, no stopwords
    assert model.template is not None and model.template.chat and model.template.chat_message
    assert model.stopwords, "a chat model needs its end-of-turn stopwords"


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


@pytest.mark.parametrize("stem", ["a-renamed", "zz-renamed"])  # before and after "qwen..."
def test_file_name_and_model_name_must_match(tmp_path: Path, stem: str) -> None:
    (tmp_path / f"{stem}.yaml").write_text(GOOD)
    with pytest.raises(ModelConfigError, match=r"rename the file to qwen2\.5-0\.5b-instruct\.yaml"):
        load_catalog(tmp_path)


def test_the_source_and_the_rendering_options_are_keyword_only() -> None:
    # Positional calls would silently bind a host's numbers to the wrong parameter.
    with pytest.raises(TypeError):
        parse_model_config(GOOD, "model_configs/x.yaml")  # type: ignore[misc]
    model = parse_model_config(GOOD)
    with pytest.raises(TypeError):
        render_model_yaml(model, 0, None)  # type: ignore[misc]


@pytest.mark.parametrize(("gpu_layers", "threads"), [(0, 4), (99, 8)])
def test_rendering_sets_offload_and_threads_at_the_top_level(gpu_layers: int, threads: int) -> None:
    model = load_catalog()["phi-3.5-mini-instruct"]
    rendered = render_model_yaml(model, gpu_layers=gpu_layers, threads=threads, context_size=2048)
    data = yaml.safe_load(rendered)
    assert data["gpu_layers"] == gpu_layers
    assert data["threads"] == threads
    assert data["context_size"] == 2048
    assert "gpu_layers" not in data["parameters"]
    # Every key rendered is one LocalAI reads (the catalog's schema; download_files is the
    # fetcher's business and left out of what LocalAI gets).
    restored = {**data, "download_files": model.model_dump()["download_files"]}
    assert parse_model_config(yaml.safe_dump(restored)).gpu_layers == gpu_layers


def test_rendering_gives_a_default_answer_length_the_file_can_override() -> None:
    model = load_catalog()["phi-3.5-mini-instruct"]
    assert model.parameters.max_tokens is None
    rendered = yaml.safe_load(render_model_yaml(model, gpu_layers=0, threads=4, max_tokens=512))
    assert rendered["parameters"]["max_tokens"] == 512
    unset = yaml.safe_load(render_model_yaml(model, gpu_layers=0, threads=4))
    assert "max_tokens" not in unset["parameters"]
    own = parse_model_config(mutate(lambda d: d["parameters"].update(max_tokens=100)))
    kept = yaml.safe_load(render_model_yaml(own, gpu_layers=0, threads=4, max_tokens=512))
    assert kept["parameters"]["max_tokens"] == 100


# --- sources, shared files, bounded YAML, LocalAI defaults (issue 10, part 4) --------------


def with_uri(uri: str) -> str:
    def change(data: dict) -> None:
        data["download_files"][0]["uri"] = uri

    return mutate(change)


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        (
            "http://example.com/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
            "without TLS or without checking the sha256",
        ),
        ("oci://registry.example/qwen:latest", "without TLS or without checking the sha256"),
        ("ollama://qwen2.5:0.5b", "without TLS or without checking the sha256"),
        ("github:owner/repo/file.gguf@main", "without TLS or without checking the sha256"),
        (
            "huggingface://bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf@abc123",
            "a revision after the file name is silently dropped",
        ),
        (
            "huggingface://bartowski/Qwen2.5-0.5B-Instruct-GGUF/sub/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
            "a file in a subfolder resolves wrongly",
        ),
        (
            "huggingface://bartowski/Qwen2.5-0.5B-Instruct-GGUF",
            "a file in a subfolder resolves wrongly",
        ),
        (
            "huggingface://bartowski/Qwen2.5-0.5B-Instruct-GGUF/blob/main/x.gguf",
            "without '/blob/main/'",
        ),
    ],
)
def test_sources_that_cannot_be_verified_or_resolve_wrongly_are_refused(
    uri: str, fragment: str
) -> None:
    with pytest.raises(ModelConfigError, match=re.escape(fragment)):
        parse_model_config(with_uri(uri))


@pytest.mark.parametrize(
    "uri",
    [
        "https://huggingface.co/bartowski/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
        "huggingface://bartowski/Qwen2.5-0.5B-Instruct-GGUF@9217f5db79a29953eb74d5343926648285ec7e67/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
    ],
)
def test_https_and_huggingface_with_a_repo_revision_are_accepted(uri: str) -> None:
    assert parse_model_config(with_uri(uri)).download_files[0].uri == uri


def _second_model(data: dict) -> None:
    data["name"] = "qwen-copy"


@pytest.mark.parametrize("digit", ["0", "f"])  # a hash below and above the first model's
def test_a_file_shared_by_two_models_must_have_one_hash(tmp_path: Path, digit: str) -> None:
    (tmp_path / "qwen2.5-0.5b-instruct.yaml").write_text(GOOD)

    def other_hash(data: dict) -> None:
        _second_model(data)
        data["download_files"][0]["sha256"] = digit * 64

    (tmp_path / "qwen-copy.yaml").write_text(mutate(other_hash))
    with pytest.raises(
        ModelConfigError,
        match=r"download file 'Qwen2.5-0.5B-Instruct-Q4_K_M.gguf' is also model 'qwen-copy''s, with another sha256",
    ):
        load_catalog(tmp_path)
    (tmp_path / "qwen-copy.yaml").write_text(mutate(_second_model))
    assert set(load_catalog(tmp_path)) == {"qwen2.5-0.5b-instruct", "qwen-copy"}


def test_a_download_named_like_a_model_config_is_refused(tmp_path: Path) -> None:
    def clash(data: dict) -> None:
        data["name"] = "clash"
        data["download_files"].append(
            {"filename": "qwen2.5-0.5b-instruct.yaml", "sha256": "1" * 64,
             "uri": "https://example.com/a/b/qwen2.5-0.5b-instruct.yaml"}
        )  # fmt: skip

    (tmp_path / "qwen2.5-0.5b-instruct.yaml").write_text(GOOD)
    (tmp_path / "clash.yaml").write_text(mutate(clash))
    with pytest.raises(
        ModelConfigError,
        match=r"download file 'qwen2.5-0.5b-instruct.yaml' has the name of model 'qwen2.5-0.5b-instruct''s config",
    ):
        load_catalog(tmp_path)


def test_yaml_aliases_are_refused_so_a_small_file_cannot_expand_to_gigabytes() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" + GOOD
    with pytest.raises(
        ModelConfigError, match=r"is not valid YAML: .*YAML aliases \(\*name\) are not allowed"
    ):
        parse_model_config(bomb)


def test_an_oversized_yaml_is_refused() -> None:
    with pytest.raises(ModelConfigError, match=r"is not valid YAML: the file is over 256 KiB"):
        parse_model_config(GOOD + "#" * (256 * 1024))
    assert parse_model_config(GOOD + "#" * 1000).name == "qwen2.5-0.5b-instruct"


def test_mirostat_is_rendered_off_unless_the_model_sets_it() -> None:
    """Unset, LocalAI applies mirostat 2 and llama.cpp ignores top_p/top_k."""
    rendered = yaml.safe_load(render_model_yaml(parse_model_config(GOOD), gpu_layers=0, threads=2))
    assert rendered["mirostat"] == 0

    def mirostat(data: dict) -> None:
        data.update(mirostat=2, mirostat_tau=5.0, mirostat_eta=0.1)

    kept = yaml.safe_load(
        render_model_yaml(parse_model_config(mutate(mirostat)), gpu_layers=0, threads=2)
    )
    assert (kept["mirostat"], kept["mirostat_tau"], kept["mirostat_eta"]) == (2, 5.0, 0.1)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.update(f16=True), "has no effect on the llama-cpp backend of LocalAI v2.24.0"),
        (lambda d: d["template"].update(use_tokenizer_template=True), "receives an empty prompt"),
        (lambda d: d.update(mirostat=3), "mirostat"),
    ],
    ids=["f16", "use_tokenizer_template", "mirostat-3"],
)
def test_keys_that_do_nothing_or_break_llama_cpp_are_refused(change, fragment: str) -> None:
    with pytest.raises(ModelConfigError, match=re.escape(fragment)):
        parse_model_config(mutate(change))


def test_prompt_reuse_is_rendered_on_unless_the_model_turns_it_off() -> None:
    """Without it LocalAI sends cache_prompt false and every turn re-reads the whole chat."""
    rendered = yaml.safe_load(render_model_yaml(parse_model_config(GOOD), gpu_layers=0, threads=2))
    assert rendered["prompt_cache_all"] is True

    def off(data: dict) -> None:
        data["prompt_cache_all"] = False

    kept = yaml.safe_load(
        render_model_yaml(parse_model_config(mutate(off)), gpu_layers=0, threads=2)
    )
    assert kept["prompt_cache_all"] is False


# -- issue 18, items 25-29: values in a model file that did harm --------------------------


@pytest.mark.parametrize(
    "template",
    ['{{ env "HF_TOKEN" }}{{.Input}}', "{{.Input}}{{ expandenv \"$API_KEY\" }}",
     '{{- env\n "LOCALAI_API_KEY" -}}'],
)  # fmt: skip
def test_a_template_that_reads_the_environment_is_refused(template: str) -> None:
    """Sprig's env in a template put the token into every prompt (item 25)."""
    text = mutate(lambda d: d["template"].update(chat=template))
    with pytest.raises(ModelConfigError, match=r"template\.chat: calls env or expandenv"):
        parse_model_config(text, source="bad.yaml")


def test_a_template_mentioning_environment_in_text_is_fine() -> None:
    text = mutate(lambda d: d["template"].update(chat="Your environment: {{.Input}}"))
    assert parse_model_config(text, source="ok.yaml").template.chat.startswith("Your environment")


@pytest.mark.parametrize(
    "uri",
    ["https://alice:s3cret@example.com/m.gguf", "https://token@example.com/m.gguf",
     "https://user%40x:p@example.com/m.gguf"],
)  # fmt: skip
def test_a_uri_with_credentials_is_refused(uri: str) -> None:
    """It landed in the plain manifest, user data and state (item 26)."""
    with pytest.raises(ModelConfigError, match=r"must not carry a user name or password") as info:
        parse_model_config(with_uri(uri), source="bad.yaml")
    userinfo = uri.split("//", 1)[1].split("@", 1)[0]
    assert userinfo not in str(info.value), "the credentials are not echoed"
    assert "(got 'https://[credentials]@example.com/m.gguf')" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("temperature", float("nan")), ("temperature", -0.1), ("temperature", 1e308),
     ("top_p", -5), ("top_p", 1.01), ("typical_p", 2), ("tfz", -1),
     ("frequency_penalty", 2.5), ("presence_penalty", -3), ("repeat_penalty", float("inf")),
     ("top_k", -1), ("seed", 2**32), ("seed", -2), ("max_tokens", 0), ("batch", 0),
     ("rope_freq_base", 0), ("rope_freq_scale", -1)],
)  # fmt: skip
def test_sampling_values_outside_what_llama_cpp_takes_are_refused(key: str, value) -> None:
    text = mutate(lambda d: d["parameters"].update({key: value}))
    with pytest.raises(ModelConfigError, match=rf"parameters\.{key}:"):
        parse_model_config(text, source="bad.yaml")


@pytest.mark.parametrize(
    ("key", "value"),
    [("temperature", 0), ("temperature", 10), ("top_p", 0), ("top_p", 1), ("seed", -1),
     ("seed", 2**32 - 1), ("frequency_penalty", -2), ("presence_penalty", 2), ("top_k", 0)],
)  # fmt: skip
def test_sampling_values_at_their_limits_are_accepted(key: str, value) -> None:
    text = mutate(lambda d: d["parameters"].update({key: value}))
    assert getattr(parse_model_config(text, source="ok.yaml").parameters, key) == value


@pytest.mark.parametrize(("key", "value"), [("mirostat_tau", float("nan")), ("mirostat_eta", 0)])
def test_mirostat_settings_are_bounded(key: str, value) -> None:
    text = mutate(lambda d: d.update({key: value}))
    with pytest.raises(ModelConfigError, match=rf"{key}:"):
        parse_model_config(text, source="bad.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: " + "[" * 100_000 + "]" * 100_000, "nests too deeply"),
     ("name: x\ncontext_size: " + "9" * 100_000 + "\n", "is not a LocalAI v2.24 model config")],
)  # fmt: skip
def test_a_pathological_file_is_one_clear_error(text: str, message: str) -> None:
    """A 100,000-deep list or a 100,000-digit integer escaped as a traceback (item 28)."""
    with pytest.raises(ModelConfigError, match=message) as info:
        parse_model_config(text, source="bad.yaml")
    assert str(info.value).startswith("bad.yaml")
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize(
    ("key", "pattern"),
    [("cutstrings", r"(?=<\|end\|>)"), ("cutstrings", r"(a)\1"), ("extract_regex", r"(?<!x)y"),
     ("extract_regex", r"["), ("cutstrings", r"\Z")],
)  # fmt: skip
def test_patterns_go_cannot_compile_are_refused(key: str, pattern: str) -> None:
    """Go's regexp (RE2) refused them at the first completion and LocalAI exited (item 29)."""
    text = mutate(lambda d: d.update({key: [pattern]}))
    with pytest.raises(ModelConfigError, match=rf"{key}: .*is not an RE2 pattern"):
        parse_model_config(text, source="bad.yaml")


def test_re2_patterns_are_accepted() -> None:
    text = mutate(lambda d: d.update(cutstrings=[r"<\|end\|>.*$", r"(?s)\s+$"]))
    assert parse_model_config(text, source="ok.yaml").cutstrings == [r"<\|end\|>.*$", r"(?s)\s+$"]


def test_rendered_configs_leave_the_download_to_the_fetcher() -> None:
    """With download_files and their sha256, LocalAI re-hashed every weights file at every
    start before its port opened (item 31); the fetcher has verified them already."""
    model = load_catalog()["phi-3.5-mini-instruct"]
    rendered = yaml.safe_load(render_model_yaml(model, gpu_layers=0, threads=4))
    assert "download_files" not in rendered
    assert rendered["parameters"]["model"] == model.download_files[0].filename


# -- issue 22: the catalog's guards, each pinned by an input that shows it ----------------


def with_file_name(name: str) -> str:
    def change(data: dict) -> None:
        data["download_files"][0]["filename"] = name
        data["parameters"]["model"] = name

    return mutate(change)


@pytest.mark.parametrize("name", ["sub/model.gguf", "", "..", ".", "a\\b.gguf"])
def test_download_file_names_must_be_plain_names(name: str) -> None:
    with pytest.raises(
        ModelConfigError, match=r"must be a plain file name inside the models directory"
    ):
        parse_model_config(with_file_name(name), source="bad.yaml")


@pytest.mark.parametrize("name", ["my model", "x" * 65, "Upper", "-dash-first", ""])
def test_model_names_are_short_lowercase_words(name: str) -> None:
    text = mutate(lambda d: d.update(name=name))
    with pytest.raises(ModelConfigError, match=r"name: must be lowercase letters, digits"):
        parse_model_config(text, source="bad.yaml")


def test_a_64_character_model_name_is_accepted() -> None:
    text = mutate(lambda d: d.update(name="x" * 64))
    assert parse_model_config(text, source="ok.yaml").name == "x" * 64


def test_a_huggingface_uri_with_an_empty_segment_is_refused() -> None:
    with pytest.raises(ModelConfigError, match=r"huggingface:// URIs are owner/repo/file"):
        parse_model_config(with_uri("huggingface:///repo/file.gguf"), source="bad.yaml")


@pytest.mark.parametrize(("threads", "ok"), [(0, False), (1, True)])
def test_threads_must_be_positive(threads: int, ok: bool) -> None:
    text = mutate(lambda d: d.update(threads=threads))
    if ok:
        assert parse_model_config(text, source="ok.yaml").threads == threads
        return
    with pytest.raises(ModelConfigError, match=r"threads: Input should be greater than 0"):
        parse_model_config(text, source="bad.yaml")


def test_the_first_misplaced_key_is_the_one_named() -> None:
    text = mutate(lambda d: d["parameters"].update(threads=4, gpu_layers=9))
    with pytest.raises(ModelConfigError, match=r"'gpu_layers' is under 'parameters'"):
        parse_model_config(text, source="bad.yaml")


def test_empty_download_files_says_what_is_needed() -> None:
    text = mutate(lambda d: d.update(download_files=[]))
    with pytest.raises(ModelConfigError, match=r"download_files: List should have at least 1 item"):
        parse_model_config(text, source="bad.yaml")


def test_the_default_source_label_names_the_kind_of_file() -> None:
    with pytest.raises(
        ModelConfigError, match=r"^<model config> is not a valid LocalAI v2.24 model config:"
    ):
        parse_model_config(mutate(lambda d: d.update(threads=0)))
