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

The server is ``python -m llama_cpp.server`` from llama-cpp-python[server] (0.3.36 flags:
--model --host --port --api_key --model_alias --chat_format --n_ctx --verbose). It
serves one model and ignores the ``model`` name in requests. The byte vocabulary has no
chat template, so ``--chat_format chatml`` is set (its markers tokenize as plain bytes).

Tests using these fixtures should be marked ``@pytest.mark.slow``. When llama-cpp-python
is not installed they are skipped, unless the CI environment variable is set: then
they fail, so CI cannot go green without having run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tools.synthetic_gguf import PRESETS, write_synthetic_gguf

MODEL_ALIAS = "tiny-test-model"
N_CTX = 1024
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """One ``llama_cpp.server`` process serving ``model_path`` on 127.0.0.1:``port``."""

    def __init__(
        self,
        model_path: Path,
        log_path: Path,
        *,
        port: int | None = None,
        api_key: str | None = None,
        model: str = MODEL_ALIAS,
    ):
        self.model_path = model_path
        self.log_path = log_path
        self.port = port or free_port()
        self.api_key = api_key or "sk-test-" + secrets.token_hex(12)
        self.model = model
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--api_key", self.api_key,  # visible in ps: fine for a throwaway test key
            "--model_alias", self.model,
            "--chat_format", "chatml",
            "--n_ctx", str(N_CTX),
            "--verbose", "False",
        ]  # fmt: skip

    def start(self, *, wait: bool = True, timeout_s: float = START_TIMEOUT_S) -> LlamaServer:
        with self._lock:
            if not self.running:
                log = self.log_path.open("ab")
                try:
                    self._process = subprocess.Popen(
                        self.command(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                finally:
                    log.close()  # the child keeps its own descriptor
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Block until ``GET /v1/models`` answers 200 with the key (independent of the
        readiness code under test)."""
        deadline = time.monotonic() + timeout_s
        request = urllib.request.Request(
            f"{self.base_url}/models", headers={"Authorization": f"Bearer {self.api_key}"}
        )
        last = "nothing yet"
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise RuntimeError(
                    f"llama server exited ({code}) before answering:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200 and self.model in response.read().decode():
                        return
            except (OSError, urllib.error.URLError) as err:
                last = repr(err)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"llama server not ready after {timeout_s}s ({last}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> LlamaServer:
        self.stop()
        return self.start()

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

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


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
    server = LlamaServer(tiny_gguf, tmp_path_factory.mktemp("llama") / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
