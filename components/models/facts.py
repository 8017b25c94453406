"""Hardware facts about each model's GGUF file, kept beside the model catalog.

``model_configs/facts/<model-name>.yaml`` records what sizing needs and LocalAI's model
YAML does not say: file size, parameter count and the transformer shape that decides the
KV cache. :mod:`components.sizing.planner` uses them to check a model fits a host and to
estimate its speed.

Facts are optional: a user can drop a model YAML into ``model_configs/`` without one.
:func:`load_model_facts` then returns ``None`` and the planner skips the fit check for
that model (with a warning) instead of failing. A facts file that exists but is wrong
is an error (:class:`ModelFactsError`), naming the file, the field and the value.

This module is pure Python (pydantic + PyYAML); it never imports Pulumi.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.models.validated_yaml import parse_yaml_model
from components.paths import MODEL_FACTS_DIR

FACTS_DIR = MODEL_FACTS_DIR
"""Where the facts live: ``<model-name>.yaml``, one per model."""

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_QUANT = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")


class ModelFactsError(ValueError):
    """A facts file is unreadable or invalid (the message names file, field and value)."""


class ModelFacts(BaseModel):
    """What the planner needs to know about one GGUF file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """The model name; equals the file stem and the catalog entry's ``name``."""
    gguf_file: str | None = None
    """The weights file the model YAML downloads (for cross-checks; optional)."""
    quantization: str
    """GGUF quantization type, for example ``Q4_K_M``."""
    file_size_bytes: int = Field(gt=0)
    parameters: int = Field(gt=0)
    """Total parameter count (embeddings included)."""
    layers: int = Field(gt=0, le=1024)
    """Transformer blocks (``<arch>.block_count``)."""
    n_embd: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab: int = Field(gt=0)
    tied_embeddings: bool = False
    """True when the output head reuses the token embedding matrix."""
    default_context: int = Field(gt=0)
    """The ``context_size`` the model's catalog YAML sets."""
    max_context: int | None = Field(default=None, gt=0)
    """Trained context length; a larger context is refused. ``None``: not checked."""

    @model_validator(mode="after")
    def _consistent(self) -> ModelFacts:
        if not _MODEL_NAME.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} is not a model name like 'phi-3.5-mini-instruct'")
        if not _QUANT.fullmatch(self.quantization):
            raise ValueError(
                f"quantization {self.quantization!r} is not a GGUF type like 'Q4_K_M' or 'F16'"
            )
        if self.kv_heads > self.heads or self.heads % self.kv_heads:
            raise ValueError(
                f"kv_heads ({self.kv_heads}) must divide heads ({self.heads}): "
                "grouped-query attention shares each KV head among a whole group"
            )
        if self.max_context is not None and self.default_context > self.max_context:
            raise ValueError(
                f"default_context ({self.default_context}) exceeds max_context ({self.max_context})"
            )
        embeddings = self.vocab * self.n_embd * (1 if self.tied_embeddings else 2)
        if embeddings >= self.parameters:
            raise ValueError(
                f"parameters ({self.parameters}) is not larger than the embedding matrices "
                f"alone ({embeddings} = vocab x n_embd x {1 if self.tied_embeddings else 2}); "
                "check parameters, vocab, n_embd and tied_embeddings"
            )
        bits = self.file_size_bytes * 8 / self.parameters
        if not 1.0 <= bits <= 34.0:
            raise ValueError(
                f"file_size_bytes ({self.file_size_bytes}) is {bits:.2f} bits per parameter; "
                "a GGUF file holds between 1 and 34 bits per parameter: check both numbers"
            )
        return self

    # -- derived figures used by sizing ---------------------------------------------------

    @property
    def bytes_per_parameter(self) -> float:
        """Average over the file (quantized blocks, their scales and the metadata)."""
        return self.file_size_bytes / self.parameters

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V, every layer, f16 (LocalAI v2.24's llama.cpp default cache type)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


def parse_model_facts(text: str, *, source: str = "<model facts>") -> ModelFacts:
    """Parse and validate one facts YAML document; :class:`ModelFactsError` if invalid."""
    return parse_yaml_model(
        text,
        ModelFacts,
        source=source,
        what="model facts file",
        error=ModelFactsError,
        unknown_key=f"the keys are: {', '.join(ModelFacts.model_fields)}",
    )


def load_model_facts(name: str, facts_dir: Path | None = None) -> ModelFacts | None:
    """Facts for model ``name``, or ``None`` when ``<facts_dir>/<name>.yaml`` is absent."""
    if not _MODEL_NAME.fullmatch(name):
        raise ModelFactsError(f"{name!r} is not a model name like 'phi-3.5-mini-instruct'")
    directory = FACTS_DIR if facts_dir is None else facts_dir
    path = directory / f"{name}.yaml"
    if not path.is_file():
        return None
    source = f"model_configs/facts/{path.name}"
    facts = parse_model_facts(path.read_text(encoding="utf-8"), source=source)
    if facts.name != name:
        raise ModelFactsError(
            f"{source}: name is {facts.name!r} but the file is for {name!r}; "
            "the file stem and the name must match"
        )
    return facts


def load_facts_for(
    names: Iterable[str], facts_dir: Path | None = None
) -> list[tuple[str, ModelFacts | None]]:
    """``[(name, facts or None), ...]`` in the given order: the planner's ``models`` input."""
    return [(name, load_model_facts(name, facts_dir)) for name in names]
