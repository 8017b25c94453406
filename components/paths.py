"""Where the project's own files live (one place, so moving a module moves nothing else)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_CONFIG_DIR = PROJECT_ROOT / "model_configs"
MODEL_FACTS_DIR = MODEL_CONFIG_DIR / "facts"
