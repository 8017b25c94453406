"""Constants shared by the calibration steps (see benchmarks/calibrate_cpu.py)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "qwen2.5-0.5b-instruct"


DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    "localai/calibration"
)


BANDWIDTH_BYTES_PER_PROCESS = 256 * 1024**2


BANDWIDTH_ROUNDS = 9


SERVER_START_TIMEOUT_S = 180.0


N_CTX = 1024


FILLER = (
    "The quick brown fox jumps over the lazy dog while the operators watch the "
    "dashboards, count the tokens and write down every number they see. "
) * 40


CHAT_FORMAT = "mistral-instruct"


"""``[INST] {prompt} [/INST]``: the shortest template llama-cpp-python has. The synthetic
vocabulary spends one token per byte, so chatml's markers alone would be ~80 tokens;
real tokenizers spend one token per marker."""


DISTURBED_CORES = 0.2


"""A measurement during which other processes used more CPU than this is retried."""


TOLERANCE = 0.25  # the planner should be within 25% of measurements
