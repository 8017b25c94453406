"""The model catalog: LocalAI v2.24.0 model YAMLs in ``model_configs/``, validated.

LocalAI parses model YAML with a non-strict decoder: an unknown or misplaced key is
silently ignored. That is how ``gpu_layers`` written under ``parameters`` quietly turns
GPU offload off. The schema below mirrors LocalAI's own keys
(``core/config/backend_config.go`` and ``core/schema/prediction.go`` at v2.24.0) and
rejects anything else, with a message that says where the key belongs.

Adding a model is dropping one ``<name>.yaml`` file into ``model_configs/``.
Per host, :func:`render_model_yaml` produces the YAML LocalAI reads: ``gpu_layers``
(all layers on GPU hosts, 0 on CPU hosts) and ``threads`` are decided here, not in
the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from components.errors import ModelConfigError
from components.models.functions import FunctionsConfig
from components.models.re2 import re2_problem
from components.models.validated_yaml import parse_yaml_model
from components.paths import MODEL_CONFIG_DIR

"""Where the catalog lives: one LocalAI model YAML per model."""

ALL_GPU_LAYERS = 99
"""``gpu_layers`` that offloads every layer of any model we ship (all have <= 80).

LocalAI v2.24's llama.cpp computes ``i_gpu_start = n_layer - n_gpu_layers``, so ``-1``
offloads nothing: never use it as "all"."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENV_FUNCTION = re.compile(r"{{[^}]*\b(?:env|expandenv)\b", re.DOTALL)
"""A template action that calls sprig's env or expandenv."""
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_URI_SCHEMES = ("huggingface://", "https://")
"""Sources whose files are fetched as such and verified by their sha256. LocalAI also
takes http:// (no TLS), oci:// and ollama:// (v2.24.0:pkg/downloader/uri.go skips the
hash check for those two) and github: (a config fetch): refused."""


def _check_filename(value: str) -> str:
    if not value or "/" in value or "\\" in value or value in {".", ".."}:
        raise ValueError(
            "must be a plain file name inside the models directory, for example "
            "'model.Q4_K_M.gguf'; LocalAI refuses empty or nested paths "
            "with 'path is outside of trusted root' and then downloads nothing"
        )
    return value


def _check_sha256(value: str) -> str:
    if _SHA256.fullmatch(value):
        return value
    if _SHA256.fullmatch(value.lower()):
        raise ValueError(
            "must be lowercase hex: LocalAI compares the digest case-sensitively, so an "
            f"uppercase digest fails verification on every start (use {value.lower()!r})"
        )
    raise ValueError("must be 64 lowercase hex characters (a SHA-256 digest)")


def _check_uri(value: str) -> str:
    if not value.startswith(_URI_SCHEMES):
        raise ValueError(
            f"must start with one of {', '.join(_URI_SCHEMES)}: other sources are fetched "
            "without TLS or without checking the sha256"
        )
    if value.startswith("https://") and "@" in urlsplit(value).netloc:
        # The URI goes into the weights manifest, the user data and the state in plain
        # text; a token belongs in localai:hfToken (a secret).
        raise ValueError(
            "must not carry a user name or password (user:password@host): the URI is stored "
            "in plain text; use localai:hfToken for a gated Hugging Face model"
        )
    if value.startswith("huggingface://"):
        _check_huggingface(value.removeprefix("huggingface://"))
    return value


def _check_huggingface(path: str) -> None:
    """LocalAI v2.24.0's ConvertURL (pkg/downloader/uri.go) reads owner/repo[@rev]/file:
    only the third segment is the file, and a revision only counts in the repo segment."""
    if "/blob/" in f"/{path}":
        raise ValueError(
            "huggingface:// URIs take owner/repo/file, without '/blob/main/' "
            "(LocalAI issue #3100: it 404s)"
        )
    parts = path.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(
            "huggingface:// URIs are owner/repo/file (or owner/repo@revision/file): LocalAI "
            "uses only the third segment, so a file in a subfolder resolves wrongly"
        )
    if "@" in parts[0]:
        raise ValueError(
            "an '@' in the owner is neither a revision nor a login LocalAI uses: "
            "huggingface://owner/repo@revision/file"
        )
    if "@" in parts[2]:
        raise ValueError(
            "a revision after the file name is silently dropped by LocalAI (main is "
            "downloaded): put it on the repo, huggingface://owner/repo@revision/file"
        )


def _also(names: list[str]) -> str:
    """The names after the first one an error is about, for its message; "" if none."""
    return f" (also: {', '.join(names[1:])})" if len(names) > 1 else ""


FileName = Annotated[str, AfterValidator(_check_filename)]
Sha256 = Annotated[str, AfterValidator(_check_sha256)]
DownloadUri = Annotated[str, AfterValidator(_check_uri)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DownloadFile(_Strict):
    """One ``download_files`` entry: LocalAI fetches it before opening its port."""

    filename: FileName
    sha256: Sha256
    uri: DownloadUri


def _finite(low: float, high: float, *, above: bool = False) -> object:
    """A float in [low, high] ((low, high] with ``above``), never NaN or infinite."""
    bound = {"gt": low} if above else {"ge": low}
    return Field(default=None, le=high, allow_inf_nan=False, **bound)


class PredictionParameters(_Strict):
    """``parameters:`` (LocalAI ``schema.PredictionOptions``), each sampling value within
    what llama.cpp's samplers take: a probability in [0, 1], a temperature from 0 (greedy),
    OpenAI's [-2, 2] for the penalties, a 32-bit seed (-1: random)."""

    model: FileName
    temperature: float | None = _finite(0, 10)
    top_p: float | None = _finite(0, 1)
    top_k: int | None = Field(default=None, ge=0, le=1_000_000)
    max_tokens: int | None = Field(default=None, ge=1, le=1_048_576)
    seed: int | None = Field(default=None, ge=-1, le=2**32 - 1)
    batch: int | None = Field(default=None, ge=1, le=1_048_576)
    repeat_penalty: float | None = _finite(0, 10)
    repeat_last_n: int | None = Field(default=None, ge=-1, le=1_048_576)
    n_keep: int | None = Field(default=None, ge=-1, le=1_048_576)
    frequency_penalty: float | None = _finite(-2, 2)
    presence_penalty: float | None = _finite(-2, 2)
    tfz: float | None = _finite(0, 1)
    typical_p: float | None = _finite(0, 1)
    ignore_eos: bool | None = None
    rope_freq_base: float | None = _finite(0, 1e9, above=True)
    rope_freq_scale: float | None = _finite(0, 1e3, above=True)
    tokenizer: str | None = None


class TemplateConfig(_Strict):
    """``template:`` (Go text/template strings; there is no jinja option in v2.24.0)."""

    chat: str | None = None
    chat_message: str | None = None
    completion: str | None = None
    edit: str | None = None
    function: str | None = None
    use_tokenizer_template: bool | None = None
    join_chat_messages_by_character: str | None = None
    multimodal: str | None = None

    @field_validator("chat", "chat_message", "completion", "edit", "function", "multimodal")
    @classmethod
    def _no_environment(cls, value: str | None) -> str | None:
        # LocalAI renders templates with sprig's functions (pkg/templates), whose env and
        # expandenv read LocalAI's environment: the API key, a token, into every prompt.
        if value is not None and _ENV_FUNCTION.search(value):
            raise ValueError(
                "calls env or expandenv, which reads LocalAI's environment (its API key) into "
                "the prompt: templates may not read the environment"
            )
        return value

    @field_validator("use_tokenizer_template")
    @classmethod
    def _no_tokenizer_template(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError(
                "the llama-cpp backend of LocalAI v2.24.0 ignores it and then receives an "
                "empty prompt (LocalAI skips its own templating and sends only Messages, "
                "which grpc-server.cpp does not read): write chat/chat_message templates"
            )
        return value


class ModelConfig(_Strict):
    """A LocalAI v2.24.0 model config for the llama-cpp backend."""

    name: str
    description: str | None = None
    usage: str | None = None
    backend: Literal["llama-cpp"]
    context_size: int = Field(gt=0, le=1_048_576)
    parameters: PredictionParameters
    download_files: list[DownloadFile] = Field(min_length=1)
    template: TemplateConfig | None = None
    # Tool calls: how a request with `tools` is parsed and constrained (functions.py).
    function: FunctionsConfig | None = None
    stopwords: list[str] | None = None
    # Hardware and memory (top level in LocalAI: LLMConfig is inlined).
    gpu_layers: int | None = Field(default=None, ge=0)
    threads: int | None = Field(default=None, gt=0)
    f16: bool | None = None
    # Sampling: unset, LocalAI v2.24.0 applies mirostat 2 (core/config/backend_config.go,
    # defaultMirostat), and llama.cpp then ignores top_p/top_k. Rendered as 0 when unset.
    mirostat: int | None = Field(default=None, ge=0, le=2)
    mirostat_eta: float | None = _finite(0, 1, above=True)
    mirostat_tau: float | None = _finite(0, 100, above=True)
    # Prompt reuse: LocalAI v2.24.0 sends it to llama.cpp as each request's cache_prompt
    # (backend/cpp/llama/grpc-server.cpp, parse_options), so a slot reuses the KV cache of
    # the common prefix of its previous prompt (a multi-turn chat re-reads only the new
    # turn). Each slot keeps its own cache: safe with parallel slots. Rendered true unless
    # the file sets it. prompt_cache_path (a file cache) is not used.
    prompt_cache_all: bool | None = None
    mmap: bool | None = None
    mmlock: bool | None = None
    low_vram: bool | None = None
    numa: bool | None = None
    flash_attention: bool | None = None
    no_kv_offloading: bool | None = None
    main_gpu: str | None = None
    tensor_split: str | None = None
    # Output handling.
    cutstrings: list[str] | None = None
    trimspace: list[str] | None = None
    trimsuffix: list[str] | None = None
    extract_regex: list[str] | None = None
    grammar: str | None = None
    system_prompt: str | None = None
    roles: dict[str, str] | None = None
    known_usecases: list[str] | None = None
    embeddings: bool | None = None
    cuda: bool | None = None
    options: list[str] | None = None
    rope_scaling: str | None = None
    mmproj: str | None = None
    draft_model: str | None = None
    lora_adapter: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _reject_misplaced_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # unreachable: parse_yaml_model refuses a non-mapping first
        params = data.get("parameters")
        if isinstance(params, dict):
            top_level_only = set(cls.model_fields) - set(PredictionParameters.model_fields)
            misplaced = sorted(set(params) & top_level_only)
            if misplaced:
                key = misplaced[0]
                raise ValueError(
                    f"'{key}' is under 'parameters' but LocalAI reads it at the top level "
                    f"and silently ignores it there (for gpu_layers that means no GPU "
                    f"offload): move 'parameters.{key}' up to '{key}'{_also(misplaced)}"
                )
        misplaced_up = sorted(
            set(data) & (set(PredictionParameters.model_fields) - set(cls.model_fields))
        )
        if misplaced_up:
            key = misplaced_up[0]
            raise ValueError(
                f"'{key}' is at the top level but LocalAI reads it under 'parameters' and "
                f"silently ignores it here: move it to 'parameters.{key}'{_also(misplaced_up)}"
            )
        return data

    @field_validator("cutstrings", "extract_regex")
    @classmethod
    def _compiles_as_re2(cls, value: list[str] | None) -> list[str] | None:
        # LocalAI compiles these with Go's regexp (RE2 syntax) at the first completion, and
        # a pattern it cannot compile ends the process (log.Fatal): refuse it here.
        for pattern in value or []:
            problem = re2_problem(pattern)
            if problem is not None:
                raise ValueError(
                    f"{pattern!r} is not an RE2 pattern ({problem}); LocalAI would exit at "
                    "the first completion. RE2 has no lookaround and no backreferences"
                )
        return value

    @field_validator("f16")
    @classmethod
    def _no_f16(cls, value: bool | None) -> bool | None:
        if value is not None:
            raise ValueError(
                "has no effect on the llama-cpp backend of LocalAI v2.24.0 (memory_f16 is "
                "commented out in backend/cpp/llama/grpc-server.cpp): remove it"
            )
        return value  # None: any other value was refused

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _MODEL_NAME.fullmatch(value):
            raise ValueError(
                "must be lowercase letters, digits, '.', '_' or '-' (at most 64), "
                "for example 'phi-3.5-mini-instruct'"
            )
        return value

    @model_validator(mode="after")
    def _model_file_is_downloaded(self) -> ModelConfig:
        names = [f.filename for f in self.download_files]
        if self.parameters.model not in names:
            raise ValueError(
                f"parameters.model is {self.parameters.model!r} but download_files only "
                f"fetches {names}: they must name the same file"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"download_files lists a filename twice: {names}")
        return self

    @property
    def weights_file(self) -> str:
        return self.parameters.model


def parse_model_config(text: str, *, source: str = "<model config>") -> ModelConfig:
    """Parse and validate one model YAML document; raise ModelConfigError if invalid."""
    return parse_yaml_model(
        text,
        ModelConfig,
        source=source,
        what="LocalAI v2.24 model config",
        error=ModelConfigError,
        unknown_key=(
            "LocalAI v2.24 has no such key here and would silently ignore it "
            "(check the spelling and the nesting)"
        ),
    )


def load_catalog(directory: Path = MODEL_CONFIG_DIR) -> dict[str, ModelConfig]:
    """Every ``*.yaml`` in ``directory`` (not recursive), keyed by model name.

    The file stem must equal the model's ``name`` so a config is easy to find.
    """
    catalog: dict[str, ModelConfig] = {}
    files: dict[str, tuple[str, str]] = {}  # download filename -> (model, sha256)
    for path in sorted(directory.glob("*.yaml")):
        source = f"model_configs/{path.name}"
        model = parse_model_config(path.read_text(encoding="utf-8"), source=source)
        if model.name != path.stem:
            raise ModelConfigError(
                f"{source}: name is {model.name!r}; rename the file to {model.name}.yaml "
                "or change the name (they must match)"
            )
        for entry in model.download_files:
            other = files.get(entry.filename)
            if other is not None and other[1] != entry.sha256:
                raise ModelConfigError(
                    f"{source}: download file {entry.filename!r} is also model {other[0]!r}'s, "
                    "with another sha256: one file on the volume cannot be both (a shared "
                    "file needs the same sha256)"
                )
            files[entry.filename] = (model.name, entry.sha256)
        catalog[model.name] = model
    configs = {config_file_name(m): m.name for m in catalog.values()}
    clashes = sorted(set(files) & set(configs))
    if clashes:
        name = clashes[0]
        raise ModelConfigError(
            f"model_configs/{files[name][0]}.yaml: download file {name!r} has the name of "
            f"model {configs[name]!r}'s config in the models directory{_also(clashes)}"
        )
    if not catalog:
        raise ModelConfigError(f"no model configs (*.yaml) found in {directory}")
    return catalog


def render_model_yaml(
    model: ModelConfig,
    *,
    gpu_layers: int,
    threads: int | None,
    context_size: int | None = None,
    max_tokens: int | None = None,
) -> str:
    """The YAML LocalAI reads on one host: offload, threads and context decided for it.

    ``max_tokens`` is the default answer length when a request sets none (the file's own
    ``parameters.max_tokens`` wins): without one, LocalAI v2.24.0 sends llama.cpp
    n_predict -1 (backend/cpp/llama/grpc-server.cpp, line 2126) and generation runs until
    end-of-sequence or the slot's context is full. A request's ``max_tokens`` overrides it;
    ``max_completion_tokens`` is not read by v2.24.0 (core/schema/prediction.go)."""
    data = model.model_dump(exclude_none=True)
    # The package's fetcher has verified every file before LocalAI starts; with
    # download_files (and their sha256) LocalAI would read and hash every weights file
    # again at each start before opening its port (7.3 GB on the gpu stack), for every
    # key rotation, GPU retry and warm-pool start.
    del data["download_files"]
    data.setdefault("mirostat", 0)  # LocalAI's default (2) would ignore top_p/top_k
    data.setdefault("prompt_cache_all", True)  # follow-up turns skip the shared prefix
    data["gpu_layers"] = gpu_layers
    if context_size is not None:
        data["context_size"] = context_size
    if max_tokens is not None:
        data["parameters"].setdefault("max_tokens", max_tokens)
    if threads is not None:
        data["threads"] = threads
    header = (
        f"# Rendered by the localai Pulumi package from model_configs/{model.name}.yaml.\n"
        "# Edit that file, not this one: it is rewritten on every deploy.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def config_file_name(model: ModelConfig) -> str:
    """File name of the rendered config in LocalAI's models directory."""
    return f"{model.name}.yaml"
