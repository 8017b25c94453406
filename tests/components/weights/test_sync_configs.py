"""components/weights/localai-sync-configs.sh, run for real: a start installs the stack's
model configs and removes only those an earlier start installed (issue 10: locally, the
container start used to delete every YAML in the volume)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from components.weights.manifest import CONFIG_SYNC


def sync(src: Path, models: Path, *state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CONFIG_SYNC), str(src), str(models), *map(str, state)],
        capture_output=True,
        text=True,
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


# -- issue 18, item 15: the models directory is the container's; the sync runs as root -------


def planted(tmp_path: Path) -> tuple[Path, Path, Path]:
    src, models, outside = tmp_path / "src", tmp_path / "models", tmp_path / "outside"
    src.mkdir()
    models.mkdir()
    outside.mkdir()
    (src / "a.yaml").write_text("name: a\n")
    (outside / "precious").write_text("precious\n")
    (outside / "precious").chmod(0o600)
    return src, models, outside / "precious"


def test_a_link_at_a_configs_name_is_replaced_not_written_through(tmp_path: Path) -> None:
    """`install` opened the planted link and overwrote and chmod'ed its target."""
    src, models, precious = planted(tmp_path)
    (models / "a.yaml").symlink_to(precious)
    result = sync(src, models, tmp_path / "state")
    assert result.returncode == 0, result.stderr
    assert precious.read_text() == "precious\n" and precious.stat().st_mode & 0o777 == 0o600
    assert not (models / "a.yaml").is_symlink()
    assert (models / "a.yaml").read_text() == "name: a\n"
    assert (tmp_path / "state" / "managed-configs").read_text() == "a.yaml\n"
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_a_linked_list_or_state_directory_is_never_written(tmp_path: Path) -> None:
    src, models, precious = planted(tmp_path)
    (models / ".localai").mkdir()
    (models / ".localai" / "managed-configs").symlink_to(precious)
    result = sync(src, models, tmp_path / "state")
    assert result.returncode == 0, result.stderr
    assert precious.read_text() == "precious\n"
    (tmp_path / "linked").symlink_to(precious.parent)
    refused = sync(src, models, tmp_path / "linked")
    assert refused.returncode != 0
    assert f"{tmp_path / 'linked'} is a symbolic link: refusing to use it" in refused.stderr
    assert sorted(p.name for p in precious.parent.iterdir()) == ["precious"]


def test_the_list_moves_to_the_state_directory_and_still_removes_stale_configs(
    tmp_path: Path,
) -> None:
    src, models, _ = planted(tmp_path)
    (src / "b.yaml").write_text("name: b\n")
    assert sync(src, models).returncode == 0  # an older host: the list in models/.localai
    (src / "b.yaml").unlink()
    result = sync(src, models, tmp_path / "state")
    assert result.returncode == 0, result.stderr
    assert "removed stale model config b.yaml" in result.stderr
    assert not (models / ".localai" / "managed-configs").exists()
    assert (tmp_path / "state" / "managed-configs").read_text() == "a.yaml\n"
