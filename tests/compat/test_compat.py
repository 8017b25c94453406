"""The compatibility suite (tests/compat/suite.py) against the LocalAI v2.24.0 stand-in.

The stand-in answers as LocalAI does (tests/support/localai_standin: LocalAI's own Go code
around llama.cpp), serving the shipped Qwen2.5 model file as the package renders it. Every
row must be ``ok`` or one of the deviations the README's "OpenAI features" table documents,
and the rows the package promises must be ``ok``. The table is printed into the test log.
"""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pytest

from components.models.catalog import load_catalog, render_model_yaml
from components.program import default_max_tokens
from tests.compat.suite import CASES, DEVIATION, FAIL, OK, Context, run_suite, table
from tests.support.localai_standin import (
    ChatModel,
    LocalAIStandInServer,
    StandIn,
    synthetic_llama,
)

CONTEXT = 1024
KEY = "sk-compat-0123456789abcdef"
README = Path(__file__).resolve().parents[2] / "README.md"
# What LocalAI v2.24.0 does instead of OpenAI, as the README documents it.
DOCUMENTED_DEVIATIONS = {
    "max_tokens",  # finish_reason is always "stop"
    "max_completion_tokens",  # ignored
    "tools, tool_choice required",  # acts as auto
    "tools, tool_choice none",  # acts as auto
    "embeddings, dimensions",  # ignored
    "unknown model",  # 500, not 404
    "unknown model, streamed",  # 200 and an empty stream
    "prompt over the context",  # cut from the front, no error
}
# Deviations that depend on what the model samples: ok or documented, either is right.
EITHER = {"tools, tool_choice required", "tools, tool_choice none", "seed"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory):
    model = load_catalog()["qwen2.5-0.5b-instruct"]
    rendered = render_model_yaml(model, gpu_layers=0, threads=1, context_size=CONTEXT,
                                 max_tokens=default_max_tokens(CONTEXT, 1))  # fmt: skip
    gguf = tmp_path_factory.mktemp("compat") / "synthetic.gguf"
    standin = StandIn(
        chat_models={model.name: ChatModel(model.name, rendered,
                                           synthetic_llama(gguf, n_ctx=CONTEXT))},
        embedding_models={"nomic-embed-text-v1.5": synthetic_llama(gguf, n_ctx=512,
                                                                   embedding=True)},
        api_key=KEY,
    )  # fmt: skip
    with LocalAIStandInServer(standin) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)
        outcome = run_suite(Context(client, model.name, "nomic-embed-text-v1.5", CONTEXT))
    return outcome


def test_the_table_is_printed_and_nothing_fails(results, capsys: pytest.CaptureFixture) -> None:
    with capsys.disabled():
        print("\n" + table(results))
    failed = [(c.call, o.detail) for c, o in results if o.verdict == FAIL]
    assert failed == []
    assert [c.call for c, _o in results] == [c.call for c in CASES]


def test_every_deviation_is_a_documented_one(results) -> None:
    deviations = {c.call for c, o in results if o.verdict == DEVIATION}
    assert deviations <= DOCUMENTED_DEVIATIONS | {"seed"}
    assert deviations >= DOCUMENTED_DEVIATIONS - EITHER, "a documented deviation went away"


def test_what_the_package_promises_is_as_openai(results) -> None:
    verdicts = {c.call: o.verdict for c, o in results}
    promised = {c.call for c in CASES} - DOCUMENTED_DEVIATIONS - EITHER
    assert {call: verdicts[call] for call in promised} == dict.fromkeys(promised, OK)


def test_the_readme_table_names_each_documented_deviation() -> None:
    text = README.read_text()
    table_text = text[text.index("### OpenAI features, one by one") :]
    for needle in ("`tool_choice: \"none\"`", "`tool_choice: \"required\"`",
                   "`max_completion_tokens`", "`finish_reason: \"length\"`",
                   "a prompt longer than the slot's context", "unknown model",
                   "the `dimensions` parameter is not read"):  # fmt: skip
        assert needle in table_text, needle
    assert re.search(r"\| wrong key \| HTTP 401 \|", table_text)
