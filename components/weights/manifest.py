"""What the weights fetcher downloads: one manifest line per file the models need.

Pure (no Pulumi): the EC2 bootstrap and the local container both install the manifest
and ``localai-fetch-weights.sh`` beside it. URLs are resolved here exactly as LocalAI
v2.24.0 resolves them (pkg/downloader/uri.go, ConvertURL), so the fetcher gets plain HTTPS:
``huggingface://owner/repo[@revision]/file`` ->
``https://huggingface.co/owner/repo/resolve/<revision or main>/file``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from components.models.catalog import ModelConfig
from components.models.facts import ModelFacts

FETCHER = Path(__file__).with_name("localai-fetch-weights.sh")
CONFIG_SYNC = Path(__file__).with_name("localai-sync-configs.sh")
HUGGINGFACE = "huggingface://"


def resolve_uri(uri: str) -> str:
    """The HTTPS URL LocalAI would fetch for a catalog URI (catalog-validated)."""
    if not uri.startswith(HUGGINGFACE):
        return uri
    owner, repo, file = uri.removeprefix(HUGGINGFACE).split("/")
    repo, _, revision = repo.partition("@")
    return f"https://huggingface.co/{owner}/{repo}/resolve/{revision or 'main'}/{file}"


def weights_manifest(models: Sequence[ModelConfig], facts: Mapping[str, ModelFacts | None]) -> str:
    """``FILENAME<TAB>SHA256<TAB>SIZE<TAB>URL`` per file (SIZE from the facts when the file
    is the model's weights, else 0 = unknown); a file two models share appears once."""
    lines = ["# localai weights manifest: filename, sha256, size (0: unknown), url"]
    seen: set[str] = set()
    for model in models:
        model_facts = facts.get(model.name)
        for entry in model.download_files:
            if entry.filename in seen:
                continue
            seen.add(entry.filename)
            size = (
                model_facts.file_size_bytes
                if model_facts is not None and entry.filename == model.weights_file
                else 0
            )
            lines.append(f"{entry.filename}\t{entry.sha256}\t{size}\t{resolve_uri(entry.uri)}")
    return "\n".join(lines) + "\n"
