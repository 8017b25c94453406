"""Each shipped chat template, rendered by LocalAI v2.24.0's own code, gives the model
family's own prompt format (issue 10, part 4).

LocalAI (core/http/endpoints/openai/chat.go) renders ``template.chat_message`` for each
message, joins them with ``join_chat_messages_by_character`` (default "\\n"), then renders
``template.chat`` with ``.Input`` = that text; ``tests/support/localai_chat`` runs those
steps with LocalAI's vendored Go packages (Go templates with sprig, as LocalAI has them).
llama.cpp adds the BOS token itself. The expected strings are the families' published
formats (the chat templates in their Hugging Face tokenizer configs) for a system prompt,
a user turn, an assistant reply and a follow-up. Requests with tools: test_tool_calls.py.
"""

from __future__ import annotations

import pytest

from components.models.catalog import load_catalog
from components.paths import MODEL_CONFIG_DIR
from tests.support.localai_chat import localai_chat

CONVERSATION = [
    ("system", "Be brief."),
    ("user", "Hi"),
    ("assistant", "Hello!"),
    ("user", "2+2?"),
]

EXPECTED = {
    "phi-3.5-mini-instruct": (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
        "<|user|>\n2+2?<|end|>\n<|assistant|>\n"
    ),
    "qwen2.5-0.5b-instruct": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "llama-3.1-8b-instruct": (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
}


def model_yaml(model_name: str) -> str:
    """The shipped config file of ``model_name``, as LocalAI reads it."""
    (path,) = [p for p in MODEL_CONFIG_DIR.glob("*.yaml") if p.stem == model_name]
    return path.read_text()


def localai_prompt(model_name: str, conversation: list[tuple[str, str]]) -> str:
    request = {
        "model": model_name,
        "messages": [{"role": role, "content": content} for role, content in conversation],
    }
    result = localai_chat(model_yaml(model_name), request)
    assert result["stderr"] == "", "a template failed and LocalAI fell back to bare turns"
    return result["prompt"]


@pytest.mark.parametrize("model_name", sorted(EXPECTED))
def test_a_conversation_renders_in_the_familys_own_format(model_name: str) -> None:
    assert localai_prompt(model_name, CONVERSATION) == EXPECTED[model_name]


def test_every_shipped_chat_model_has_a_checked_template() -> None:
    assert {n for n, m in load_catalog().items() if not m.embeddings} == set(EXPECTED)
