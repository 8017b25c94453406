"""Another process holding a flock(1) lock, as a concurrent run of our scripts would."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def held_lock(path: Path | str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` by another process until the block ends."""
    holder = subprocess.Popen(
        ["flock", "--exclusive", str(path), "sh", "-c", "echo locked; exec sleep 60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()
