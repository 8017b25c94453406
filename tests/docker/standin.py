"""A stand-in for the LocalAI v2.24.0 container, for tests on a real Docker Engine.

It honours the container interface this package relies on (../shared/reference): entrypoint
/build/entrypoint.sh, WORKDIR /build, models in /build/models (MODELS_PATH), port 8080
(ADDRESS), the key from API_KEY / LOCALAI_API_KEY (Bearer), /readyz and /healthz open,
and the port closed until startup is done. Like LocalAI it reads every model YAML at
start and fetches download_files entries that are missing (logging
"standin: downloading <file>", so tests can tell a start that had to download). Then it
serves OpenAI chat with llama-cpp-python's server on the default model's file.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import uvicorn
import yaml
from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings


def log(message: str) -> None:
    print(f"standin: {message}", file=sys.stderr, flush=True)


def main() -> None:
    models = Path(os.environ.get("MODELS_PATH", "/build/models"))
    key = os.environ.get("LOCALAI_API_KEY") or os.environ.get("API_KEY") or None
    configs = []
    for path in sorted(models.glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        for entry in config.get("download_files") or []:
            target = models / entry["filename"]
            if not target.exists():
                log(f"downloading {entry['filename']}")
                urllib.request.urlretrieve(entry["uri"], target)
        configs.append(config)
    if not configs:
        sys.exit("standin: no model configs in " + str(models))
    log("models: " + ", ".join(c["name"] for c in configs))
    first = configs[0]
    settings = [
        ModelSettings(
            model=str(models / c["parameters"]["model"]),
            model_alias=c["name"],
            n_ctx=int(c.get("context_size", 512)),
            n_threads=int(os.environ.get("THREADS", "1")),
            chat_format="chatml",
            verbose=False,
        )
        for c in configs
        if c is first
    ]
    app = create_app(server_settings=ServerSettings(api_key=key), model_settings=settings)

    @app.middleware("http")
    async def health_first(request: Request, call_next):
        if request.url.path in ("/readyz", "/healthz"):
            return PlainTextResponse("OK")
        if (
            key
            and request.url.path.startswith("/v1/")
            and request.headers.get("authorization") != f"Bearer {key}"
        ):
            return JSONResponse({"error": {"message": "An api key is required"}}, status_code=401)
        return await call_next(request)

    address = os.environ.get("LOCALAI_ADDRESS") or os.environ.get("ADDRESS") or ":8080"
    host, _, port = address.rpartition(":")
    log(f"listening on {address}")
    uvicorn.run(app, host=host or "0.0.0.0", port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
