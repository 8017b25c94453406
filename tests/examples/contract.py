"""The behaviour both chat examples (Python and Node) must show, written once.

``test_python_chat.py`` and ``test_node_chat.py`` subclass :class:`ChatExampleContract`
and provide a ``chat`` fixture (an :class:`ExampleRunner`). The examples run as real
subprocesses with only environment variables pointing them somewhere: the real
llama.cpp server from ``tests.support.llama_server``, a port nobody listens on, or a
loopback stub for answers the llama.cpp server never gives (see
``tests.support.stub_openai``).
"""

from __future__ import annotations

import os
import queue
import selectors
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.llama_server import LlamaServer, free_port
from tests.support.stub_openai import (
    OPENAI_MODEL_NOT_FOUND,
    StubServer,
    hang,
    json_reply,
    localai_chat,
    lockstep_sse,
)

REPO = Path(__file__).resolve().parents[2]
EXIT_USAGE, EXIT_CONFIG, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_TIMEOUT, EXIT_MODEL = 2, 3, 4, 5, 6, 7
EXIT_EMPTY = 9
RUN_TIMEOUT_S = 60


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    reads: list[bytes] = field(default_factory=list)  # stdout as the reader received it
    seconds: float = 0.0

    def error_line(self) -> str:
        """The one stderr line, asserting there is exactly one and no stack trace."""
        assert "Traceback" not in self.stderr, self.stderr
        assert "    at " not in self.stderr, self.stderr  # Node stack frames
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one error line, got:\n{self.stderr}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


class ExampleRunner:
    """Runs one chat example with a clean OPENAI_* environment."""

    def __init__(self, argv: list[str], cwd: Path):
        self.argv = argv
        self.cwd = cwd

    def env(self, **overrides: str | None) -> dict[str, str]:
        # PYTHONUNBUFFERED would hide a missing flush: users do not have it set.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("OPENAI_") and k != "PYTHONUNBUFFERED"
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return env

    def run(
        self,
        *prompt: str,
        on_output: object = None,
        timeout_s: float = RUN_TIMEOUT_S,
        **env: str | None,
    ) -> Run:
        """Run to completion, reading stdout incrementally; ``on_output(text_so_far)``
        is called after every read."""
        start = time.monotonic()
        process = subprocess.Popen(
            [*self.argv, *prompt],
            cwd=self.cwd,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        reads: list[bytes] = []
        stderr = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, "out")
            selector.register(process.stderr, selectors.EVENT_READ, "err")
            open_streams = 2
            while open_streams:
                remaining = start + timeout_s - time.monotonic()
                if remaining <= 0:
                    process.kill()
                    pytest.fail(f"{self.argv} did not finish in {timeout_s}s")
                for key, _ in selector.select(timeout=remaining):
                    data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                    if not data:
                        selector.unregister(key.fileobj)
                        open_streams -= 1
                    elif key.data == "out":
                        reads.append(data)
                        if callable(on_output):
                            on_output(b"".join(reads).decode(errors="replace"))
                    else:
                        stderr += data
        returncode = process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
        return Run(
            returncode,
            b"".join(reads).decode(errors="replace"),
            stderr.decode(errors="replace"),
            reads,
            time.monotonic() - start,
        )


