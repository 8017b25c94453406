"""components/weights/manifest.py: the fetcher's manifest and LocalAI's URL resolution."""

from __future__ import annotations

import pytest

from components.models.catalog import ModelConfig, load_catalog, parse_model_config
from components.models.facts import ModelFacts, load_facts_for
from components.weights.manifest import resolve_uri, weights_manifest

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def model(name: str, files: list[tuple[str, str, str]]) -> ModelConfig:
    """A model whose weights are the first file listed."""
    downloads = "".join(
        f"  - filename: {file}\n    sha256: {sha}\n    uri: {uri}\n" for file, sha, uri in files
    )
    return parse_model_config(
        f"name: {name}\nbackend: llama-cpp\ncontext_size: 512\n"
        f"parameters:\n  model: {files[0][0]}\ndownload_files:\n{downloads}"
    )


def facts(name: str, size: int) -> ModelFacts:
    return ModelFacts(
        name=name,
        quantization="Q4_K_M",
        file_size_bytes=size,
        parameters=1_000_000,
        layers=2,
        n_embd=64,
        heads=2,
        kv_heads=2,
        head_dim=32,
        vocab=100,
        default_context=512,
    )


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("huggingface://o/r/f.gguf", "https://huggingface.co/o/r/resolve/main/f.gguf"),
        ("huggingface://o/r@abc/f.gguf", "https://huggingface.co/o/r/resolve/abc/f.gguf"),
        ("https://x.example/f.gguf", "https://x.example/f.gguf"),
        # Only the scheme at the start makes a hub URI.
        ("https://x.example/huggingface://o/r/f", "https://x.example/huggingface://o/r/f"),
    ],
)
def test_huggingface_uris_resolve_as_localai_resolves_them(uri: str, url: str) -> None:
    assert resolve_uri(uri) == url


def test_the_catalog_manifest_lists_each_file_once_with_its_size() -> None:
    catalog = load_catalog()
    names = ["phi-3.5-mini-instruct", "qwen2.5-0.5b-instruct"]
    text = weights_manifest([catalog[n] for n in names], dict(load_facts_for(names)))
    rows = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    assert [(r[0], r[2]) for r in rows] == [
        ("Phi-3.5-mini-instruct.Q4_K_M.gguf", "2393231072"),
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "397808192"),
    ]
    assert all(r[3].startswith("https://huggingface.co/") for r in rows)


def test_the_manifest_is_exact_line_for_line() -> None:
    """The header, one tab-separated line per file in model order, a shared file once (the
    first model's line), the size only for a model's own weights with facts, a final
    newline: the fetcher parses exactly this."""
    first = model(
        "first",
        [("w1.gguf", SHA_A, "huggingface://o/r@rev/w1.gguf"),
         ("zz-mmproj.gguf", SHA_B, "https://x.example/zz-mmproj.gguf"),
         ("aa-vocab.gguf", SHA_C, "https://x.example/aa-vocab.gguf")],
    )  # fmt: skip
    second = model(
        "second",
        [("zz-mmproj.gguf", SHA_B, "https://other.example/zz-mmproj.gguf"),
         ("w2.gguf", SHA_C, "https://x.example/w2.gguf")],
    )  # fmt: skip
    text = weights_manifest([first, second], {"first": facts("first", 600_000), "second": None})
    assert text == (
        "# localai weights manifest: filename, sha256, size (0: unknown), url\n"
        f"w1.gguf\t{SHA_A}\t600000\thttps://huggingface.co/o/r/resolve/rev/w1.gguf\n"
        f"zz-mmproj.gguf\t{SHA_B}\t0\thttps://x.example/zz-mmproj.gguf\n"
        f"aa-vocab.gguf\t{SHA_C}\t0\thttps://x.example/aa-vocab.gguf\n"
        f"w2.gguf\t{SHA_C}\t0\thttps://x.example/w2.gguf\n"
    )


def test_a_model_missing_from_the_facts_gets_size_zero() -> None:
    only = model("only", [("w.gguf", SHA_A, "https://x.example/w.gguf")])
    assert weights_manifest([only], {}).splitlines()[1].split("\t")[2] == "0"
    assert weights_manifest([], {}) == (
        "# localai weights manifest: filename, sha256, size (0: unknown), url\n"
    )
