"""components/weights/localai-sync-configs.sh, run for real: a start installs the stack's
model configs and removes only those an earlier start installed (issue 10: locally, the
container start used to delete every YAML in the volume)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from components.weights.manifest import CONFIG_SYNC


def sync(src: Path, models: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CONFIG_SYNC), str(src), str(models)], capture_output=True, text=True
    )


def test_only_configs_it_installed_are_removed(tmp_path: Path) -> None:
    src, models = tmp_path / "src", tmp_path / "models"
    src.mkdir()
    (src / "a.yaml").write_text("name: a\n")
    (src / "b.yaml").write_text("name: b\n")
    assert sync(src, models).returncode == 0
    (models / "mine.yaml").write_text("name: mine\n")  # the user's own config
    (models / "weights.gguf").write_bytes(b"GGUF")
    (src / "b.yaml").unlink()
    result = sync(src, models)
    assert result.returncode == 0, result.stderr
    assert "removed stale model config b.yaml" in result.stderr
    assert sorted(p.name for p in models.iterdir()) == [
        ".localai",
        "a.yaml",
        "mine.yaml",
        "weights.gguf",
    ]
    assert (models / ".localai" / "managed-configs").read_text() == "a.yaml\n"


def test_the_manifest_moves_out_of_localais_listing(tmp_path: Path) -> None:
    """The old manifest (a dotfile without a known suffix) was listed by /v1/models."""
    src, models = tmp_path / "src", tmp_path / "models"
    src.mkdir()
    models.mkdir()
    (src / "a.yaml").write_text("name: a\n")
    (models / "old.yaml").write_text("name: old\n")
    (models / ".localai-managed-configs").write_text("old.yaml\n")
    result = sync(src, models)
    assert result.returncode == 0, result.stderr
    assert not (models / ".localai-managed-configs").exists()
    assert not (models / "old.yaml").exists(), "what the old manifest installed is still ours"
    assert (models / ".localai" / "managed-configs").read_text() == "a.yaml\n"


def test_an_empty_config_set_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    result = sync(tmp_path / "src", tmp_path / "models")
    assert result.returncode != 0 and "no model YAMLs in" in result.stderr
