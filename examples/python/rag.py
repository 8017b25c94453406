"""Answer a question from a few documents: embed them, retrieve by cosine similarity, and
answer with the best matches as context. The standard OpenAI SDK only; the same code runs
against the stack's endpoint or the hosted OpenAI API, chosen by environment variables:

    OPENAI_BASE_URL          endpoint ending in /v1 (unset: api.openai.com)
    OPENAI_API_KEY           the key
    OPENAI_MODEL             chat model (default: gpt-4o-mini)
    OPENAI_EMBEDDING_MODEL   embeddings model (default: text-embedding-3-small)
    RAG_TOP_K                documents given to the chat model (default: 2)

Usage: python rag.py QUESTION... [< documents.txt]

Documents are read from stdin, one per line (blank lines skipped); without stdin, a few
built-in ones about this package. Exit codes: 0 ok, 2 usage, 3 configuration, 8 API error,
9 empty answer. Errors are one line on stderr.

nomic-embed-text-v1.5 (the stack's default embeddings model) was trained with the task
prefixes "search_document: " and "search_query: "; the example always adds them, which
does not hurt OpenAI's embedding models.
"""

from __future__ import annotations

import math
import os
import sys

import openai

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DOCUMENT_PREFIX = "search_document: "
QUERY_PREFIX = "search_query: "
EXIT_USAGE, EXIT_CONFIG, EXIT_API, EXIT_EMPTY = 2, 3, 8, 9

BUILT_IN = [
    "The weights volume survives instance replacement; weights are never downloaded twice.",
    "The API key is a Pulumi secret and never appears in user data or logs.",
    "A fleet runs behind an HTTPS Application Load Balancer with a warm pool.",
    "The local target runs LocalAI on the Docker daemon, bound to 127.0.0.1.",
]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def embed(client: openai.OpenAI, model: str, texts: list[str]) -> list[list[float]]:
    """One request for the whole batch; vectors in the order of ``texts``."""
    response = client.embeddings.create(model=model, input=texts)
    ordered = sorted(response.data, key=lambda item: item.index)
    if len(ordered) != len(texts):
        raise RuntimeError(f"asked for {len(texts)} embeddings, got {len(ordered)}")
    return [item.embedding for item in ordered]


def retrieve(
    client: openai.OpenAI, model: str, question: str, documents: list[str], k: int
) -> list[str]:
    """The ``k`` documents closest to ``question``, best first."""
    vectors = embed(client, model, [DOCUMENT_PREFIX + d for d in documents])
    (query,) = embed(client, model, [QUERY_PREFIX + question])
    ranked = sorted(zip(documents, vectors, strict=True), key=lambda pair: -cosine(query, pair[1]))
    return [document for document, _vector in ranked[:k]]


def answer(client: openai.OpenAI, model: str, question: str, context: list[str]) -> str:
    facts = "\n".join(f"- {c}" for c in context)
    response = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": f"Answer from these facts only:\n{facts}"},
            {"role": "user", "content": question},
        ],
    )
    return response.choices[0].message.content or ""


def main(argv: list[str]) -> int:
    question = " ".join(argv).strip()
    if not question:
        print("usage: python rag.py QUESTION... [< documents.txt]", file=sys.stderr)
        return EXIT_USAGE
    documents = BUILT_IN
    if not sys.stdin.isatty():
        documents = [line.strip() for line in sys.stdin if line.strip()] or BUILT_IN
    try:
        k = int(os.environ.get("RAG_TOP_K") or 2)
        if k < 1:
            raise ValueError
    except ValueError:
        print(f"error: RAG_TOP_K={os.environ['RAG_TOP_K']!r} is not a whole number >= 1.",
              file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    if not os.environ.get("OPENAI_BASE_URL"):
        os.environ.pop("OPENAI_BASE_URL", None)  # empty means unset, as in chat.py
    try:
        client = openai.OpenAI()
    except openai.OpenAIError:
        print("error: OPENAI_API_KEY is not set.", file=sys.stderr)
        return EXIT_CONFIG
    chat_model = os.environ.get("OPENAI_MODEL") or DEFAULT_CHAT_MODEL
    embedding_model = os.environ.get("OPENAI_EMBEDDING_MODEL") or DEFAULT_EMBEDDING_MODEL
    try:
        context = retrieve(client, embedding_model, question, documents, k)
        text = answer(client, chat_model, question, context)
    except (openai.APIError, RuntimeError) as err:
        print(f"error: {' '.join(str(err).split())[:300]}", file=sys.stderr)
        return EXIT_API
    if not text.strip():
        print(f"error: empty answer from model {chat_model!r}.", file=sys.stderr)
        return EXIT_EMPTY
    print("context:")
    for document in context:
        print(f"  - {document}")
    print(text.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
