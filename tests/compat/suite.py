"""The calls apps make with the official OpenAI SDK, against any endpoint, as a table.

Each row is one call, what the hosted OpenAI API does with it, and what this endpoint did:
``ok`` (as OpenAI), ``deviation`` (what LocalAI v2.24.0 is documented to do instead: the
README's "OpenAI features" table), ``FAIL`` (neither) or ``skipped``.

    python -m tests.compat.suite --base-url "$OPENAI_BASE_URL" --api-key "$OPENAI_API_KEY" \\
        --model "$OPENAI_MODEL" --embedding-model "$OPENAI_EMBEDDING_MODEL" \\
        [--context-tokens N]   # the stack output contextPerRequest: tries a longer prompt

The same command runs against a deployed stack (its outputs) or the hosted API (for
example --model gpt-4o-mini --embedding-model text-embedding-3-small). In CI,
tests/compat/test_compat.py runs it against tests/support/localai_standin. Exit 0 when no
row failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import jsonschema
import openai

OK, DEVIATION, FAIL, SKIPPED = "ok", "deviation", "FAIL", "skipped"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Outcome:
    verdict: str
    detail: str


@dataclass(frozen=True)
class Case:
    call: str
    openai: str  # what the hosted API does
    run: Callable[[Context], Outcome]


@dataclass
class Context:
    client: openai.OpenAI
    model: str
    embedding_model: str | None
    context_tokens: int | None

    def chat(self, **kwargs):
        return self.client.chat.completions.create(model=self.model, **kwargs)


def ok(detail: str) -> Outcome:
    return Outcome(OK, detail)


def deviation(detail: str) -> Outcome:
    return Outcome(DEVIATION, detail)


def fail(detail: str) -> Outcome:
    return Outcome(FAIL, detail)


HELLO = [{"role": "user", "content": "Say hello in five words."}]


def chat(ctx: Context) -> Outcome:
    r = ctx.chat(messages=HELLO, max_tokens=32)
    message = r.choices[0].message
    if message.role == "assistant" and isinstance(message.content, str) and message.content:
        return ok(f"{len(message.content)} characters, finish_reason {r.choices[0].finish_reason}")
    return fail(f"no content: {message!r}")


def stream(ctx: Context) -> Outcome:
    text, finish, chunks = "", None, 0
    for chunk in ctx.chat(messages=HELLO, max_tokens=32, stream=True):
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    if text and finish:
        return ok(f"{chunks} chunks, finish_reason {finish}")
    return fail(f"{chunks} chunks, content {text!r}, finish_reason {finish}")


def stop(ctx: Context) -> Outcome:
    r = ctx.chat(messages=[{"role": "user", "content": "Write a long sentence."}],
                 max_tokens=64, stop=["e", "E"])  # fmt: skip
    content = r.choices[0].message.content or ""
    if "e" in content.lower():
        return fail(f"the stop sequence came through: {content!r}")
    return ok(f"cut before 'e': {content!r}")


def max_tokens(ctx: Context) -> Outcome:
    r = ctx.chat(messages=[{"role": "user", "content": "Count to one hundred."}], max_tokens=5)
    used, finish = r.usage.completion_tokens, r.choices[0].finish_reason
    if used > 5:
        return fail(f"{used} completion tokens")
    if finish == "length":
        return ok(f"{used} tokens, finish_reason length")
    return deviation(f"{used} tokens, but finish_reason {finish!r}: a cut answer looks complete")


def max_completion_tokens(ctx: Context) -> Outcome:
    r = ctx.chat(messages=[{"role": "user", "content": "Count to one hundred."}],
                 max_completion_tokens=5)  # fmt: skip
    used = r.usage.completion_tokens
    if used <= 5:
        return ok(f"{used} completion tokens")
    return deviation(f"ignored: {used} completion tokens (the model's default cap applies)")


def seed(ctx: Context) -> Outcome:
    answers = {
        ctx.chat(messages=HELLO, max_tokens=16, seed=42, temperature=1.0).choices[0].message.content
        for _ in range(2)
    }
    if len(answers) == 1:
        return ok("the same answer twice")
    return deviation(f"{len(answers)} different answers (seed is best effort)")


def usage(ctx: Context) -> Outcome:
    u = ctx.chat(messages=HELLO, max_tokens=8).usage
    if (
        u.prompt_tokens > 0
        and u.completion_tokens > 0
        and u.total_tokens == (u.prompt_tokens + u.completion_tokens)
    ):
        return ok(f"{u.prompt_tokens} + {u.completion_tokens} = {u.total_tokens}")
    return fail(f"usage {u!r}")


def _call_shape(call) -> str | None:
    """What is wrong with a tool call, or None."""
    if call.type != "function" or not call.id:
        return f"type {call.type!r}, id {call.id!r}"
    try:
        arguments = json.loads(call.function.arguments)
    except (TypeError, ValueError):
        return f"arguments are not a JSON string: {call.function.arguments!r}"
    if not isinstance(arguments, dict):
        return f"arguments are not an object: {arguments!r}"
    return None


def tools_auto(ctx: Context) -> Outcome:
    r = ctx.chat(messages=ASK_WEATHER, tools=[WEATHER], tool_choice="auto")
    calls = r.choices[0].message.tool_calls
    if calls:
        problem = _call_shape(calls[0])
        if problem:
            return fail(problem)
        return ok(f"called {calls[0].function.name} ({r.choices[0].finish_reason})")
    if r.choices[0].message.content:
        return ok("answered without a call")
    return fail("neither a call nor content")


def tools_named(ctx: Context) -> Outcome:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    r = ctx.chat(messages=ASK_WEATHER, tools=[WEATHER], tool_choice=choice)
    calls = r.choices[0].message.tool_calls or []
    if not calls or calls[0].function.name != "get_weather":
        return fail(f"no call of get_weather: {r.choices[0].message!r}")
    problem = _call_shape(calls[0])
    if problem:
        return fail(problem)
    arguments = json.loads(calls[0].function.arguments)
    try:
        jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    except jsonschema.ValidationError as err:
        return fail(f"arguments do not match the schema: {err.message}")
    return ok(f"get_weather({calls[0].function.arguments}), finish_reason "
              f"{r.choices[0].finish_reason}")  # fmt: skip


def tools_required(ctx: Context) -> Outcome:
    r = ctx.chat(messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required")
    if r.choices[0].message.tool_calls:
        return ok("a call")
    return deviation("answered without a call (v2.24.0 treats 'required' as 'auto')")


def tools_none(ctx: Context) -> Outcome:
    r = ctx.chat(messages=ASK_WEATHER, tools=[WEATHER], tool_choice="none")
    if not r.choices[0].message.tool_calls:
        return ok("no call")
    return deviation("called a tool (v2.24.0 treats 'none' as 'auto')")


def tool_round_trip(ctx: Context) -> Outcome:
    messages = [
        *ASK_WEATHER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]  # fmt: skip
    r = ctx.chat(messages=messages, tools=[WEATHER])
    message = r.choices[0].message
    if message.content or message.tool_calls:
        return ok("answered after the tool's result")
    return fail("no answer after the tool's result")


def json_object(ctx: Context) -> Outcome:
    r = ctx.chat(messages=[{"role": "user", "content": "Describe Paris as a JSON object."}],
                 response_format={"type": "json_object"}, max_tokens=200)  # fmt: skip
    content = r.choices[0].message.content or ""
    try:
        value = json.loads(content)
    except ValueError:
        return fail(f"not JSON: {content[:80]!r}")
    return ok("a JSON object") if isinstance(value, dict) else fail(f"not an object: {value!r}")


def json_schema(ctx: Context) -> Outcome:
    schema = {"type": "json_schema",
              "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True}}  # fmt: skip
    r = ctx.chat(messages=[{"role": "user", "content": "Name a city and its population."}],
                 response_format=schema, max_tokens=200)  # fmt: skip
    content = r.choices[0].message.content or ""
    try:
        jsonschema.validate(json.loads(content), CITY_SCHEMA)
    except (ValueError, jsonschema.ValidationError) as err:
        return fail(f"{content[:80]!r}: {err}")
    return ok(content)


def _embed(ctx: Context, texts: list[str], **kwargs) -> list[list[float]]:
    r = ctx.client.embeddings.create(model=ctx.embedding_model, input=texts, **kwargs)
    return [d.embedding for d in sorted(r.data, key=lambda d: d.index)]


def embeddings_batch(ctx: Context) -> Outcome:
    if not ctx.embedding_model:
        return Outcome(SKIPPED, "no --embedding-model")
    vectors = _embed(ctx, ["one", "two", "three"])
    sizes = {len(v) for v in vectors}
    if len(vectors) == 3 and len(sizes) == 1 and sizes != {0}:
        return ok(f"3 vectors of {sizes.pop()} dimensions")
    return fail(f"{len(vectors)} vectors, sizes {sizes}")


def embeddings_dimensions(ctx: Context) -> Outcome:
    if not ctx.embedding_model:
        return Outcome(SKIPPED, "no --embedding-model")
    (vector,) = _embed(ctx, ["one"], dimensions=32)
    if len(vector) == 32:
        return ok("32 dimensions")
    return deviation(f"ignored: {len(vector)} dimensions")


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def embeddings_cosine(ctx: Context) -> Outcome:
    if not ctx.embedding_model:
        return Outcome(SKIPPED, "no --embedding-model")
    same_a, same_b, other = _embed(ctx, ["The cat sleeps.", "The cat sleeps.", "Tax law."])
    same, different = _cosine(same_a, same_b), _cosine(same_a, other)
    if same > 0.999 and different < same:
        return ok(f"cos(same) {same:.3f}, cos(different) {different:.3f}")
    return fail(f"cos(same) {same:.3f}, cos(different) {different:.3f}")


def unknown_model(ctx: Context) -> Outcome:
    try:
        ctx.client.chat.completions.create(model="no-such-model-x", messages=HELLO, max_tokens=4)
    except openai.NotFoundError:
        return ok("404")
    except openai.InternalServerError as err:
        return deviation(f"{err.status_code} (OpenAI: 404)")
    return fail("answered")


def unknown_model_streamed(ctx: Context) -> Outcome:
    try:
        stream_ = ctx.client.chat.completions.create(
            model="no-such-model-x", messages=HELLO, max_tokens=4, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream_ if c.choices)
    except openai.NotFoundError:
        return ok("404")
    if text:
        return fail(f"answered {text!r}")
    return deviation("HTTP 200 and an empty stream (check for content: README)")


def wrong_key(ctx: Context) -> Outcome:
    client = ctx.client.with_options(api_key="sk-wrong-key-0000000000000000", max_retries=0)
    try:
        client.chat.completions.create(model=ctx.model, messages=HELLO, max_tokens=4)
    except openai.AuthenticationError:
        return ok("401")
    except openai.APIStatusError as err:
        return fail(f"{err.status_code}")
    return fail("accepted")


def oversized_prompt(ctx: Context) -> Outcome:
    if not ctx.context_tokens:
        return Outcome(SKIPPED, "no --context-tokens")
    words = " ".join(["word"] * (ctx.context_tokens * 2))
    try:
        ctx.chat(messages=[{"role": "user", "content": words}], max_tokens=4)
    except openai.BadRequestError:
        return ok("400 (context_length_exceeded)")
    return deviation("answered: the prompt was cut from the front without an error")


CASES = [
    Case("chat", "an assistant message with content", chat),
    Case("stream", "content in chunks, then a finish_reason", stream),
    Case("stop sequences", "the answer ends before a stop sequence", stop),
    Case("max_tokens", "at most max_tokens, finish_reason 'length' when cut", max_tokens),
    Case("max_completion_tokens", "at most that many tokens", max_completion_tokens),
    Case("seed", "the same answer for the same seed (best effort)", seed),
    Case("usage", "prompt + completion = total tokens", usage),
    Case("tools, tool_choice auto", "a well-formed call or an answer", tools_auto),
    Case("tools, a named function", "a call of it, arguments a JSON string", tools_named),
    Case("tools, tool_choice required", "always a call", tools_required),
    Case("tools, tool_choice none", "never a call", tools_none),
    Case("tool result round trip", "an answer after a role 'tool' message", tool_round_trip),
    Case("response_format json_object", "a JSON object", json_object),
    Case("response_format json_schema", "JSON matching the schema", json_schema),
    Case("embeddings, a batch", "one vector per input, in order", embeddings_batch),
    Case("embeddings, dimensions", "vectors of the asked size", embeddings_dimensions),
    Case("embeddings, cosine", "identical texts ~1, others lower", embeddings_cosine),
    Case("unknown model", "404 model_not_found", unknown_model),
    Case("unknown model, streamed", "404 model_not_found", unknown_model_streamed),
    Case("wrong key", "401", wrong_key),
    Case("prompt over the context", "400 context_length_exceeded", oversized_prompt),
]


def run_suite(ctx: Context) -> list[tuple[Case, Outcome]]:
    results = []
    for case in CASES:
        try:
            outcome = case.run(ctx)
        except openai.APIError as err:
            outcome = fail(f"{type(err).__name__}: {' '.join(str(err).split())[:120]}")
        results.append((case, outcome))
    return results


def table(results: list[tuple[Case, Outcome]]) -> str:
    rows = [("call", "OpenAI", "result", "detail")]
    rows += [(c.call, c.openai, o.verdict, o.detail[:100]) for c, o in results]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) +
                     "  " + row[3])  # fmt: skip
        if index == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=None, help="unset: the hosted OpenAI API")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--embedding-model")
    parser.add_argument("--context-tokens", type=int)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, timeout=args.timeout,
                           max_retries=0)  # fmt: skip
    results = run_suite(Context(client, args.model, args.embedding_model, args.context_tokens))
    print(table(results))
    return 1 if any(o.verdict == FAIL for _c, o in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
