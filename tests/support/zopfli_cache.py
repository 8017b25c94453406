"""Zopfli's output, remembered on disk: the same bytes, without the 0.4 s each user data
document costs to compress (two per fleet program run; a third of some test modules' time,
and most of a mutation run's).

Zopfli is deterministic (same input and options, same output), so an answer it gave once
is the answer it gives again. The cache is keyed by the SHA-256 of the input and the
options, so a changed document (a mutant's included) is compressed for real. Entries live
in ``.cache/zopfli`` at the repository root (ignored by git), written atomically so that
parallel workers can share it. ``LOCALAI_ZOPFLI_CACHE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import zopfli.gzip

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "zopfli"
_real_compress = zopfli.gzip.compress


def cache_key(data: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(repr((args, sorted(kwargs.items()))).encode())
    digest.update(b"\0")
    digest.update(data)
    return digest.hexdigest()


def compress(data: bytes, *args: Any, **kwargs: Any) -> bytes:
    """``zopfli.gzip.compress``, answered from the cache when it has seen ``data``."""
    path = CACHE_DIR / f"{cache_key(data, args, kwargs)}.gz"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    packed = _real_compress(data, *args, **kwargs)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=CACHE_DIR, suffix=".tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(packed)
    os.replace(tmp, path)
    return packed


def install() -> None:
    if os.environ.get("LOCALAI_ZOPFLI_CACHE", "1") != "0":
        zopfli.gzip.compress = compress


install()
