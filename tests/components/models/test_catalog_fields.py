"""components/models/catalog.py, field by field: each bound at its edge, what an unset field
is, that a validator keeps the value it accepts, and the messages and file handling the
second mutation set showed unpinned (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from components.errors import ModelConfigError
from components.models.catalog import (
    load_catalog,
    parse_model_config,
    render_model_yaml,
)
from components.models.re2 import re2_problem
from tests.components.models.test_catalog import GOOD, mutate


def with_params(**params: object) -> str:
    return mutate(lambda d: d["parameters"].update(params))


def with_top(**keys: object) -> str:
    return mutate(lambda d: d.update(keys))


PARAMETER_EDGES = {
    # field: (lowest accepted, just below it, highest accepted, just above it), as llama.cpp
    # takes them: probabilities in [0, 1], OpenAI's [-2, 2] penalties, a 32-bit seed.
    "temperature": (0.0, -0.5, 10.0, 10.5),
    "top_p": (0.0, -0.5, 1.0, 1.5),
    "top_k": (0, -1, 1_000_000, 1_000_001),
    "max_tokens": (1, 0, 1_048_576, 1_048_577),
    "seed": (-1, -2, 2**32 - 1, 2**32),
    "batch": (1, 0, 1_048_576, 1_048_577),
    "repeat_penalty": (0.0, -0.5, 10.0, 10.5),
    "repeat_last_n": (-1, -2, 1_048_576, 1_048_577),
    "n_keep": (-1, -2, 1_048_576, 1_048_577),
    "frequency_penalty": (-2.0, -2.5, 2.0, 2.5),
    "presence_penalty": (-2.0, -2.5, 2.0, 2.5),
    "tfz": (0.0, -0.5, 1.0, 1.5),
    "typical_p": (0.0, -0.5, 1.0, 1.5),
    "rope_freq_base": (0.5, 0.0, 1e9, 1e9 + 0.5),  # above 0
    "rope_freq_scale": (0.5, 0.0, 1000.0, 1000.5),  # above 0
}
TOP_LEVEL_EDGES = {
    "context_size": (1, 0, 1_048_576, 1_048_577),
    "mirostat": (0, -1, 2, 3),
    "mirostat_eta": (0.5, 0.0, 1.0, 1.5),  # above 0
    "mirostat_tau": (0.5, 0.0, 100.0, 100.5),  # above 0
    "threads": (1, 0, None, None),
    "gpu_layers": (0, -1, None, None),
}


def edges(table: dict) -> list[tuple[str, object, object]]:
    cases = []
    for field, (low, below, high, above) in table.items():
        cases.append((field, low, below))
        if high is not None:
            cases.append((field, high, above))
    return cases


@pytest.mark.parametrize(("field", "inside", "outside"), edges(PARAMETER_EDGES))
def test_each_parameter_bound_holds_at_its_edge(field: str, inside: object, outside: object):
    assert getattr(parse_model_config(with_params(**{field: inside})).parameters, field) == inside
    with pytest.raises(ModelConfigError, match=rf"parameters\.{field}"):
        parse_model_config(with_params(**{field: outside}))


@pytest.mark.parametrize(("field", "inside", "outside"), edges(TOP_LEVEL_EDGES))
def test_each_top_level_bound_holds_at_its_edge(field: str, inside: object, outside: object):
    assert getattr(parse_model_config(with_top(**{field: inside})), field) == inside
    with pytest.raises(ModelConfigError, match=rf"{field}"):
        parse_model_config(with_top(**{field: outside}))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_float_parameter_refuses_nan_and_infinity(value: float) -> None:
    with pytest.raises(ModelConfigError, match=r"parameters\.temperature"):
        parse_model_config(with_params(temperature=value))


def test_unset_fields_stay_unset() -> None:
    model = parse_model_config(GOOD)
    unset = ("top_k", "max_tokens", "seed", "batch", "repeat_last_n", "n_keep", "top_p",
             "repeat_penalty", "frequency_penalty", "presence_penalty", "tfz", "typical_p",
             "rope_freq_base", "rope_freq_scale")  # fmt: skip
    for field in unset:
        assert getattr(model.parameters, field) is None, field
    assert model.threads is None


def test_validators_keep_what_they_accept() -> None:
    model = parse_model_config(mutate(lambda d: d.update(cutstrings=["^x"], extract_regex=["(a)"])))
    assert model.cutstrings == ["^x"] and model.extract_regex == ["(a)"]
    assert model.template is not None and model.template.use_tokenizer_template is None
    off = parse_model_config(mutate(lambda d: d["template"].update(use_tokenizer_template=False)))
    assert off.template is not None and off.template.use_tokenizer_template is False
    assert model.weights_file == "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
    assert model.name == "qwen2.5-0.5b-instruct"
    with pytest.raises(ValidationError, match="frozen"):
        model.name = "other"  # type: ignore[misc]


def test_re2_accepts_what_re2_compiles_and_says_why_not_quietly(capfd) -> None:
    assert re2_problem("^a+$") is None
    # RE2's own reason, decoded from the bytes it raises, and nothing on stderr (RE2 logs
    # every failed parse there unless told not to).
    assert re2_problem("(?=a)") == "invalid perl operator: (?="
    assert re2_problem("(a") == "missing ): (a"
    assert "Error parsing" not in capfd.readouterr().err


def test_misplaced_keys_are_named_in_order() -> None:
    """Eight keys: a set's own order matches the sorted one by chance once in 40,320."""
    wrong = dict(threads=4, gpu_layers=9, mmap=True, mirostat=0, low_vram=True, numa=True,
                 flash_attention=True, main_gpu="0")  # fmt: skip
    with pytest.raises(ModelConfigError) as up:
        parse_model_config(with_params(**wrong))
    assert "'flash_attention' is under 'parameters'" in str(up.value)
    assert "(also: gpu_layers, low_vram, main_gpu, mirostat, mmap, numa, threads)" in str(up.value)
    wrong = dict(top_p=0.5, temperature=0.1, top_k=4, seed=1, batch=8, tfz=0.5, typical_p=0.5,
                 n_keep=1)  # fmt: skip
    with pytest.raises(ModelConfigError) as down:
        parse_model_config(with_top(**wrong))
    assert "'batch' is at the top level" in str(down.value)
    assert "(also: n_keep, seed, temperature, tfz, top_k, top_p, typical_p)" in str(down.value)
    with pytest.raises(ModelConfigError) as two:
        parse_model_config(with_top(seed=1, top_k=3))
    assert str(two.value).endswith("move it to 'parameters.seed' (also: top_k)")
    with pytest.raises(ModelConfigError) as one:
        parse_model_config(with_top(seed=1))
    assert str(one.value).endswith("move it to 'parameters.seed'")
    with pytest.raises(ModelConfigError) as one:
        parse_model_config(with_params(mmap=True))
    assert str(one.value).endswith("move 'parameters.mmap' up to 'mmap'")


