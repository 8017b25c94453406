"""Tool calls and JSON output on every shipped model, by LocalAI v2.24.0's own code.

What a request with ``tools`` or ``response_format`` becomes in LocalAI (the prompt from
``template.function``, the grammar built from the schemas, the answer parsed back into
``tool_calls``) is run by LocalAI's vendored Go code (``tests/support/localai_chat``). The
model between the two steps is llama.cpp itself (llama-cpp-python) on a random-weight model:
the grammar, not the weights, decides the shape, so whatever it samples must come back as
an OpenAI-shaped answer. Real weights would only choose better.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.models.catalog import load_catalog
from tests.compat.suite import WEATHER  # the same tool the compatibility suite offers
from tests.components.models.test_templates import model_yaml
from tests.support.localai_chat import localai_chat
from tests.support.localai_standin import CLOSE_BIAS, synthetic_llama

MODELS = sorted(name for name, model in load_catalog().items() if not model.embeddings)
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}, "hour24": {"type": "boolean"}},
            "required": ["zone", "hour24"],
        },
    },
}
TOOLS = [WEATHER, TIME]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
# A tool's result sent back: the assistant's call (as the SDK replays it) and the result.
ROUND_TRIP = [
    {"role": "system", "content": "Be brief."},
    *QUESTION,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Paris", "unit": "celsius"}',
                },
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
]
# How each family shows the call and the result, and the turn that follows (the end of the
# prompt): Qwen2.5's <tool_call>/<tool_response>, Llama 3.1's ipython role, and for Phi-3.5
# (no tool format of its own) a user turn that says it carries a function's result.
ROUND_TRIP_END = {
    "qwen2.5-0.5b-instruct": (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n18 C, sunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "llama-3.1-8b-instruct": (
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n18 C, sunny<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "phi-3.5-mini-instruct": (
        "<|assistant|>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}<|end|>\n'
        "<|user|>\nFunction result:\n18 C, sunny<|end|>\n<|assistant|>\n"
    ),
}
# Where each family's tools block starts the prompt.
TOOLS_BLOCK_START = {
    "qwen2.5-0.5b-instruct": "<|im_start|>system\n# Tools\n",
    "llama-3.1-8b-instruct": "<|start_header_id|>system<|end_header_id|>\n\nGiven the following functions",
    "phi-3.5-mini-instruct": "<|system|>\nYou can call the following functions.",
}


def chat(model: str, messages: list[dict], output: str | None = None, **fields: Any) -> dict:
    result = localai_chat(model_yaml(model), {"model": model, "messages": messages, **fields},
                          output)  # fmt: skip
    assert result["stderr"] == "", f"a template failed: {result['stderr']}"
    return result


def grammar_alternatives(grammar: str) -> set[str]:
    """The tool names a LocalAI tools grammar lets the model pick."""
    # One rule per tool: root-N-name ::= "\"get_weather\"" (a JSON string as a literal).
    return set(re.findall(r'^root-\d+-name ::= "\\"(\w+)\\""$', grammar, re.M))


@pytest.mark.parametrize("model", MODELS)
def test_every_shipped_model_has_a_function_template(model: str) -> None:
    config = load_catalog()[model]
    assert config.template is not None and config.template.function


@pytest.mark.parametrize("model", MODELS)
def test_a_request_with_tools_shows_them_in_the_familys_format(model: str) -> None:
    prompt = chat(model, QUESTION, tools=TOOLS)["prompt"]
    assert prompt.startswith(TOOLS_BLOCK_START[model])
    decoder = json.JSONDecoder()  # raw_decode: a turn's end marker may follow on the line
    listed = [
        decoder.raw_decode(line.strip())[0]["function"]
        for line in prompt.splitlines()
        if line.strip().startswith('{"type": "function"')
    ]
    # The tools as the app sent them, then LocalAI's "answer" for a reply without a tool.
    assert [f["name"] for f in listed] == ["get_weather", "get_time", "answer"]
    assert listed[0]["parameters"] == WEATHER["function"]["parameters"]
    assert listed[0]["description"] == WEATHER["function"]["description"]
    # The conversation follows, rendered by chat_message, and the assistant's turn is open.
    plain = chat(model, QUESTION)["prompt"]
    assert prompt.endswith(plain), "the tools prompt must end like the plain chat prompt"


@pytest.mark.parametrize("model", MODELS)
def test_a_tool_result_sent_back_is_rendered_in_the_familys_format(model: str) -> None:
    prompt = chat(model, ROUND_TRIP, tools=TOOLS)["prompt"]
    assert prompt.endswith(ROUND_TRIP_END[model])


@pytest.mark.parametrize("model", MODELS)
def test_tool_choice_auto_and_named(model: str) -> None:
    auto = chat(model, QUESTION, tools=TOOLS, tool_choice="auto")
    assert auto["use_functions"]
    assert grammar_alternatives(auto["grammar"]) == {"get_weather", "get_time", "answer"}
    named = chat(model, QUESTION, tools=TOOLS,
                 tool_choice={"type": "function", "function": {"name": "get_time"}})  # fmt: skip
    assert grammar_alternatives(named["grammar"]) == {"get_time"}


@pytest.mark.parametrize("tool_choice", ["none", "required"])
def test_tool_choice_none_and_required_act_as_auto_in_v2_24_0(tool_choice: str) -> None:
    # request.go (lines 134-146) decodes a string tool_choice as JSON, fails, and sets an
    # empty function name: "none" still offers the tools and "required" still offers
    # "answer". The README's feature table says so; an app that wants no tool call sends
    # no tools.
    result = chat(MODELS[0], QUESTION, tools=TOOLS, tool_choice=tool_choice)
    assert result["use_functions"]
    assert grammar_alternatives(result["grammar"]) == {"get_weather", "get_time", "answer"}


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory):
    """llama.cpp on a random-weight model (tools/synthetic_gguf: printable bytes only)."""
    return synthetic_llama(tmp_path_factory.mktemp("gguf") / "synthetic.gguf", n_ctx=2048)


def generate(llm, grammar: str, seed: int, *, close: bool = False) -> str:
    """What llama.cpp samples under ``grammar`` (parsed by llama.cpp's own grammar parser).

    ``close`` applies the stand-in's CLOSE_BIAS (tests/support/localai_standin): the
    tokens that close a string, an object or an array, and end-of-sequence (which this
    model otherwise never picks), weigh more, so a grammar that allows any nesting and
    trailing whitespace (json_object) ends within the budget. The grammar still decides
    which tokens are allowed at each step.
    """
    from llama_cpp import LlamaGrammar

    compiled = LlamaGrammar.from_string(grammar, verbose=False)
    bias = CLOSE_BIAS if close else None
    out = llm.create_completion("Call a tool:", grammar=compiled, max_tokens=1500, seed=seed,
                                temperature=1.0, logit_bias=bias)  # fmt: skip
    choice = out["choices"][0]
    assert choice["finish_reason"] == "stop", "the grammar did not close within the budget"
    return choice["text"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_grammar_constrained_completion_comes_back_as_an_openai_tool_call(
    llm, model: str, seed: int
) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    request = {"tools": TOOLS, "tool_choice": named}
    grammar = chat(model, QUESTION, **request)["grammar"]
    output = generate(llm, grammar, seed)
    (choice,) = chat(model, QUESTION, output, **request)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and isinstance(call["id"], str) and call["id"]
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])  # a JSON string, as in OpenAI's
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])


@pytest.mark.parametrize("model", MODELS)
def test_auto_answers_with_a_tool_call_or_plain_content(llm, model: str) -> None:
    request = {"tools": TOOLS, "tool_choice": "auto"}
    grammar = chat(model, QUESTION, **request)["grammar"]
    for seed in range(4):
        (choice,) = chat(model, QUESTION, generate(llm, grammar, seed), **request)["choices"]
        calls = choice["message"].get("tool_calls")
        if calls:
            assert choice["finish_reason"] == "tool_calls"
            assert calls[0]["function"]["name"] in {"get_weather", "get_time"}
            json.loads(calls[0]["function"]["arguments"])
        else:  # the "answer" tool: its message is the content, and no tool call
            assert isinstance(choice["message"]["content"], str)


@pytest.mark.parametrize("model", MODELS)
def test_an_answer_without_a_tool_comes_back_as_plain_content(model: str) -> None:
    output = '{"name": "answer", "arguments": {"message": "Take an umbrella."}}'
    result = chat(model, QUESTION, output, tools=TOOLS)
    (choice,) = result["choices"]
    assert choice["message"]["content"] == "Take an umbrella."
    assert not choice["message"].get("tool_calls")
    assert not result.get("second_inference")


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "capital": {"type": "boolean"},
    },
    "required": ["city", "population", "capital"],
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", [1, 2])
def test_response_format_json_object_and_json_schema(llm, model: str, seed: int) -> None:
    json_object = chat(model, QUESTION, response_format={"type": "json_object"})
    assert not json_object["use_functions"]
    value = json.loads(generate(llm, json_object["grammar"], seed, close=True))
    assert isinstance(value, dict)
    schema = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    json_schema = chat(model, QUESTION, response_format=schema)
    text = generate(llm, json_schema["grammar"], seed, close=True)
    jsonschema.validate(json.loads(text), SCHEMA)
    # Answered as plain content, as OpenAI does.
    (choice,) = chat(model, QUESTION, text, response_format=schema)["choices"]
    assert choice["message"]["content"] == text and choice["finish_reason"] == "stop"


def test_the_vendored_sources_are_the_pinned_tags_files() -> None:
    import hashlib

    root = Path(__file__).resolve().parents[2] / "support" / "localai_go"
    lines = (root / "SOURCES").read_text().splitlines()
    assert lines[0].startswith(
        "# mudler/LocalAI v2.24.0 (87b7648591573ea59c090b1095ba3073623933ad)"
    )
    for line in lines[1:]:
        digest, name = line.split("  ", 1)
        path = root / "src" / "github.com" / "mudler" / "LocalAI" / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("model", MODELS)
def test_the_rendered_config_a_host_reads_behaves_as_the_shipped_file(model: str) -> None:
    from components.models.catalog import render_model_yaml

    rendered = render_model_yaml(load_catalog()[model], gpu_layers=0, threads=None)
    for request in ({"messages": ROUND_TRIP, "tools": TOOLS}, {"messages": ROUND_TRIP[:2]}):
        shipped = chat(model, **request)
        on_host = localai_chat(rendered, {"model": model, **request})
        assert on_host["prompt"] == shipped["prompt"]
        # The same rules (Go's map order lists them in a different order at each run).
        assert sorted(on_host["grammar"].splitlines()) == sorted(shipped["grammar"].splitlines())