class ChatExampleContract:
    """Subclasses provide a ``chat`` fixture returning an ExampleRunner."""

    # --- against the real llama.cpp server -------------------------------------------

    @pytest.mark.slow
    def test_streams_an_answer_from_the_real_server(
        self, chat: ExampleRunner, llama_server: LlamaServer
    ) -> None:
        run = chat.run(
            "Say",
            "hello",
            OPENAI_BASE_URL=llama_server.base_url,
            OPENAI_API_KEY=llama_server.api_key,
            OPENAI_MODEL=llama_server.model,
        )
        assert run.returncode == 0, run.stderr
        assert run.stderr.strip() == ""
        answer = run.stdout
        assert answer.endswith("\n")
        assert len(answer.strip()) > 10, answer
        # The tiny model only emits printable ASCII: anything else is a decoding bug.
        assert all(" " <= ch <= "~" for ch in answer[:-1]), repr(answer[:80])
        # Token-by-token output reaches the pipe in several writes, not one at the end.
        assert len(run.reads) >= 2, f"stdout arrived in {len(run.reads)} read(s)"

    @pytest.mark.slow
    def test_wrong_key_is_one_clear_line(
        self, chat: ExampleRunner, llama_server: LlamaServer
    ) -> None:
        run = chat.run(
            "hello",
            OPENAI_BASE_URL=llama_server.base_url,
            OPENAI_API_KEY="sk-wrong",
            OPENAI_MODEL=llama_server.model,
        )
        assert run.returncode == EXIT_AUTH
        line = run.error_line()
        assert "rejected the API key (401)" in line
        assert llama_server.base_url in line
        assert "OPENAI_API_KEY" in line
        assert "sk-wrong" not in line and llama_server.api_key not in line
        assert run.stdout == ""

    # --- answers the llama.cpp server never gives: loopback stand-ins -----------------

    def test_flushes_each_chunk_as_it_arrives(self, chat: ExampleRunner) -> None:
        """The stub sends chunk i+1 only once chunk i is visible on the example's
        stdout. An example that buffers its output until the end never gets past the
        first chunk and fails here."""
        chunks = ["Streaming ", "one ", "chunk ", "at ", "a ", "time."]
        seen: queue.Queue[int] = queue.Queue()
        shown = 0

        def on_output(text: str) -> None:
            nonlocal shown
            while shown < len(chunks) and "".join(chunks[: shown + 1]) in text:
                seen.put(shown)
                shown += 1

        with StubServer(lockstep_sse(chunks, seen, wait_s=10)) as stub:
            run = chat.run(
                "hi",
                on_output=on_output,
                OPENAI_BASE_URL=stub.base_url,
                OPENAI_API_KEY="sk-stub",
                OPENAI_MODEL="stub-model",
            )
        assert shown == len(chunks), f"only {shown} chunk(s) reached stdout while streaming"
        assert run.stdout == "".join(chunks) + "\n"
        assert run.returncode == 0, run.stderr

    def test_is_configured_by_environment_only(self, chat: ExampleRunner) -> None:
        with StubServer(json_reply(404, OPENAI_MODEL_NOT_FOUND)) as stub:
            chat.run(
                "hi",
                OPENAI_BASE_URL=stub.base_url,
                OPENAI_API_KEY="sk-from-env",
                OPENAI_MODEL="model-from-env",
            )
            chat.run("hi", OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-from-env")
        first, second = stub.requests
        assert first["path"] == "/v1/chat/completions"
        assert first["headers"]["authorization"] == "Bearer sk-from-env"
        assert first["body"]["model"] == "model-from-env"
        assert first["body"]["stream"] is True
        assert first["body"]["messages"] == [{"role": "user", "content": "hi"}]
        assert second["body"]["model"] == "gpt-4o-mini"  # the OpenAI default

    @pytest.mark.parametrize("base_url", [None, ""])
    def test_without_base_url_it_targets_the_openai_api(
        self, chat: ExampleRunner, base_url: str | None
    ) -> None:
        """No network here: whatever the outcome (DNS failure offline, 401 online with
        this fake key), the error must name the SDK's default endpoint."""
        run = chat.run(
            "hi",
            OPENAI_BASE_URL=base_url,
            OPENAI_API_KEY="sk-test-not-a-real-key",
            OPENAI_MAX_RETRIES="0",
            OPENAI_TIMEOUT="5",
        )
        assert run.returncode in (EXIT_AUTH, EXIT_UNREACHABLE, EXIT_TIMEOUT), run.stderr
        assert "https://api.openai.com/v1" in run.error_line()

    def test_unreachable_endpoint_is_one_clear_line(self, chat: ExampleRunner) -> None:
        base_url = f"http://127.0.0.1:{free_port()}/v1"
        run = chat.run(
            "hi", OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-x", OPENAI_MAX_RETRIES="0"
        )
        assert run.returncode == EXIT_UNREACHABLE
        line = run.error_line()
        assert f"cannot connect to the endpoint at {base_url} (connection refused)" in line
        assert "OPENAI_BASE_URL" in line
        assert run.stdout == ""

    def test_unknown_model_is_one_clear_line(self, chat: ExampleRunner) -> None:
        """The hosted API's real 404 body, from a loopback stub (llama-cpp-python's server
        ignores the model name: see test_llama_cpp_server_ignores_the_model_name)."""
        with StubServer(json_reply(404, OPENAI_MODEL_NOT_FOUND)) as stub:
            run = chat.run(
                "hi",
                OPENAI_BASE_URL=stub.base_url,
                OPENAI_API_KEY="sk-x",
                OPENAI_MODEL="no-such-model",
                OPENAI_MAX_RETRIES="0",
            )
        assert run.returncode == EXIT_MODEL
        line = run.error_line()
        assert "does not serve model" in line and "no-such-model" in line
        assert "(404: " in line
        assert "OPENAI_MODEL" in line

    def test_an_empty_stream_for_an_unknown_model_is_one_clear_line(
        self, chat: ExampleRunner
    ) -> None:
        """LocalAI streams HTTP 200 and no content for a model it does not have: the
        example asks /v1/models and names what the endpoint serves."""
        with StubServer(localai_chat(["qwen2.5-0.5b-instruct", "phi-3.5-mini-instruct"])) as stub:
            run = chat.run(
                "hi",
                OPENAI_BASE_URL=stub.base_url,
                OPENAI_API_KEY="sk-x",
                OPENAI_MODEL="no-such-model",
                OPENAI_MAX_RETRIES="0",
            )
            paths = [r["path"] for r in stub.requests]
        assert paths == ["/v1/chat/completions", "/v1/models"]
        assert run.returncode == EXIT_MODEL
        line = run.error_line()
        assert "does not serve model" in line and "no-such-model" in line
        assert "it serves: phi-3.5-mini-instruct, qwen2.5-0.5b-instruct)" in line
        assert "OPENAI_MODEL" in line
        assert run.stdout == ""

    def test_an_empty_stream_from_a_served_model_is_an_error(self, chat: ExampleRunner) -> None:
        """A model LocalAI has but cannot run (out of memory, a damaged file): exit 9."""
        with StubServer(localai_chat(["qwen2.5-0.5b-instruct"])) as stub:
            run = chat.run(
                "hi",
                OPENAI_BASE_URL=stub.base_url,
                OPENAI_API_KEY="sk-x",
                OPENAI_MODEL="qwen2.5-0.5b-instruct",
                OPENAI_MAX_RETRIES="0",
            )
        assert run.returncode == EXIT_EMPTY
        line = run.error_line()
        assert "sent an empty answer for model" in line and "failed to load" in line
        assert run.stdout == ""

    def test_the_localai_stand_in_streams_what_it_serves(self, chat: ExampleRunner) -> None:
        with StubServer(localai_chat(["qwen2.5-0.5b-instruct"], answer="Blue.")) as stub:
            run = chat.run(
                "hi",
                OPENAI_BASE_URL=stub.base_url,
                OPENAI_API_KEY="sk-x",
                OPENAI_MODEL="qwen2.5-0.5b-instruct",
                OPENAI_MAX_RETRIES="0",
            )
        assert (run.returncode, run.stdout) == (0, "Blue.\n")

    def test_timeout_is_one_clear_line(self, chat: ExampleRunner) -> None:
        with StubServer(hang()) as stub:
            run = chat.run(
                "hi",
                OPENAI_BASE_URL=stub.base_url,
                OPENAI_API_KEY="sk-x",
                OPENAI_TIMEOUT="1",
                OPENAI_MAX_RETRIES="0",
            )
        assert run.returncode == EXIT_TIMEOUT
        line = run.error_line()
        assert "did not answer within 1 s (timeout)" in line
        assert "OPENAI_TIMEOUT" in line
        assert run.seconds < 15

    # --- local mistakes ---------------------------------------------------------------

    def test_missing_prompt_prints_usage(self, chat: ExampleRunner) -> None:
        run = chat.run(OPENAI_API_KEY="sk-x")
        assert run.returncode == EXIT_USAGE
        assert run.stderr.startswith("usage: ")
        assert "Traceback" not in run.stderr

    def test_missing_key_is_one_clear_line(self, chat: ExampleRunner) -> None:
        run = chat.run("hi", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
        assert run.returncode == EXIT_CONFIG
        assert "OPENAI_API_KEY is not set" in run.error_line()

    def test_bad_timeout_value_is_one_clear_line(self, chat: ExampleRunner) -> None:
        run = chat.run("hi", OPENAI_API_KEY="sk-x", OPENAI_TIMEOUT="soon")
        assert run.returncode == EXIT_CONFIG
        assert "OPENAI_TIMEOUT" in run.error_line()