def test_a_file_listed_twice_is_refused_with_the_list() -> None:
    def twice(data: dict) -> None:
        data["download_files"].append(dict(data["download_files"][0]))

    with pytest.raises(
        ModelConfigError,
        match=r"download_files lists a filename twice: \['Qwen2\.5-0\.5B-Instruct-Q4_K_M\.gguf'",
    ):
        parse_model_config(mutate(twice))


def test_userinfo_is_refused_on_https_only_where_a_url_has_a_host() -> None:
    with pytest.raises(ModelConfigError, match=r"must not carry a user name or password"):
        parse_model_config(
            mutate(lambda d: d["download_files"][0].update(uri="https://u:p@x.example/f.gguf"))
        )
    with pytest.raises(ModelConfigError, match=r"an '@' in the owner is neither a revision"):
        parse_model_config(
            mutate(lambda d: d["download_files"][0].update(uri="huggingface://u@o/r/f.gguf"))
        )
    # An '@' in a hub URI's repo is a revision, not userinfo.
    model = parse_model_config(
        mutate(lambda d: d["download_files"][0].update(uri="huggingface://o/r@v1/f.gguf"))
    )
    assert model.download_files[0].uri == "huggingface://o/r@v1/f.gguf"


def test_a_catalog_file_error_names_the_file_and_reads_utf8(tmp_path: Path) -> None:
    data = yaml.safe_load(GOOD)
    data["description"] = "Qwen — petit modèle"
    (tmp_path / "qwen2.5-0.5b-instruct.yaml").write_bytes(
        yaml.safe_dump(data, allow_unicode=True).encode("utf-8")
    )
    assert load_catalog(tmp_path)["qwen2.5-0.5b-instruct"].description == "Qwen — petit modèle"
    data["context_size"] = 0
    (tmp_path / "qwen2.5-0.5b-instruct.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ModelConfigError, match=r"^model_configs/qwen2\.5-0\.5b-instruct\.yaml"):
        load_catalog(tmp_path)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ModelConfigError, match=rf"no model configs \(\*\.yaml\) found in {tmp_path}"
    ):
        load_catalog(tmp_path)


