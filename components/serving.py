"""What LocalAI serves and how: the same decisions on every target.

The program decides these once (settings + sizing) and hands them to whichever target
component runs LocalAI, so the local container, the EC2 host and a later fleet agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr


@dataclass(frozen=True)
class ServingArgs:
    default_model: str
    """Model the readiness check and the warm-up load (``OPENAI_MODEL``)."""
    api_key: SecretStr | None
    """Configured key, or None to generate one (kept in state as a secret)."""
    port: int
    cpu_limit: float
    memory_limit_mb: int
    threads: int
    parallel_requests: int
    single_active_backend: bool
    """Several models that do not fit together: LocalAI keeps one loaded at a time."""
    wait_for_ready: bool
    """``pulumi up`` returns only when the default model answers."""
    ready_timeout_seconds: int
    keep_volume_on_destroy: bool
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """Non-secret LocalAI environment variables."""
