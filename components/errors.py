"""Errors that stop a deployment before any resource is declared.

They subclass :class:`pulumi.RunError`, which the Pulumi engine reports as a
plain message (no Python traceback, no program listing).
"""

from __future__ import annotations

import pulumi


class LocalAIError(pulumi.RunError):
    """Base class for every error this package raises on purpose."""


class ConfigError(LocalAIError):
    """The stack configuration (namespace ``localai:``) is invalid."""


class ModelConfigError(LocalAIError):
    """A file in model_configs/ is not a valid LocalAI v2.24 model config."""
