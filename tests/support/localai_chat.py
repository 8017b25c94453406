"""What LocalAI v2.24.0 does with a chat request around the backend call, by its own code.

``tests/support/localai_go`` holds LocalAI's Go packages for templates, grammars and tool
call parsing, copied verbatim from the tag, and a harness that runs the chat handler's
steps (request.go, chat.go) on a model config and a request: it prints the prompt and the
grammar LocalAI would send to llama.cpp, and, given what the model generated, the choices
LocalAI would answer. Built once per source change with Debian's Go (.ci/run installs it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

GO_DIR = Path(__file__).resolve().parent / "localai_go"
DEBIAN_GOCODE = Path("/usr/share/gocode/src")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "localai"
PACKAGES = "golang-go golang-github-masterminds-sprig-dev golang-github-rs-zerolog-dev " \
    "golang-gopkg-yaml.v3-dev"  # fmt: skip


def _sources_key() -> str:
    digest = hashlib.sha256()
    for path in sorted(GO_DIR.rglob("*.go")):
        digest.update(str(path.relative_to(GO_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def harness() -> Path:
    """The built harness (building it first if its sources changed); looked up once per
    test process, not at every request."""
    binary = CACHE / f"localai-chat-{_sources_key()}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None or not (DEBIAN_GOCODE / "github.com/Masterminds/sprig").is_dir():
        pytest.fail(f"Go and LocalAI's Go libraries are missing: apt-get install {PACKAGES}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        # GOPATH mode: Debian installs sprig v3 at its path without the /v3 suffix.
        links = Path(work) / "src/github.com/Masterminds/sprig"
        links.mkdir(parents=True)
        (links / "v3").symlink_to(DEBIAN_GOCODE / "github.com/Masterminds/sprig")
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": f"{work}:{GO_DIR}:{DEBIAN_GOCODE.parent}",
            "GOCACHE": str(Path(work) / "cache"),
            "GOFLAGS": "",
        }
        partial = binary.with_suffix(".partial")
        build = subprocess.run(
            [go, "build", "-o", str(partial), "."],
            cwd=GO_DIR / "harness", env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert build.returncode == 0, f"go build failed:\n{build.stderr}"
        partial.rename(binary)
    return binary


def localai_chat(model_yaml: str, request: dict[str, Any], output: str | None = None) -> dict:
    """LocalAI's prompt, grammar and (given ``output``) choices for ``request``."""
    payload = {"model_yaml": model_yaml, "request": request}
    if output is not None:
        payload["output"] = output
    run = subprocess.run(
        [str(harness())], input=json.dumps(payload), capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    result["stderr"] = run.stderr
    return result
