"""Each shipped chat template, rendered the way LocalAI v2.24.0 renders a conversation,
gives the model family's own prompt format (issue 10, part 4).

LocalAI (core/http/endpoints/openai/chat.go) renders ``template.chat_message`` for each
message with ``.RoleName`` and ``.Content``, joins them with
``join_chat_messages_by_character`` (default "\\n"), then renders ``template.chat`` with
``.Input`` = that text. llama.cpp adds the BOS token itself. The expected strings are the
families' published formats (the chat templates in their Hugging Face tokenizer configs)
for a system prompt, a user turn, an assistant reply and a follow-up.
"""

from __future__ import annotations

import pytest

from components.models.catalog import load_catalog
from tests.components.models.go_template import render

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


def localai_prompt(model_name: str, conversation: list[tuple[str, str]]) -> str:
    template = load_catalog()[model_name].template
    assert template is not None and template.chat and template.chat_message
    messages = [
        render(template.chat_message, {"RoleName": role, "Content": content})
        for role, content in conversation
    ]
    join = template.join_chat_messages_by_character
    joined = ("\n" if join is None else join).join(messages)
    return render(template.chat, {"Input": joined})


@pytest.mark.parametrize("model_name", sorted(EXPECTED))
def test_a_conversation_renders_in_the_familys_own_format(model_name: str) -> None:
    assert localai_prompt(model_name, CONVERSATION) == EXPECTED[model_name]


def test_every_shipped_model_has_a_checked_template() -> None:
    assert set(load_catalog()) == set(EXPECTED)


def test_the_renderer_refuses_what_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="unsupported template action"):
        render("{{range .Messages}}x{{end}}", {})
    assert render('{{if eq .R "a"}}A{{else if eq .R "b"}}B{{else}}C{{end}}', {"R": "b"}) == "B"
    assert render('{{if eq .R "a"}}A{{else}}C{{end}}', {"R": "z"}) == "C"
