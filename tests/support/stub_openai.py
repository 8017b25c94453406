"""Loopback HTTP stand-ins for server behaviours the real llama.cpp server cannot show.

llama-cpp-python's server never answers 404 for an unknown model (it serves its one
model whatever the name), never sends 503 while "loading", and never hangs. The hosted
OpenAI API and LocalAI do. These stubs reproduce those answers byte for byte on
127.0.0.1 so that OUR code (the examples, the readiness waiter) is exercised against
them; nothing of ours is replaced.

Usage::

    with StubServer(json_reply(503, {"error": {"message": "loading"}})) as stub:
        stub.base_url  # http://127.0.0.1:<port>/v1
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Responder = Callable[[BaseHTTPRequestHandler], None]

# The hosted API's answer for an unknown model (HTTP 404), as documented and observed.
OPENAI_MODEL_NOT_FOUND = {
    "error": {
        "message": "The model `{model}` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
}
# LocalAI's answer to a request it cannot serve, when not streamed (HTTP 500). A streamed
# request gets HTTP 200 and an empty stream instead: see localai_chat below.
LOCALAI_COULD_NOT_LOAD = {
    "error": {
        "code": 500,
        "message": "could not load model - all backends returned error: {model}",
        "type": "",
    }
}


class StubServer:
    def __init__(self, responder: Responder):
        self.responder = responder
        self.requests: list[dict] = []  # {"path", "headers" (lowercased), "body"} per request
        self.release = threading.Event()  # set at exit: unblocks hanging handlers
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.requests.append({"path": self.path, "headers": headers, "body": body})
                stub.responder(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        Handler.stub = stub  # type: ignore[attr-defined]
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _requested_model(handler: BaseHTTPRequestHandler) -> str:
    body = handler.stub.requests[-1]["body"]  # type: ignore[attr-defined]
    return str(body.get("model", "")) if isinstance(body, dict) else ""


def json_reply(status: int, payload: dict) -> Responder:
    """Answer every request with ``status`` and ``payload``; ``{model}`` in string values
    is replaced by the requested model name."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        text = json.dumps(payload).replace("{model}", _requested_model(handler))
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return respond


def hang() -> Responder:
    """Read the request, never answer (until the stub is closed)."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.stub.release.wait(60)  # type: ignore[attr-defined]

    return respond


def lockstep_sse(
    chunks: Sequence[str], seen: queue.Queue[int], *, wait_s: float = 10.0
) -> Responder:
    """Stream ``chunks`` as OpenAI chat.completion.chunk SSE events, sending chunk i+1
    only after the test put ``i`` into ``seen`` (i.e. it saw chunk i on the client's
    stdout). A client that buffers its output never shows chunk 0, so the stub gives
    up after ``wait_s`` and the stream ends early: the test then fails."""

    def event(delta: dict, finish: str | None = None) -> bytes:
        payload = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "stub",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(payload)}\n\n".encode()

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()  # HTTP/1.0: the body ends when the connection closes
        handler.wfile.write(event({"role": "assistant"}))
        for index, text in enumerate(chunks):
            handler.wfile.write(event({"content": text}))
            handler.wfile.flush()
            try:
                acknowledged = seen.get(timeout=wait_s)
            except queue.Empty:
                return  # the client never showed this chunk: cut the stream
            if acknowledged != index:
                return
        handler.wfile.write(event({}, "stop"))
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()

    return respond


def localai_stream(
    handler: BaseHTTPRequestHandler,
    model: str,
    deltas: Sequence[dict],
    *,
    finish: str = "stop",
    ident: str = "3f0c",
    created: int = 0,
    usage: dict | None = None,
) -> None:
    """A streamed chat answer as LocalAI v2.24.0 frames it (chat.go, the stream writer,
    lines 467-516): HTTP 200, a role chunk (none ahead of tool calls), one chunk per delta,
    a last chunk with ``finish`` and empty content, then [DONE]. LocalAI writes
    "data: %v\n" of a json.Encoder's output, which ends in a newline of its own."""
    usage = usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice: dict = {"index": 0, "delta": delta}
        if finish_reason:
            choice["finish_reason"] = finish_reason
        payload = {"id": ident, "object": "chat.completion.chunk", "created": created,
                   "model": model, "choices": [choice], "usage": usage}  # fmt: skip
        return f"data: {json.dumps(payload)}\n\n".encode()

    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()  # HTTP/1.0: the body ends when the connection closes
    if not any("tool_calls" in delta for delta in deltas):
        handler.wfile.write(chunk({"role": "assistant", "content": ""}))
    for delta in deltas:
        handler.wfile.write(chunk(delta))
    handler.wfile.write(chunk({"content": ""}, finish))
    handler.wfile.write(b"data: [DONE]\n\n")
    handler.wfile.flush()


def localai_chat(served: Sequence[str], answer: str | None = None) -> Responder:
    """LocalAI v2.24.0's chat endpoint when ``answer`` is None: the model cannot run
    (a name it has no config for, a model that fails to load), and ``served`` are the
    names /v1/models lists.

    Streamed, LocalAI answers HTTP 200 with a role chunk, a last chunk with
    ``finish_reason: "stop"`` and empty content, then [DONE]: the streaming path ignores
    the compute error (core/http/endpoints/openai/chat.go, ``process`` and the stream
    writer, lines 31-61 and 467-516). Not streamed, the error is returned: HTTP 500.
    With ``answer``, a served model streams it as one content chunk.
    """

    def respond(handler: BaseHTTPRequestHandler) -> None:
        if handler.command == "GET" and handler.path.rstrip("/").endswith("/models"):
            listing = {"object": "list", "data": [{"id": n, "object": "model"} for n in served]}
            json_reply(200, listing)(handler)
            return
        body = handler.stub.requests[-1]["body"]  # type: ignore[attr-defined]
        model = _requested_model(handler)
        runs = answer is not None and model in served
        if not (isinstance(body, dict) and body.get("stream")):
            if runs:
                message = {"role": "assistant", "content": answer}
                reply = {"object": "chat.completion", "model": model,
                         "choices": [{"index": 0, "finish_reason": "stop", "message": message}]}  # fmt: skip
                json_reply(200, reply)(handler)
            else:
                json_reply(500, LOCALAI_COULD_NOT_LOAD)(handler)
            return
        localai_stream(handler, model, [{"content": answer}] if runs else [])

    return respond


def bag_of_words(text: str, dimensions: int = 64) -> list[float]:
    """A deterministic embedding in which texts sharing words are close: each word (the
    task prefix before ':' left out) adds 1 at a stable position."""
    import hashlib
    import re

    vector = [0.0] * dimensions
    for word in re.findall(r"[a-z]+", text.split(": ", 1)[-1].lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    return vector


def embeddings_and_chat(answer: str) -> Responder:
    """/v1/embeddings with :func:`bag_of_words` vectors (OpenAI's response shape) and
    /v1/chat/completions answering ``answer`` (not streamed)."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        body = handler.stub.requests[-1]["body"]  # type: ignore[attr-defined]
        if handler.path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": bag_of_words(t)}
                for i, t in enumerate(texts)
            ]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            reply = {"object": "list", "model": body["model"], "data": data[::-1], "usage": usage}
            json_reply(200, reply)(handler)
            return
        message = {"role": "assistant", "content": answer}
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": message}]}  # fmt: skip
        json_reply(200, reply)(handler)

    return respond
