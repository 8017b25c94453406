"""benchmarks/bench_endpoint.py: statistics and aggregate math (no server), and the CLI run
for real against a llama.cpp server on a tiny generated GGUF (``llama_server`` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_endpoint import (
    cost_lines,
    format_table,
    hourly_usd_from_env,
    to_json,
    ttft_line,
    usd_per_million_tokens,
)
from benchmarks.endpoint_requests import (
    METRICS,
    BenchmarkResult,
    RequestSample,
    percentile,
    summarize,
)
from tests.support.ports import free_port
from tests.support.stub_openai import StubServer

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- no server


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4, 5], 50, 3.0),
        ([10], 95, 10.0),
        ([5, 1, 4, 2, 3], 0, 1.0),
        ([5, 1, 4, 2, 3], 100, 5.0),
        (list(range(1, 101)), 95, 95.05),
        ([100, 200], 95, 195.0),
    ],
)
def test_percentile_interpolates_linearly_between_ranks(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_matches_numpy_linear_method():
    np = pytest.importorskip("numpy")
    values = [0.3, 12.0, 7.5, 7.5, 1.25, 99.0, 42.0]
    for q in (0, 5, 25, 50, 90, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_rejects_empty_input_and_bad_q():
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_summarize_ignores_missing_values_and_reports_none_when_empty():
    assert summarize([None, 2.0, None, 4.0]) == {
        "p50": 3.0,
        "p95": pytest.approx(3.9),
        "mean": 3.0,
        "min": 2.0,
        "max": 4.0,
        "n": 2,
    }
    assert summarize([None])["p50"] is None


def _fake_result() -> BenchmarkResult:
    """Three requests with made-up timestamps (seconds) at concurrency 2 over 1 s of wall time.

    a: usage says 4 tokens; content at 0.1 .. 0.4; ends at 0.5.
    b: no usage, so its 2 content chunks count as 2 tokens; content at 0.3, 0.5; ends 0.6.
    c: failed.
    """
    a = RequestSample(start=0.0, end=0.5, content_times=[0.1, 0.2, 0.3, 0.4], usage_tokens=4)
    b = RequestSample(start=0.0, end=0.6, content_times=[0.3, 0.5])
    c = RequestSample(start=0.5, end=0.55, error="APIConnectionError: refused")
    return BenchmarkResult(concurrency=2, samples=[a, b, c], wall_s=1.0)


def test_per_request_metrics_from_fake_timestamps():
    a, b, c = _fake_result().samples
    assert a.ttft_ms == pytest.approx(100.0)
    assert a.itl_ms == pytest.approx(100.0)
    assert a.e2e_ms == pytest.approx(500.0)
    assert a.tokens_per_s == pytest.approx(10.0)  # 3 tokens after the first, in 0.3 s
    assert a.e2e_tokens_per_s == pytest.approx(8.0)
    assert (a.token_source, b.token_source) == ("usage", "chunks")
    assert b.output_tokens == 2
    assert b.ttft_ms == pytest.approx(300.0)
    assert b.itl_ms == pytest.approx(200.0)
    assert b.tokens_per_s == pytest.approx(5.0)
    assert not c.ok
    assert (c.ttft_ms, c.e2e_ms, c.tokens_per_s) == (None, None, None)


def test_single_chunk_request_has_ttft_but_no_decode_rate():
    sample = RequestSample(start=1.0, end=1.3, content_times=[1.2], usage_tokens=1)
    assert sample.ttft_ms == pytest.approx(200.0)
    assert sample.itl_ms is None
    assert sample.tokens_per_s is None


def test_aggregate_counts_only_successful_tokens_over_wall_time():
    result = _fake_result()
    assert (result.requests, result.errors) == (3, 1)
    assert result.output_tokens == 6
    assert result.aggregate_tokens_per_s == pytest.approx(6.0)
    assert result.token_count_source == "mixed"
    assert result.first_error == "APIConnectionError: refused"
    ttft = result.metric("ttft_ms")
    assert ttft["p50"] == pytest.approx(200.0)
    assert ttft["p95"] == pytest.approx(290.0)
    assert ttft["mean"] == pytest.approx(200.0)
    assert result.metric("tokens_per_s")["p50"] == pytest.approx(7.5)


def test_dollars_per_million_tokens_is_the_hour_over_the_tokens_an_hour():
    # 6 tokens in 1 s: 21,600 tokens an hour; at $0.81/h that is 0.81 / 21,600 x 10^6 = $37.50.
    result = _fake_result()
    assert usd_per_million_tokens(result, 0.81) == pytest.approx(37.5)
    assert usd_per_million_tokens(result, 0.0) == 0.0
    assert cost_lines([result], 0.81) == (
        "c=2: $37.5000 per million output tokens at $0.81/h (6.0 tok/s measured)\n"
    )
    empty = BenchmarkResult(concurrency=2, samples=[], wall_s=1.0)
    assert usd_per_million_tokens(empty, 0.81) is None
    assert cost_lines([empty], 0.81).startswith("c=2: no tokens per million")


def test_the_hourly_price_is_read_from_the_stacks_exported_outputs():
    assert hourly_usd_from_env({"hourlyCostUsd": "0.8048"}) == 0.8048
    assert hourly_usd_from_env({"hourlyCostUsdAtMinSize": "0.8273"}) == 0.8273
    assert hourly_usd_from_env({"hourlyCostUsd": "0.2", "hourlyCostUsdAtMinSize": "9"}) == 0.2
    assert hourly_usd_from_env({}) is None
    with pytest.raises(SystemExit, match="hourlyCostUsd='abc' is not a price"):
        hourly_usd_from_env({"hourlyCostUsd": "abc"})


def test_json_for_a_single_level_has_run_fields_at_top_level_and_under_runs():
    data = to_json([_fake_result()], {"model": "m"}, target_ms=250.0, stat="p50")
    for key in (*METRICS, "aggregate_tokens_per_s", "requests", "errors", "concurrency"):
        assert key in data
        assert key in data["runs"][0]
    assert data["ttft_target_ms"] == 250.0
    assert data["pass"] is True  # p50 200 ms < 250 ms
    json.dumps(data)  # serialisable


def test_ttft_verdict_uses_the_chosen_statistic():
    result = _fake_result()
    assert result.ttft_verdict(250.0, "p50") is True
    assert result.ttft_verdict(250.0, "p95") is False
    line = ttft_line([result], 250.0, "p95")
    assert line.startswith("FAIL: TTFT p95 < 250 ms")
    assert "c=2: FAIL (290.0 ms)" in line


def test_table_lists_every_metric_and_the_aggregate():
    table = format_table([_fake_result()])
    for name in METRICS:
        assert name in table
    assert "aggregate 6.0 tok/s" in table
    assert "1 errors" in table


def _run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_endpoint", "--no-progress", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_unreachable_endpoint_fails_every_request_and_exits_non_zero():
    port = free_port()  # nothing listens there
    proc = _run_cli(
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--model",
        "m",
        "--requests",
        "2",
        "--warmup",
        "0",
        env={"OPENAI_API_KEY": "k"},
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "error: all 2 requests failed; first error: APIConnectionError" in proc.stderr


def test_missing_endpoint_is_a_usage_error():
    proc = _run_cli("--model", "m", env={"OPENAI_API_KEY": "k"}, timeout=60)
    assert proc.returncode == 2
    assert "OPENAI_BASE_URL" in proc.stderr


# --------------------------------------------------------------------------- wire formats


def _sse_responder(*, reject_stream_options: bool):
    """OpenAI-style SSE: role chunk, three content chunks ("a b" each: 2 tokens), and, when
    the request asked for it, the final usage chunk with empty ``choices`` as the hosted
    API sends it. With ``reject_stream_options``, answer such a request 400 as servers
    that predate the option do."""

    def chunk(choices: list, usage: dict | None = None) -> bytes:
        payload = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "stub",
            "choices": choices,
            "usage": usage,
        }
        return f"data: {json.dumps(payload)}\n\n".encode()

    def respond(handler) -> None:
        body = handler.stub.requests[-1]["body"]
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if wants_usage and reject_stream_options:
            data = json.dumps(
                {"error": {"message": "Unrecognized request argument supplied: stream_options"}}
            ).encode()
            handler.send_response(400)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        handler.wfile.write(chunk([{"index": 0, "delta": {"role": "assistant"}}]))
        for _ in range(3):
            handler.wfile.write(chunk([{"index": 0, "delta": {"content": "a b "}}]))
            handler.wfile.flush()
        handler.wfile.write(chunk([{"index": 0, "delta": {}, "finish_reason": "length"}]))
        if wants_usage:
            usage = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
            handler.wfile.write(chunk([], usage))
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()

    return respond


def test_server_usage_counts_tokens_when_the_server_reports_it():
    with StubServer(_sse_responder(reject_stream_options=False)) as stub:
        proc = _run_cli(
            "--base-url", stub.base_url, "--model", "stub", "--requests", "2", "--json",
            env={"OPENAI_API_KEY": "k"}, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["token_count_source"] == "usage"
    assert data["output_tokens"] == 12  # 6 per request from usage, not 3 chunks
    assert data["prompt_tokens"] == 9
    assert all(r["body"]["stream_options"] == {"include_usage": True} for r in stub.requests)


def test_server_rejecting_stream_options_falls_back_to_counting_chunks():
    with StubServer(_sse_responder(reject_stream_options=True)) as stub:
        proc = _run_cli(
            "--base-url", stub.base_url, "--model", "stub", "--requests", "3", "--json",
            env={"OPENAI_API_KEY": "k"}, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["requests"], data["errors"]) == (3, 0)
    assert data["token_count_source"] == "chunks"
    assert data["output_tokens"] == 9  # 3 content chunks per request
    asked = ["stream_options" in r["body"] for r in stub.requests]
    assert asked[0] is True  # tried once (the warmup) ...
    assert not any(asked[2:])  # ... then never again


# --------------------------------------------------------------------------- real server


def _server_env(server) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": server.api_key,
        "OPENAI_MODEL": server.model,
    }


def _assert_run_is_consistent(run: dict, requests: int, concurrency: int) -> None:
    assert run["concurrency"] == concurrency
    assert run["requests"] == requests
    assert run["errors"] == 0, run["first_error"]
    for name in ("ttft_ms", "itl_ms", "e2e_ms", "tokens_per_s"):
        stats = run[name]
        assert set(stats) >= {"p50", "p95", "mean"}, name
        assert stats["p50"] is not None, name
        assert stats["p50"] <= stats["p95"], name
        assert stats["p50"] > 0, name
    assert run["ttft_ms"]["p50"] <= run["e2e_ms"]["p50"]
    assert run["aggregate_tokens_per_s"] > 0
    assert run["output_tokens"] >= requests


@pytest.mark.slow
def test_cli_json_against_a_real_server(llama_server):
    proc = _run_cli(
        "--requests", "4", "--max-tokens", "16", "--json", env=_server_env(llama_server)
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    _assert_run_is_consistent(data, requests=4, concurrency=1)
    assert data["model"] == llama_server.model
    assert data["token_count_source"] in {"usage", "chunks"}
    assert len(data["runs"]) == 1
    assert "TTFT p95 < 500 ms" in proc.stderr


@pytest.mark.slow
def test_cli_sweep_reports_one_run_per_level_and_plots(llama_server, tmp_path):
    """Concurrency 2 needs the server to queue the second request rather than abort the
    running stream: tools.llama_server always passes ``--interrupt_requests False``."""
    png = tmp_path / "bench.png"
    proc = _run_cli(
        "--requests",
        "4",
        "--max-tokens",
        "12",
        "--concurrency-sweep",
        "1,2",
        "--json",
        "--plot",
        str(png),
        env=_server_env(llama_server),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [run["concurrency"] for run in data["runs"]] == [1, 2]
    for run in data["runs"]:
        _assert_run_is_consistent(run, requests=4, concurrency=run["concurrency"])
    content = png.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 10_000


@pytest.mark.slow
def test_cli_prices_the_measured_tokens(llama_server):
    proc = _run_cli(
        "--requests", "2", "--max-tokens", "8", "--json", "--hourly-usd", "0.5",
        env=_server_env(llama_server),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["hourly_usd"] == 0.5
    expected = 0.5 / (data["aggregate_tokens_per_s"] * 3600) * 1e6
    assert data["usd_per_million_output_tokens"] == pytest.approx(expected)
    assert "per million output tokens at $0.5/h" in proc.stderr
    env = {**_server_env(llama_server), "hourlyCostUsd": "0.25"}
    proc = _run_cli("--requests", "1", "--max-tokens", "4", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "per million output tokens at $0.25/h" in proc.stdout
    bad = _run_cli("--requests", "1", "--hourly-usd", "-1", env=env)
    assert bad.returncode == 2
    assert "'-1' must be a finite number >= 0" in bad.stderr


@pytest.mark.slow
def test_cli_human_table_against_a_real_server(llama_server):
    proc = _run_cli("--requests", "2", "--max-tokens", "8", env=_server_env(llama_server))
    assert proc.returncode == 0, proc.stderr
    assert "ttft_ms" in proc.stdout
    assert "aggregate" in proc.stdout
    assert "TTFT p95 < 500 ms" in proc.stdout


@pytest.mark.slow
def test_wrong_api_key_fails_every_request_with_a_clear_message(llama_server):
    env = _server_env(llama_server)
    env["OPENAI_API_KEY"] = "not-the-key"
    proc = _run_cli("--requests", "3", "--max-tokens", "8", "--json", env=env)
    assert proc.returncode == 1
    assert "error: all 3 requests failed; first error: AuthenticationError" in proc.stderr
    data = json.loads(proc.stdout)
    assert (data["requests"], data["errors"]) == (3, 3)


# --- the chat workload (issue 12, item 5) ---------------------------------------------------


@pytest.mark.slow
def test_cli_chat_workload_reports_first_and_follow_up_turns(llama_server):
    proc = _run_cli(
        "--workload", "chat", "--conversations", "2", "--turns", "3", "--system-tokens", "40",
        "--max-tokens", "4", "--json", env=_server_env(llama_server),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["workload"] == "chat" and data["system_tokens"] == 40
    assert data["first_turn"]["requests"] == 2
    assert data["follow_up"]["requests"] == 4
    for key in ("first_turn", "follow_up"):
        assert data[key]["errors"] == 0
        assert data[key]["ttft_ms"]["p50"] > 0
    assert "follow-up" in proc.stderr


def _sse_reply(text: str):
    def respond(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        chunk = {
            "id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }  # fmt: skip
        handler.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

    return respond


def test_every_turn_carries_the_conversation_and_eviction_interleaves_requests() -> None:
    from benchmarks.chat_workload import run_chat
    from benchmarks.endpoint_requests import make_client_factory

    with StubServer(_sse_reply("Fine.")) as stub:
        result = run_chat(
            make_client_factory(stub.base_url, "k", 10), "m",
            conversations=1, turns=3, system_tokens=20, evict_between_turns=True,
        )  # fmt: skip
    bodies = [r["body"] for r in stub.requests]
    conversation = [b for b in bodies if b["messages"][0]["role"] == "system"]
    evictions = [b for b in bodies if b["messages"][0]["role"] == "user"]
    assert [[m["role"] for m in b["messages"]] for b in conversation] == [
        ["system", "user"],
        ["system", "user", "assistant", "user"],
        ["system", "user", "assistant", "user", "assistant", "user"],
    ]
    assert conversation[1]["messages"][2]["content"] == "Fine.", "the reply is carried on"
    assert len(conversation[0]["messages"][0]["content"].split()) == 20
    assert len(evictions) == 2, "one unrelated request before each follow-up turn"
    assert (result.first_turn.requests, result.follow_up.requests) == (1, 2)
