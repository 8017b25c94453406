"""Shared helpers for the bootstrap tests: realistic specs, decoding and installing user data."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import yaml

from components.aws.bootstrap.cloud_init import (
    BootstrapSpec,
    FleetBoot,
    HostProfile,
    decode_write_file,
)

REPO_ROOT = Path(__file__).resolve().parents[4]
MODEL_CONFIG_DIR = REPO_ROOT / "model_configs"
FILES_DIR = REPO_ROOT / "components" / "aws" / "bootstrap" / "files"

# Never passed to the renderer: tests assert it appears nowhere in what ships.
SENTINEL_KEY = "sk-localai-SENTINEL-7f3c9e1d2b4a"
DEFAULT_MODEL = "phi-3.5-mini-instruct"
VOLUME_DEVICE = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
KEY_PARAMETER = "/localai/dev/api-key"


def model_yaml(name: str, gpu_layers: int) -> str:
    """A model config as rendered for one host: the catalog file plus gpu_layers."""
    text = (MODEL_CONFIG_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    return f"{text.rstrip()}\ngpu_layers: {gpu_layers}\n"


def model_set(names: tuple[str, ...], gpu_layers: int) -> dict[str, str]:
    return {f"{name}.yaml": model_yaml(name, gpu_layers) for name in names}


TINY_WEIGHTS = b"GGUF tiny test weights"
TINY_WEIGHTS_FILE = "tiny.Q4_K_M.gguf"
TINY_MANIFEST = (
    f"{TINY_WEIGHTS_FILE}\t{hashlib.sha256(TINY_WEIGHTS).hexdigest()}\t{len(TINY_WEIGHTS)}\t"
    f"https://huggingface.co/o/r/resolve/main/{TINY_WEIGHTS_FILE}\n"
)
"""A manifest whose one file the script tests put on the volume first (no network)."""


def make_spec(
    *, gpu: bool = False, models: tuple[str, ...] = (DEFAULT_MODEL,), **overrides: object
) -> BootstrapSpec:
    """A realistic spec: CPU (plain Ubuntu, docker installed) or GPU (DLAMI)."""
    spec = BootstrapSpec(
        volume_device=VOLUME_DEVICE,
        mount_point="/var/lib/localai",
        cpu_image="localai/localai:v2.24.0-ffmpeg-core",
        gpu_image="localai/localai:v2.24.0-cublas-cuda12",
        install_docker=not gpu,
        gpu_capable=gpu,
        port=8080,
        api_key_parameter=KEY_PARAMETER,
        region="eu-west-1",
        log_group="/localai/dev",
        cpu_models=model_set(models, 0),
        gpu_models=model_set(models, 99) if gpu else {},
        default_model=DEFAULT_MODEL,
        cpu_limit=3.5 if not gpu else 4.0,
        memory_limit_mb=7168 if not gpu else 14336,
        threads=4,
        parallel_requests=1 if not gpu else 4,
        extra_env={"SINGLE_ACTIVE_BACKEND": "true", "LOCALAI_LOG_LEVEL": "info"},
        weights_manifest=TINY_MANIFEST,
        metrics_namespace="LocalAI/localai-dev",
    )
    return dataclasses.replace(spec, **overrides)


FLEET_GROUP = "localai-prod"
FLEET_HOOK = "localai-prod-model-ready"


def fleet_spec(
    profiles: dict[str, HostProfile] | None = None, **overrides: object
) -> BootstrapSpec:
    """A fleet host's spec: two GPU types by default, or the ``profiles`` given."""
    if profiles is None:
        models = (DEFAULT_MODEL,)
        profiles = {
            "g6.xlarge": HostProfile(
                4.0, 14336, 4, True, model_set(models, 0), model_set(models, 99)
            ),
            "g4dn.xlarge": HostProfile(
                4.0, 14336, 2, True, model_set(models, 0), model_set(models, 27)
            ),
        }
    # Without the CloudWatch agent by default, so the fleet's runcmd and file tests stay
    # about the fleet; test_metrics_agent_script.py and test_fleet.py cover a fleet's agent.
    overrides.setdefault("metrics_namespace", "")
    base = make_spec(gpu=True, volume_device="", **overrides)
    return dataclasses.replace(base, fleet=FleetBoot(profiles, FLEET_GROUP, FLEET_HOOK))


def assert_same_code(source: str, shipped: str, path: str) -> None:
    """``shipped`` is ``source`` with some full-line comments and the indentation left out,
    nothing else: its lines are the source's in order (as written, or without leading
    blanks), and every source line it lacks is a comment."""
    source_lines, shipped_lines = source.split("\n"), shipped.split("\n")
    assert shipped_lines[0] == source_lines[0] == "#!/usr/bin/env bash", path
    missing = []
    position = 0
    for line in source_lines:
        if position < len(shipped_lines) and shipped_lines[position] in (
            line,
            line.lstrip(" \t"),
        ):
            position += 1
        else:
            missing.append(line)
    assert position == len(shipped_lines), f"{path}: a line that is not in the file"
    assert all(line.lstrip().startswith("#") for line in missing), (path, missing)
    assert len(missing) > 0, f"{path}: its comments were meant to be left out"


def write_files(document: str) -> dict[str, dict[str, object]]:
    """write_files entries of a rendered document, by path."""
    config = yaml.safe_load(document)
    return {entry["path"]: entry for entry in config["write_files"]}


def decoded_files(document: str) -> dict[str, str]:
    """Installed path -> the exact content cloud-init writes there."""
    return {path: decode_write_file(entry) for path, entry in write_files(document).items()}


def install(document: str, root: Path) -> None:
    """Write every write_files entry under ``root``, as cloud-init would (content + mode)."""
    for path, entry in write_files(document).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(decode_write_file(entry), encoding="utf-8")
        target.chmod(int(str(entry.get("permissions", "0644")), 8))


def skip_or_fail(reason: str) -> None:
    """Skip locally; on CI (env CI set) a missing prerequisite is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: this test must run)")
    pytest.skip(reason)


def runcmd_steps(config: dict) -> list[list[str]]:
    """The commands of a rendered runcmd, as argv lists: the script is ``rc=0``, one line per
    step ending in ``|| rc=1`` (the fleet's profile step also abandons the launch), and
    ``exit "$rc"``; this checks that shape as it takes it apart."""
    import shlex

    from components.aws.bootstrap.cloud_init import HOST_PROFILE, LIFECYCLE, RUNCMD_FAILED

    lines = config["runcmd"]
    assert lines[0] == "rc=0" and lines[-1] == 'exit "$rc"', lines
    steps = []
    for line in lines[1:-1]:
        abandon = f"SERVICE_RESULT=host-profile-failed {LIFECYCLE} complete"
        profile = f"{HOST_PROFILE} || {{ rc=1; {abandon}; }}"
        if line == profile:
            steps.append([HOST_PROFILE])
            continue
        assert line.endswith(RUNCMD_FAILED), line
        steps.append(shlex.split(line.removesuffix(RUNCMD_FAILED)))
    return steps


def uploaded_bundle_files(run) -> dict[str, str]:
    """The files of the bundle object a mocked run uploaded, by installed path (``run``:
    anything with ``.one(type token)``, the mocks or a deployment of them)."""
    obj = run.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(obj["contentBase64"]))) as tar:
        return {"/" + m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
