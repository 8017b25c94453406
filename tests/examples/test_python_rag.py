"""examples/python/rag.py against a loopback stand-in for /v1/embeddings and chat.

The stand-in's embeddings are bags of words (tests.support.stub_openai.bag_of_words), so
which documents are closest to a question is known, and the test can tell whether the
example retrieves by cosine similarity and hands the best ones to the chat model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.stub_openai import StubServer, embeddings_and_chat

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "rag.py"
DOCUMENTS = "\n".join(
    [
        "Cats sleep most of the day.",
        "The API key is a secret and never appears in logs.",
        "",
        "Rotate the API key with pulumi config set.",
        "Bread needs flour, water and salt.",
    ]
)


def run(*args: str, stdin: str = DOCUMENTS, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RAG_"))}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], input=stdin, capture_output=True, text=True,
        env={**clean, **env}, timeout=60, check=False,
    )  # fmt: skip


def test_it_answers_with_the_documents_closest_to_the_question() -> None:
    with StubServer(embeddings_and_chat("Keep it secret.")) as stub:
        result = run("How", "do", "I", "rotate", "the", "API", "key?",
                     OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-x",
                     OPENAI_MODEL="chat-m", OPENAI_EMBEDDING_MODEL="embed-m")  # fmt: skip
        requests = list(stub.requests)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "context:",
        "  - Rotate the API key with pulumi config set.",
        "  - The API key is a secret and never appears in logs.",
        "Keep it secret.",
    ]
    documents, query, chat = (r["body"] for r in requests)
    assert [r["path"] for r in requests] == ["/v1/embeddings"] * 2 + ["/v1/chat/completions"]
    # The documents in one batch with the document prefix, blank lines left out.
    assert documents["model"] == "embed-m" and len(documents["input"]) == 4
    assert all(text.startswith("search_document: ") for text in documents["input"])
    assert query["input"] == ["search_query: How do I rotate the API key?"]
    assert chat["model"] == "chat-m"
    system = chat["messages"][0]["content"]
    assert system == (
        "Answer from these facts only:\n- Rotate the API key with pulumi config set.\n"
        "- The API key is a secret and never appears in logs."
    )


def test_top_k_is_configurable_and_checked() -> None:
    with StubServer(embeddings_and_chat("ok")) as stub:
        one = run("bread?", OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-x", RAG_TOP_K="1")
    assert one.stdout.splitlines()[:2] == ["context:", "  - Bread needs flour, water and salt."]
    bad = run("bread?", OPENAI_API_KEY="sk-x", RAG_TOP_K="0")
    assert bad.returncode == 3 and "RAG_TOP_K" in bad.stderr


def test_an_empty_answer_and_a_missing_question_are_errors() -> None:
    with StubServer(embeddings_and_chat("")) as stub:
        empty = run("bread?", OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-x")
    assert empty.returncode == 9 and "empty answer" in empty.stderr
    usage = run(OPENAI_API_KEY="sk-x")
    assert usage.returncode == 2 and usage.stderr.startswith("usage: ")
