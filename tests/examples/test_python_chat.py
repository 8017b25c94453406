"""examples/python/chat.py against a real llama.cpp server, a closed port and stubs."""

from __future__ import annotations

import sys

import pytest

from tests.examples.contract import REPO, ChatExampleContract, ExampleRunner
from tests.support.llama_server import LlamaServer


@pytest.fixture
def chat() -> ExampleRunner:
    return ExampleRunner([sys.executable, str(REPO / "examples" / "python" / "chat.py")], REPO)


class TestPythonChat(ChatExampleContract):
    pass


@pytest.mark.slow
def test_llama_cpp_server_ignores_the_model_name(llama_server: LlamaServer) -> None:
    """Why the unknown-model tests use a stub: llama-cpp-python's server answers any
    model name with its one model. If this starts failing, the server has learnt to
    reject unknown names and the examples can be tested against it directly."""
    reply = llama_server.chat("hi", max_tokens=2)
    other = llama_server.chat("hi", max_tokens=2, model="no-such-model")
    assert reply["choices"] and other["choices"]
