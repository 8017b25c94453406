"""components/models/functions.py: the ``function:`` settings of a model config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.errors import ModelConfigError
from components.models.catalog import parse_model_config
from tests.components.models.test_catalog import mutate
from tests.components.models.test_tool_calls import QUESTION, TOOLS, grammar_alternatives
from tests.support.localai_chat import localai_chat


def with_function(**settings: object) -> str:
    return mutate(lambda d: d.__setitem__("function", settings))


def test_the_shipped_settings_parse_and_every_known_key_is_accepted() -> None:
    text = with_function(
        disable_no_action=True,
        grammar={"parallel_calls": True, "disable_parallel_new_lines": True, "mixed_mode": True,
                 "no_mixed_free_string": True, "disable": False, "prefix": "<x>",
                 "expect_strings_after_json": True, "properties_order": ",name,arguments",
                 "schema_type": "llama3.1"},
        no_action_function_name="reply",
        no_action_description_name="reply to the user",
        response_regex=[r"<function=(?P<name>\w+)>(?P<arguments>.*)</function>"],
        json_regex_match=[r"(?s)<tool_call>(.*?)</tool_call>"],
        replace_function_results=[{"key": r"'", "value": '"'}],
        replace_llm_results=[{"key": r"^\s+", "value": ""}],
        capture_llm_results=[r"(?s)<thinking>(.*?)</thinking>"],
        function_arguments_key="arguments",
    )  # fmt: skip
    config = parse_model_config(text)
    function = config.function
    assert function is not None and function.grammar is not None
    assert function.grammar.schema_type == "llama3.1"
    assert function.grammar.properties_order == ",name,arguments"
    assert function.response_regex == [r"<function=(?P<name>\w+)>(?P<arguments>.*)</function>"]
    assert function.json_regex_match == [r"(?s)<tool_call>(.*?)</tool_call>"]
    assert function.capture_llm_results == [r"(?s)<thinking>(.*?)</thinking>"]
    assert [(r.key, r.value) for r in function.replace_function_results] == [("'", '"')]
    assert [(r.key, r.value) for r in function.replace_llm_results] == [(r"^\s+", "")]
    # What the validated settings render to is what the file said (render_model_yaml
    # dumps the model).
    assert config.model_dump(exclude_none=True)["function"]["replace_llm_results"] == [
        {"key": r"^\s+", "value": ""}
    ]


def test_function_settings_are_read_only_once_validated() -> None:
    function = parse_model_config(with_function(disable_no_action=True)).function
    assert function is not None
    with pytest.raises(ValidationError, match="frozen"):
        function.disable_no_action = False  # type: ignore[misc]
    assert function.grammar is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"grammar": {"schema": "json"}}, r"function\.grammar\.schema"),
        ({"grammar": {"schema_type": "xml"}}, r"function\.grammar\.schema_type"),
        ({"disable_no_actions": True}, r"function\.disable_no_actions"),
        ({"response_regex": ["(?P<name>a)(?=b)"]}, r"function\.response_regex.*not an RE2"),
        ({"json_regex_match": ["(a"]}, r"function\.json_regex_match.*missing \)"),
        ({"capture_llm_results": [r"(a)\1"]}, r"function\.capture_llm_results.*not an RE2"),
        ({"replace_llm_results": [{"key": "(?<=a)b", "value": ""}]},
         r"function\.replace_llm_results\.0\.key.*not an RE2"),
        ({"replace_function_results": [{"key": "a"}]}, r"replace_function_results\.0\.value"),
        ({"function_name_key": "name"}, r"function\.function_name_key.*both the name key"),
    ],
)  # fmt: skip
def test_bad_function_settings_are_refused_with_their_key(settings: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        parse_model_config(with_function(**settings))


@pytest.mark.parametrize("key", ["name", "function"])
def test_function_name_key_breaks_every_tool_call_in_v2_24_0(key: str) -> None:
    # Why it is refused: the grammar LocalAI builds with it has no arguments object and
    # no tool name a parser could read (chat.go line 272 passes the key twice).
    request = {"model": "m", "messages": QUESTION, "tools": TOOLS}
    plain = localai_chat(mutate(lambda d: None), request)["grammar"]
    broken = localai_chat(with_function(function_name_key=key), request)["grammar"]
    assert grammar_alternatives(plain) == {"get_weather", "get_time", "answer"}
    assert grammar_alternatives(broken) == set()
    assert '\\"arguments\\"' in plain and '\\"arguments\\"' not in broken
