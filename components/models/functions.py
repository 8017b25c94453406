"""``function:`` of a model config: how LocalAI v2.24.0 turns ``tools`` into tool calls.

For a request with ``tools`` (v2.24.0:core/http/endpoints/openai/chat.go, lines 186-297
and 520-590), LocalAI
- renders the prompt with ``template.function`` instead of ``template.chat`` (without it,
  no template at all: the model sees the bare turns and no assistant header);
- unless ``grammar.disable``, constrains the output with a grammar built from the tools'
  JSON schemas: one of ``{"name": <tool>, "arguments": {...}}``, plus an ``answer`` tool
  (``{"message": ...}``) unless ``disable_no_action``, so that a plain reply stays possible;
  a named ``tool_choice`` narrows the grammar to that tool;
- parses the output (``response_regex`` / ``json_regex_match`` / plain JSON) into
  ``tool_calls`` whose ``arguments`` is a JSON string; an ``answer`` becomes the content.

The schema mirrors ``functions.FunctionsConfig`` (pkg/functions/parse.go): same keys, and
each regular expression compiled by RE2 here as Go's regexp.MustCompile would at the
request (a pattern it refuses makes LocalAI panic in the handler).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from components.models.re2 import re2_problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(patterns: list[str] | None) -> list[str] | None:
    for pattern in patterns or []:
        problem = re2_problem(pattern)
        if problem is not None:
            raise ValueError(
                f"{pattern!r} is not an RE2 pattern ({problem}); LocalAI compiles it with "
                "Go's regexp.MustCompile at the first tool request and panics. RE2 has no "
                "lookaround and no backreferences"
            )
    return patterns


class Replacement(_Strict):
    """A ``replace_function_results`` / ``replace_llm_results`` entry: an RE2 pattern and
    its replacement (Go's ReplaceAllString: ``$1`` names a group)."""

    key: str
    value: str

    @field_validator("key")
    @classmethod
    def _key_compiles(cls, value: str) -> str:
        _check_patterns([value])
        return value


class FunctionGrammar(_Strict):
    """``function.grammar`` (``functions.GrammarConfig``)."""

    parallel_calls: bool | None = None
    disable_parallel_new_lines: bool | None = None
    mixed_mode: bool | None = None
    no_mixed_free_string: bool | None = None
    disable: bool | None = None
    prefix: str | None = None
    expect_strings_after_json: bool | None = None
    properties_order: str | None = None
    schema_type: Literal["json", "llama3.1"] | None = None


class FunctionsConfig(_Strict):
    """``function:`` (``functions.FunctionsConfig``)."""

    disable_no_action: bool | None = None
    grammar: FunctionGrammar | None = None
    no_action_function_name: str | None = None
    no_action_description_name: str | None = None
    response_regex: list[str] | None = None
    json_regex_match: list[str] | None = None
    replace_function_results: list[Replacement] | None = None
    replace_llm_results: list[Replacement] | None = None
    capture_llm_results: list[str] | None = None
    function_name_key: str | None = None
    function_arguments_key: str | None = None

    @field_validator("response_regex", "json_regex_match", "capture_llm_results")
    @classmethod
    def _patterns_compile(cls, value: list[str] | None) -> list[str] | None:
        return _check_patterns(value)

    @field_validator("function_name_key")
    @classmethod
    def _no_function_name_key(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "LocalAI v2.24.0 passes it to the grammar as both the name key and the "
                "arguments key (chat.go line 272: ToJSONStructure(FunctionNameKey, "
                "FunctionNameKey)), so the grammar loses the arguments and every tool call "
                "breaks: leave it unset (the key is 'name')"
            )
        return value  # None: any other value was refused
