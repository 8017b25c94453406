"""A loopback server that answers the OpenAI API as LocalAI v2.24.0 does, for the
compatibility suite (tests/compat) in CI.

What LocalAI decides is decided by LocalAI's own code: each chat request goes through the
vendored Go harness (tests/support/localai_chat: request.go and chat.go's steps, the model
file's templates, the grammar built from tools or response_format, the parser that turns
the output into ``tool_calls``). Generation is llama.cpp (llama-cpp-python) on a
random-weight model (tools/synthetic_gguf), fed the prompt and grammar the harness gives.
The HTTP behaviour around it follows the v2.24.0 source:

- a wrong or missing key: 401 with an HTML body (core/http/middleware/auth.go);
- a model it has no config for: non-streamed 500 "could not load model", streamed 200 with
  a role chunk and an empty last chunk (chat.go ignores the streaming compute error);
- ``finish_reason`` "stop" whatever ended the answer ("tool_calls" for calls);
  ``max_completion_tokens`` and ``dimensions`` are not read;
- a prompt longer than the context is cut from the front, with no error;
- a request without ``max_tokens`` takes the model file's (the package renders one).

The synthetic model never picks end-of-sequence on its own, so under a grammar its
end-of-sequence logit is raised, and the tokens that close a JSON string, object or array
slightly: the grammar still decides what is allowed, this only makes an unbounded grammar
(``json_object``) end, as a trained model does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.support.localai_chat import localai_chat
from tests.support.stub_openai import localai_stream
from tools.synthetic_gguf import EOS_ID, FIRST_BYTE_ID, write_synthetic_gguf

CLOSE_BIAS = {FIRST_BYTE_ID + ord(c): 4.0 for c in '"}]'} | {EOS_ID: 100.0}


@dataclass
class ChatModel:
    name: str
    model_yaml: str  # the rendered file LocalAI would read
    llm: Any = None

    @property
    def config(self) -> dict:
        return yaml.safe_load(self.model_yaml)


@dataclass
class StandIn:
    chat_models: dict[str, ChatModel]
    embedding_models: dict[str, Any]  # name -> Llama(embedding=True)
    api_key: str
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one llama.cpp call at a time


def synthetic_llama(path: Path, *, n_ctx: int, embedding: bool = False):
    """llama.cpp on the random-weight model at ``path`` (written if missing); with
    ``embedding``, mean-pooled sentence embeddings as an embeddings model gives."""
    import llama_cpp

    if not path.exists():
        write_synthetic_gguf(path)
    pooling = {"pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN} if embedding else {}
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, embedding=embedding,
                           verbose=False, seed=0, **pooling)  # fmt: skip


class LocalAIStandInServer:
    """``with LocalAIStandInServer(models, key) as server: server.base_url``."""

    def __init__(self, standin: StandIn):
        self.standin = standin
        handler = type("Handler", (_Handler,), {"standin": standin})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> LocalAIStandInServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.standin.api_key}":
            return True
        page = b"<html><body>Unauthorized</body></html>"
        self.send_response(401)
        self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/models":
            names = [*self.standin.chat_models, *self.standin.embedding_models]
            self._json(200, {"object": "list",
                             "data": [{"id": n, "object": "model"} for n in names]})  # fmt: skip
            return
        self._json(404, {"error": {"code": 404, "message": "Cannot GET " + self.path}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.standin.requests.append({"path": self.path, "body": body})
        if not self._authorised():
            return
        if self.path == "/v1/embeddings":
            self._embeddings(body)
        elif self.path == "/v1/chat/completions":
            self._chat(body)
        else:
            self._json(404, {"error": {"code": 404, "message": "Cannot POST " + self.path}})

    # -- embeddings -------------------------------------------------------------------

    def _embeddings(self, body: dict) -> None:
        llm = self.standin.embedding_models.get(body.get("model", ""))
        if llm is None:
            self._could_not_load(body)
            return
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        with self.standin.lock:
            vectors = [llm.embed(t) for t in texts]
        data = [{"embedding": v, "index": i, "object": "embedding"} for i, v in enumerate(vectors)]
        self._json(200, {"created": int(time.time()), "object": "list", "id": str(uuid.uuid4()),
                         "model": body["model"], "data": data,
                         "usage": {"prompt_tokens": 0, "completion_tokens": 0,
                                   "total_tokens": 0}})  # fmt: skip

    # -- chat -------------------------------------------------------------------------

    def _could_not_load(self, body: dict) -> None:
        message = f"could not load model - all backends returned error: {body.get('model')}"
        self._json(500, {"error": {"code": 500, "message": message, "type": ""}})

    def _chat(self, body: dict) -> None:
        model = self.standin.chat_models.get(body.get("model", ""))
        if model is None:
            if body.get("stream"):
                self._stream(body, [], finish="stop")
            else:
                self._could_not_load(body)
            return
        rendered = localai_chat(model.model_yaml, body)
        if body.get("stream") and not rendered["use_functions"]:
            self._stream_tokens(model, body, rendered)
            return
        text, prompt_tokens, completion_tokens = self._generate(model, body, rendered)
        result = localai_chat(model.model_yaml, body, text)
        choices = result["choices"]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
        if body.get("stream"):
            deltas = []
            for choice in choices:
                message = choice["message"]
                if message.get("tool_calls"):
                    for index, call in enumerate(message["tool_calls"]):
                        deltas.append(
                            {
                                "role": "assistant",
                                "tool_calls": [
                                    {
                                        "index": index,
                                        "id": call["id"],
                                        "type": "function",
                                        "function": {"name": call["function"]["name"]},
                                    }
                                ],
                            }
                        )
                        deltas.append(
                            {
                                "role": "assistant",
                                "content": "",
                                "tool_calls": [
                                    {
                                        "index": index,
                                        "id": call["id"],
                                        "type": "function",
                                        "function": {"arguments": call["function"]["arguments"]},
                                    }
                                ],
                            }
                        )
                elif message.get("content"):
                    deltas.append({"content": message["content"]})
            calls = any(c["message"].get("tool_calls") for c in choices)
            self._stream(body, deltas, finish="tool_calls" if calls else "stop", usage=usage)
            return
        self._json(200, {"created": int(time.time()), "object": "chat.completion",
                         "id": str(uuid.uuid4()), "model": body["model"], "choices": choices,
                         "usage": usage})  # fmt: skip

    def _stream_tokens(self, model: ChatModel, body: dict, rendered: dict) -> None:
        """A plain chat answer, one chunk per token as LocalAI streams it."""
        pieces: list[str] = []
        self._generate(model, body, rendered, on_piece=pieces.append)
        self._stream(body, [{"content": p} for p in pieces if p], finish="stop")

    def _generate(self, model: ChatModel, body: dict, rendered: dict,
                  on_piece=None) -> tuple[str, int, int]:  # fmt: skip
        config = model.config
        llm = model.llm
        max_tokens = body.get("max_tokens") or config["parameters"].get("max_tokens") or 256
        stop = list(config.get("stopwords") or [])
        request_stop = body.get("stop")
        stop += [request_stop] if isinstance(request_stop, str) else list(request_stop or [])
        tokens = llm.tokenize(rendered["prompt"].encode(), add_bos=True, special=True)
        room = llm.n_ctx() - max_tokens - 1
        if len(tokens) > room:  # llama.cpp drops the oldest tokens: no error
            tokens = tokens[len(tokens) - room :]
        grammar = None
        bias = None
        if rendered["grammar"]:
            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_string(rendered["grammar"], verbose=False)
            bias = CLOSE_BIAS
        options = dict(max_tokens=max_tokens, stop=stop or None, grammar=grammar,
                       logit_bias=bias, seed=body.get("seed"),
                       temperature=body.get("temperature", 0.7))  # fmt: skip
        with self.standin.lock:
            if on_piece is not None:
                count = 0
                for part in llm.create_completion(tokens, stream=True, **options):
                    on_piece(part["choices"][0]["text"])
                    count += 1
                return "", len(tokens), count
            out = llm.create_completion(tokens, **options)
        usage = out["usage"]
        return out["choices"][0]["text"], usage["prompt_tokens"], usage["completion_tokens"]

    def _stream(self, body: dict, deltas: list[dict], *, finish: str,
                usage: dict | None = None) -> None:  # fmt: skip
        localai_stream(self, body.get("model", ""), deltas, finish=finish,
                       ident=str(uuid.uuid4()), created=int(time.time()), usage=usage)  # fmt: skip