def test_every_clash_with_a_config_name_is_named_in_order(tmp_path: Path) -> None:
    """Download files named like other models' rendered configs. Six models each download
    the next one's config name: a set keeps sorted order by chance once in 720."""
    names = ["a-model", "b-model", "c-model", "d-model", "e-model", "f-model"]
    for index, name in enumerate(names):
        data = yaml.safe_load(GOOD)
        data["name"] = name
        target = f"{names[(index + 1) % len(names)]}.yaml"
        data["parameters"]["model"] = target
        data["download_files"][0]["filename"] = target
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ModelConfigError) as clash:
        load_catalog(tmp_path)
    assert str(clash.value) == (
        "model_configs/f-model.yaml: download file 'a-model.yaml' has the name of model "
        "'a-model''s config in the models directory (also: b-model.yaml, c-model.yaml, "
        "d-model.yaml, e-model.yaml, f-model.yaml)"
    )
    (tmp_path / "b-model.yaml").unlink()
    (tmp_path / "c-model.yaml").unlink()
    (tmp_path / "d-model.yaml").unlink()
    (tmp_path / "e-model.yaml").unlink()
    with pytest.raises(ModelConfigError) as one:
        load_catalog(tmp_path)
    assert str(one.value).endswith("'a-model''s config in the models directory")


def test_the_rendered_yaml_keeps_order_unicode_and_long_lines() -> None:
    data = yaml.safe_load(GOOD)
    data["description"] = "é " + "word " * 60 + "end"
    text = render_model_yaml(parse_model_config(yaml.safe_dump(data)), gpu_layers=0, threads=2)
    assert text.startswith(
        "# Rendered by the localai Pulumi package from model_configs/qwen2.5-0.5b-instruct.yaml.\n"
        "# Edit that file, not this one: it is rewritten on every deploy.\n"
        "name: qwen2.5-0.5b-instruct\n"
    )
    assert f"description: é {'word ' * 60}end\n" in text  # one line, not escaped


def test_the_catalog_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    data = yaml.safe_load(GOOD)
    data["description"] = "Qwen — petit modèle"
    (tmp_path / "qwen2.5-0.5b-instruct.yaml").write_bytes(
        yaml.safe_dump(data, allow_unicode=True).encode("utf-8")
    )
    code = (
        "import sys; from pathlib import Path; from components.models.catalog import load_catalog;"
        "print(load_catalog(Path(sys.argv[1]))['qwen2.5-0.5b-instruct'].description.encode())"
    )
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == repr("Qwen — petit modèle".encode())
