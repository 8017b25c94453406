"""Start, wait for and stop one ``python -m llama_cpp.server`` on 127.0.0.1.

Shared by the tests' ``llama_server`` fixtures (``tests/support/llama_server.py``) and
``benchmarks/calibrate_cpu.py``. Flags are llama-cpp-python 0.3.36's. The server always
runs with ``--interrupt_requests False``: by default it ABORTS the running stream when
another request arrives; with it, requests queue as they do in LocalAI.

    with LlamaServer(model_path, log_path, threads=2) as server:
        ...  # server.base_url (ends in /v1), server.api_key, server.model
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """One ``llama_cpp.server`` process serving ``model_path`` as ``model`` on
    127.0.0.1:``port``, its output appended to ``log_path``.

    ``threads`` sets ``--n_threads`` and ``--n_threads_batch`` (default: llama.cpp's);
    ``cgroup`` is a cgroup directory the child joins before it execs; ``extra_args`` are
    appended to the command line.
    """

    def __init__(
        self,
        model_path: Path,
        log_path: Path,
        *,
        port: int | None = None,
        api_key: str | None = None,
        model: str = "local-model",
        python: str = sys.executable,
        threads: int | None = None,
        n_ctx: int = 1024,
        chat_format: str = "chatml",
        extra_args: Sequence[str] = (),
        cgroup: Path | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ):
        self.model_path = model_path
        self.log_path = log_path
        self.port = port or free_port()
        self.api_key = api_key or "sk-" + secrets.token_hex(16)
        self.model = model
        self.python = python
        self.threads = threads
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.extra_args = list(extra_args)
        self.cgroup = cgroup
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        threads = [] if self.threads is None else [
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
        ]  # fmt: skip
        return [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--api_key", self.api_key,  # visible in ps: fine for a throwaway local key
            "--n_ctx", str(self.n_ctx),
            *threads,
            "--chat_format", self.chat_format,
            "--interrupt_requests", "False",
            "--verbose", "False",
            *self.extra_args,
        ]  # fmt: skip

    def start(self, *, wait: bool = True, timeout_s: float | None = None) -> Self:
        """Start the process unless it runs; with ``wait``, block until it serves."""
        with self._lock:
            if not self.running:
                procs = self.cgroup / "cgroup.procs" if self.cgroup else None

                def join_cgroup() -> None:  # runs in the child, before exec
                    if procs is not None:
                        procs.write_text(str(os.getpid()))

                with self.log_path.open("ab") as log:  # the child keeps its own descriptor
                    self._process = subprocess.Popen(
                        self.command(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        preexec_fn=join_cgroup if procs else None,
                    )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until ``GET /v1/models`` with the key lists the model. RuntimeError (with
        the log tail) if the process exits first or ``timeout_s`` passes (then it is
        stopped)."""
        timeout_s = self.start_timeout_s if timeout_s is None else timeout_s
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

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Terminate the process; kill it if it has not exited after ``timeout_s``."""
        with self._lock:
            process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
