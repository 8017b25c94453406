"""examples/node/chat.mjs (official openai npm package) against the same contract.

``npm ci`` runs once per session in a temporary copy of examples/node (the lockfile is
what is tested, and the working tree's node_modules is left alone). Without ``node`` the
tests are skipped, unless the CI environment variable is set: then they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.examples.contract import REPO, ChatExampleContract, ExampleRunner

NODE_EXAMPLE = REPO / "examples" / "node"


@pytest.fixture(scope="session")
def node_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing = "node" if not node else "npm"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is required in CI to test examples/node")
        pytest.skip(f"{missing} is not installed")
    workdir = tmp_path_factory.mktemp("node-example")
    for name in ("chat.mjs", "package.json", "package-lock.json"):
        shutil.copy2(NODE_EXAMPLE / name, workdir / name)
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return workdir


@pytest.fixture
def chat(node_example: Path) -> ExampleRunner:
    return ExampleRunner(
        [shutil.which("node") or "node", str(node_example / "chat.mjs")], node_example
    )


class TestNodeChat(ChatExampleContract):
    pass


def test_package_pins_the_sdk_exactly() -> None:
    import json

    package = json.loads((NODE_EXAMPLE / "package.json").read_text())
    lock = json.loads((NODE_EXAMPLE / "package-lock.json").read_text())
    pinned = package["dependencies"]["openai"]
    assert pinned[0].isdigit(), f"openai must be pinned exactly, got {pinned!r}"
    assert lock["packages"]["node_modules/openai"]["version"] == pinned
    assert package["type"] == "module"
