"""What LocalAI serves and how: the same decisions on every target.

The program decides these once (settings + sizing) and hands them to whichever target
component runs LocalAI, so the local container, the EC2 host and a later fleet agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

# What LocalAI v2.24.0 is told on every target so that it serves chat and nothing else
# (switches read by kong from the environment: v2.24.0:core/cli/run.go). With keys set,
# every route but /readyz and /healthz needs a key, and then ANY key holder may use the
# gallery routes (/models/apply downloads from any URL into the weights volume,
# /models/delete, /models/galleries) and the web UI.
LOCKDOWN_ENV: dict[str, str] = {
    "LOCALAI_DISABLE_GALLERY_ENDPOINT": "true",
    "LOCALAI_SUBTLE_KEY_COMPARISON": "true",  # constant-time key comparison
}
WEBUI_OFF_ENV: dict[str, str] = {"LOCALAI_DISABLE_WEBUI": "true"}

CONTAINER_ENV = frozenset(
    {
        "API_KEY",
        "LOCALAI_API_KEY",
        "THREADS",
        "LOCALAI_THREADS",
        "PARALLEL_REQUESTS",
        "LOCALAI_PARALLEL_REQUESTS",
        "LLAMACPP_PARALLEL",
        "MODELS_PATH",
        "LOCALAI_MODELS_PATH",
        "ADDRESS",
        "LOCALAI_ADDRESS",
        "HF_TOKEN",
    }
)
"""Container env vars each target's run step sets itself (from their own keys), or the
secret: no other env may set them."""
RESERVED_ENV = CONTAINER_ENV | {"SINGLE_ACTIVE_BACKEND", "LOCALAI_SINGLE_ACTIVE_BACKEND"}
"""What ``extraEnv`` may not set: the above, and what the sizing plan decides."""

_WEAKEN_AUTH = "exempts routes from the API key"
_PACKAGE_SETS = "is set by the package (the endpoint serves and does nothing else)"
_P2P = "turns on P2P/federation: peers could reach and drive the server"
_REBUILD = "makes the image's entrypoint rebuild LocalAI or run make at start"
_GALLERY = "installs models from galleries or URLs at start; declare models in localai:models"
_RUNS = "changes which backend binaries run"
REFUSED_ENV: dict[str, str] = {
    **dict.fromkeys(
        (
            "LOCALAI_DISABLE_API_KEY_REQUIREMENT_FOR_HTTP_GET",
            "DISABLE_API_KEY_REQUIREMENT_FOR_HTTP_GET",
            "LOCALAI_HTTP_GET_EXEMPTED_ENDPOINTS",
            "HTTP_GET_EXEMPTED_ENDPOINTS",
        ),
        _WEAKEN_AUTH,
    ),
    **dict.fromkeys(
        (
            "LOCALAI_DISABLE_GALLERY_ENDPOINT",
            "DISABLE_GALLERY_ENDPOINT",
            "LOCALAI_SUBTLE_KEY_COMPARISON",
            "SUBTLE_KEY_COMPARISON",
        ),
        _PACKAGE_SETS,
    ),
    **dict.fromkeys(("LOCALAI_DISABLE_WEBUI", "DISABLE_WEBUI"), "is set with localai:webUi"),
    **dict.fromkeys(
        (
            "LOCALAI_P2P",
            "P2P",
            "LOCALAI_FEDERATED",
            "FEDERATED",
            "LOCALAI_P2P_TOKEN",
            "P2P_TOKEN",
            "TOKEN",
            "LOCALAI_P2P_NETWORK_ID",
            "LOCALAI_P2P_DISABLE_DHT",
        ),
        _P2P,
    ),
    **dict.fromkeys(("REBUILD", "EXTRA_BACKENDS", "BUILD_TYPE", "GO_TAGS"), _REBUILD),
    **dict.fromkeys(
        (
            "LOCALAI_GALLERIES",
            "GALLERIES",
            "LOCALAI_AUTOLOAD_GALLERIES",
            "AUTOLOAD_GALLERIES",
            "LOCALAI_PRELOAD_MODELS",
            "PRELOAD_MODELS",
            "LOCALAI_PRELOAD_MODELS_CONFIG",
            "PRELOAD_MODELS_CONFIG",
            "LOCALAI_MODELS",
            "MODELS",
            "LOCALAI_LOAD_TO_MEMORY",
            "LOAD_TO_MEMORY",
            "LOCALAI_MODELS_CONFIG_FILE",
            "CONFIG_FILE",
        ),
        _GALLERY,
    ),
    **dict.fromkeys(
        (
            "LOCALAI_BACKEND_ASSETS_PATH",
            "BACKEND_ASSETS_PATH",
            "LOCALAI_EXTERNAL_GRPC_BACKENDS",
            "EXTERNAL_GRPC_BACKENDS",
        ),
        _RUNS,
    ),
    **dict.fromkeys(
        ("LOCALAI_CONFIG_DIR", "CONFIG_DIR"),
        "points LocalAI at another config dir, whose api_keys.json could add keys",
    ),
    "LIBRARY_PATH": _RUNS,
    "LLAMACPP_GRPC_SERVERS": ("sends the weights and every prompt to remote llama.cpp RPC workers"),
    "PRELOAD_BACKEND_ONLY": "makes LocalAI load the backends and exit: the endpoint stops serving",
    "LOCALAI_CSRF": (
        "turns on CSRF checks that refuse API clients without a browser's Origin: the "
        "endpoint stops serving them"
    ),
}
"""``extraEnv`` names that weaken authentication or change what runs, with the reason
(names read in LocalAI v2.24.0's core/cli/run.go and the image's entrypoint.sh)."""

DEBUG_LOG_ENV: dict[str, frozenset[str] | None] = {
    "DEBUG": None,
    "LOCALAI_DEBUG": None,
    "LOCALAI_LOG_LEVEL": frozenset({"debug", "trace"}),
    "LOG_LEVEL": frozenset({"debug", "trace"}),
}
"""Debug logging (any value, or the levels listed): LocalAI then logs every prompt and
answer, to CloudWatch on AWS. Allowed only with ``localai:logPrompts: true``."""


def debug_logging_env(extra_env: Mapping[str, str]) -> list[str]:
    """The ``extraEnv`` entries that turn on debug logging."""
    found = []
    for name, levels in DEBUG_LOG_ENV.items():
        value = extra_env.get(name)
        if value is None:
            continue
        if levels is None or value.strip().lower() in levels:
            found.append(f"{name}={value}")
    return found


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
    web_ui: bool = False
    """LocalAI's web UI (off unless localai:webUi)."""
    keep_removed_weights: bool = False
    """Weights no configured model lists are moved out of the models directory (kept on
    the volume) instead of deleted."""
    hf_token: SecretStr | None = None
    """Hugging Face token for gated models, for the weights fetcher only (a secret)."""

    def server_env(self) -> dict[str, str]:
        """Non-secret env every target gives the container: lock-down first, then the
        package's switches, then the user's extraEnv (validated not to override them)."""
        env = {**LOCKDOWN_ENV, **({} if self.web_ui else WEBUI_OFF_ENV)}
        if self.single_active_backend:
            env["SINGLE_ACTIVE_BACKEND"] = "true"
        env.update(self.extra_env)
        return env
