"""pytest plugin: a REAL OpenAI-compatible llama.cpp server on a tiny generated model.

Register with ``pytest_plugins = ["tests.support.llama_server"]`` in tests/conftest.py.

Fixtures:

* ``tiny_gguf`` (session): path of a ~0.5 MB random-weight llama GGUF written by
  :func:`tools.synthetic_gguf.write_synthetic_gguf` (byte vocabulary, printable-ASCII
  output, never end-of-sequence: answers run until ``max_tokens`` or the context end).
* ``llama_server`` (one process per session, checked to be running before each test):
  a :class:`LlamaServer` with ``.base_url`` (ending in /v1), ``.api_key``, ``.model``,
  ``.port``, ``.stop()``, ``.start()``, ``.restart()``.
* ``llama_server_factory``: ``make(delay_s=0.0, start=True, ...)`` returns an extra
  server on its own port; with ``delay_s`` it starts in the background after that many
  seconds (the port stays closed until then). All are stopped at teardown.

The server is ``python -m llama_cpp.server`` from llama-cpp-python[server], started by
:class:`tools.llama_server.LlamaServer` (so with ``--interrupt_requests False``: a second
request queues instead of aborting the running stream). It serves one model and ignores
the ``model`` name in requests. The byte vocabulary has no chat template, so
``--chat_format chatml`` is set (its markers tokenize as plain bytes).

Tests using these fixtures should be marked ``@pytest.mark.slow``. When llama-cpp-python
is not installed they are skipped, unless the CI environment variable is set: then
they fail, so CI cannot go green without having run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tools.llama_server
from tools.llama_server import free_port as free_port  # re-exported for the tests
from tools.synthetic_gguf import PRESETS, write_synthetic_gguf

MODEL_ALIAS = "tiny-test-model"
N_CTX = 1024
START_TIMEOUT_S = 60.0


class LlamaServer(tools.llama_server.LlamaServer):
    """The shared :class:`tools.llama_server.LlamaServer` with the tests' defaults (the
    tiny model's alias, chatml, a ``sk-test-`` key) and two test helpers."""

    def __init__(
        self,
        model_path: Path,
        log_path: Path,
        *,
        port: int | None = None,
        api_key: str | None = None,
        model: str = MODEL_ALIAS,
    ):
        super().__init__(
            model_path,
            log_path,
            port=port,
            api_key=api_key or "sk-test-" + secrets.token_hex(12),
            model=model,
            n_ctx=N_CTX,
            chat_format="chatml",
            start_timeout_s=START_TIMEOUT_S,
        )

    def start_after(self, delay_s: float) -> threading.Thread:
        """Start the server in a background thread after ``delay_s`` seconds."""

        def later() -> None:
            time.sleep(delay_s)
            self.start(wait=False)

        thread = threading.Thread(target=later, name=f"llama-server-{self.port}", daemon=True)
        thread.start()
        return thread

    def chat(self, content: str = "hi", **params: object) -> dict:
        """One non-streaming completion with raw urllib (for tests' own assertions)."""
        body = {"model": self.model, "messages": [{"role": "user", "content": content}]}
        body.update(params)
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _require_llama_cpp() -> None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as err:
        if os.environ.get("CI"):
            pytest.fail(f"llama-cpp-python[server] is required in CI: {err}")
        pytest.skip(f"llama-cpp-python[server] is not installed ({err})")


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return write_synthetic_gguf(path, name="tiny-test", **PRESETS["tiny"])


@pytest.fixture(scope="session")
def _llama_server_session(
    tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    _require_llama_cpp()
    with LlamaServer(tiny_gguf, tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server


@pytest.fixture
def llama_server(_llama_server_session: LlamaServer) -> LlamaServer:
    """The session's server, (re)started if an earlier test stopped it."""
    if not _llama_server_session.running:
        _llama_server_session.start()
    return _llama_server_session


@pytest.fixture
def llama_server_factory(tiny_gguf: Path, tmp_path: Path) -> Iterator[Callable[..., LlamaServer]]:
    _require_llama_cpp()
    servers: list[LlamaServer] = []
    threads: list[threading.Thread] = []

    def make(
        *,
        delay_s: float = 0.0,
        start: bool = True,
        api_key: str | None = None,
        model: str = MODEL_ALIAS,
    ) -> LlamaServer:
        log = tmp_path / f"server-{len(servers)}.log"
        server = LlamaServer(tiny_gguf, log, api_key=api_key, model=model)
        servers.append(server)
        if start and delay_s > 0:
            threads.append(server.start_after(delay_s))
        elif start:
            server.start()
        return server

    yield make
    for thread in threads:
        thread.join(timeout=30)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()
