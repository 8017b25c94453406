"""The Docker Engine layer: a real dockerd (started by .ci/run; DOCKER_HOST or the default
socket) and the locally built LocalAI stand-in image (tests/docker/standin.py)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.components.aws.bootstrap.cloud_init_support import skip_or_fail

HERE = Path(__file__).resolve().parent
STANDIN_TAG = "localai-standin:test"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if shutil.which("docker") is None:
        skip_or_fail("no docker CLI (apt-get install docker.io)")
    info = docker("info", "--format", "{{.ServerVersion}}", check=False)
    if info.returncode != 0:
        skip_or_fail(f"no Docker Engine answers ({info.stderr.strip()[:200]}); .ci/run starts one")


@pytest.fixture(scope="session")
def standin_image(docker_engine) -> str:
    wheels = os.environ.get("LOCALAI_WHEELS") or next(
        iter(sorted(glob.glob(str(Path.home() / ".cache/localai/wheels/*")))), ""
    )
    if not wheels:
        skip_or_fail("no llama-cpp-python wheel (scripts/test.sh builds it)")
    built = subprocess.run(
        ["bash", str(HERE / "build-standin-image.sh"), STANDIN_TAG, wheels],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if built.returncode != 0:
        pytest.fail(f"building the stand-in image failed:\n{built.stderr[-3000:]}")
    return STANDIN_TAG
