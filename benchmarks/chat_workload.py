"""The chat workload of bench_endpoint: conversations, not single prompts.

Each conversation starts with a system prompt of about ``system_tokens`` words (a unique
tag first, so two conversations share no prefix), then ``turns`` user turns; every
request carries the whole conversation so far, as an app does. Time to first token is
reported separately for first turns and follow-up turns. With prefix reuse (LocalAI's
``prompt_cache_all``, llama.cpp's ``cache_prompt``) a follow-up turn's TTFT depends on its
new tokens, not on the conversation's length.

``evict_between_turns`` sends one unrelated short request between turns, so the server's
slot no longer holds the conversation: every turn is then read from scratch, which is
what a server without prefix reuse does (llama-cpp-python's server has no switch for it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from benchmarks.endpoint_requests import (
    BenchmarkResult,
    ClientFactory,
    RequestSample,
    _fmt,
    _stream_once,
    _UsageSupport,
)

FILLER = [
    "You",
    "are",
    "a",
    "careful",
    "assistant",
    "for",
    "an",
    "operations",
    "team.",
    "You",
    "answer",
    "briefly",
    "and",
    "you",
    "name",
    "the",
    "numbers",
    "you",
    "use.",
]
FOLLOW_UPS = ("And in one word?", "Why?", "Give one example.", "Anything else?")


def system_prompt(words: int) -> str:
    """About ``words`` tokens: a unique tag, then filler words."""
    body = [FILLER[i % len(FILLER)] for i in range(max(words - 1, 0))]
    return f"[{secrets.token_hex(4)}] " + " ".join(body)


@dataclass
class ChatResult:
    first_turn: BenchmarkResult
    follow_up: BenchmarkResult
    conversations: int
    turns: int
    system_tokens: int
    evicted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": "chat",
            "conversations": self.conversations,
            "turns": self.turns,
            "system_tokens": self.system_tokens,
            "evict_between_turns": self.evicted,
            "first_turn": self.first_turn.to_dict(),
            "follow_up": self.follow_up.to_dict(),
        }


def run_chat(
    client_factory: ClientFactory,
    model: str,
    *,
    conversations: int = 3,
    turns: int = 3,
    system_tokens: int = 300,
    max_tokens: int = 32,
    first_question: str = "In two sentences, explain what a load balancer does.",
    evict_between_turns: bool = False,
    extra: dict[str, Any] | None = None,
) -> ChatResult:
    if conversations < 1 or turns < 2 or system_tokens < 0:
        raise ValueError("need conversations >= 1, turns >= 2 and system_tokens >= 0")
    client = client_factory()
    usage = _UsageSupport()
    extra = dict(extra or {})
    first: list[RequestSample] = []
    later: list[RequestSample] = []
    wall = {"first": 0.0, "later": 0.0}
    for _ in range(conversations):
        messages = [{"role": "system", "content": system_prompt(system_tokens)}]
        for turn in range(turns):
            question = first_question if turn == 0 else FOLLOW_UPS[(turn - 1) % len(FOLLOW_UPS)]
            messages.append({"role": "user", "content": question})
            if turn > 0 and evict_between_turns:
                _stream_once(client, model, "Say OK.", 1, usage, extra, True)
            sample = _stream_once(client, model, "", max_tokens, usage, extra, False, messages)
            (first if turn == 0 else later).append(sample)
            wall["first" if turn == 0 else "later"] += sample.end - sample.start
            messages.append({"role": "assistant", "content": sample.text or "OK."})
    return ChatResult(
        BenchmarkResult(concurrency=1, samples=first, wall_s=wall["first"]),
        BenchmarkResult(concurrency=1, samples=later, wall_s=wall["later"]),
        conversations,
        turns,
        system_tokens,
        evict_between_turns,
    )


def format_chat(result: ChatResult) -> str:
    def line(label: str, run: BenchmarkResult) -> str:
        ttft = run.metric("ttft_ms")
        return (
            f"{label:<10} {run.requests:>4} requests  TTFT p50 {_fmt(ttft['p50'], 0)} ms  "
            f"mean {_fmt(ttft['mean'], 0)} ms  (errors: {run.errors})"
        )

    head = (
        f"chat workload: {result.conversations} conversations x {result.turns} turns, "
        f"system prompt ~{result.system_tokens} tokens"
        + (", evicting between turns (no prefix reuse)" if result.evicted else "")
    )
    return "\n".join([head, line("first", result.first_turn), line("follow-up", result.follow_up)])
