"""Size of the EBS weights volume."""

from __future__ import annotations

import math
from collections.abc import Sequence

from components.models.facts import ModelFacts
from components.sizing.resources import GIB

# -- EBS weights volume ------------------------------------------------------------------------
VOLUME_FILE_FACTOR = 1.1
VOLUME_HEADROOM_GIB = 10
VOLUME_UNKNOWN_MODEL_GIB = 16
VOLUME_STEP_GIB = 10
VOLUME_MIN_GIB = 20


def volume_size_gb(models: Sequence[tuple[str, ModelFacts | None]]) -> int:
    """EBS weights volume in GiB.

    ``sum(file sizes) x 1.1`` (ext4 metadata and reserved blocks) ``+ 10 GiB`` (one more
    7-8B Q4 model, or the old and new file side by side during a model change, plus
    LocalAI's own files), unknown models counted at 16 GiB each (room for a 13-14B model at Q8_0,
    ~14-16 GB), rounded up to a multiple of 10, at least 20.
    """
    total = VOLUME_HEADROOM_GIB * GIB
    for _name, facts in models:
        if facts is None:
            total += VOLUME_UNKNOWN_MODEL_GIB * GIB
        else:
            total += facts.file_size_bytes * VOLUME_FILE_FACTOR
    size = math.ceil(total / GIB / VOLUME_STEP_GIB) * VOLUME_STEP_GIB
    return max(VOLUME_MIN_GIB, size)


def minimum_volume_gb(models: Sequence[tuple[str, ModelFacts | None]]) -> int:
    """The smallest volume that holds the weights of the models with facts:
    ``ceil(sum(file sizes) x 1.1)`` GiB (ext4 metadata), no headroom."""
    total = sum(f.file_size_bytes for _n, f in models if f is not None) * VOLUME_FILE_FACTOR
    return math.ceil(total / GIB)


def describe_weights(models: Sequence[tuple[str, ModelFacts | None]]) -> str:
    """``a 2.39 GB + b 4.92 GB``: the weights a volume must hold, for messages."""
    return " + ".join(f"{n} {f.file_size_bytes / 1e9:.2f} GB" for n, f in models if f is not None)
