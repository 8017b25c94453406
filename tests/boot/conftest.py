"""Shared by the boot tests: the cached root every machine boots a copy of."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boot.machine import Machine, base_root, tools_missing
from tests.components.aws.bootstrap.cloud_init_support import skip_or_fail


@pytest.fixture(scope="session")
def booted_root() -> Path:
    """The bookworm root with systemd, cloud-init and Docker (built once per machine)."""
    missing = tools_missing()
    if missing:
        skip_or_fail(f"booting needs {', '.join(missing)}")
    return base_root()


@pytest.fixture
def machines() -> Iterator[list[Machine]]:
    """The machines a test booted (it appends them), stopped when it ends."""
    booted: list[Machine] = []
    try:
        yield booted
    finally:
        for machine in booted:
            machine.stop()
