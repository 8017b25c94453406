"""One streamed request against an OpenAI-compatible endpoint and what it measured (time to
first token, inter-token latency, tokens per second, usage), and the statistics over many.

The shared ground of the benchmarks: ``bench_endpoint`` (the CLI and the concurrency
sweep) and ``chat_workload`` (multi-turn conversations) both build on it, and it imports
neither, so the two stay free of a cycle.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT_S = 300.0

# Metrics summarised per concurrency level, in report order.
METRICS = ("ttft_ms", "itl_ms", "e2e_ms", "tokens_per_s", "e2e_tokens_per_s")


# --------------------------------------------------------------------------- statistics


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks.

    Same definition as ``numpy.percentile(values, q)`` (method "linear"):
    ``percentile([1, 2, 3, 4], 50) == 2.5``; ``percentile([10], 95) == 10``.
    """
    data = sorted(float(v) for v in values)
    if not data:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return data[low]
    return data[low] + (data[high] - data[low]) * (rank - low)


def summarize(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """p50/p95/mean/min/max and n of the values that are not None (all None when empty)."""
    data = [float(v) for v in values if v is not None]
    if not data:
        return {"p50": None, "p95": None, "mean": None, "min": None, "max": None, "n": 0}
    return {
        "p50": percentile(data, 50),
        "p95": percentile(data, 95),
        "mean": sum(data) / len(data),
        "min": min(data),
        "max": max(data),
        "n": len(data),
    }


# --------------------------------------------------------------------------- samples


@dataclass
class RequestSample:
    """One request's timestamps (``time.perf_counter`` seconds) and token counts.

    ``content_times`` holds the arrival time of every chunk that carried content.
    ``usage_tokens`` is the server-reported completion token count, None if absent.
    """

    start: float
    end: float
    content_times: list[float] = field(default_factory=list)
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    error: str | None = None
    text: str = ""
    """The streamed content (the chat workload appends it to the conversation)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def token_source(self) -> str:
        return "usage" if self.usage_tokens is not None else "chunks"

    @property
    def output_tokens(self) -> int:
        if self.usage_tokens is not None:
            return self.usage_tokens
        return len(self.content_times)

    @property
    def ttft_ms(self) -> float | None:
        if not self.ok or not self.content_times:
            return None
        return (self.content_times[0] - self.start) * 1000.0

    @property
    def itl_ms(self) -> float | None:
        """Mean gap between consecutive content chunks (None with fewer than two)."""
        if not self.ok or len(self.content_times) < 2:
            return None
        span = self.content_times[-1] - self.content_times[0]
        return span / (len(self.content_times) - 1) * 1000.0

    @property
    def e2e_ms(self) -> float | None:
        return (self.end - self.start) * 1000.0 if self.ok else None

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate after the first token: (tokens - 1) / (last - first content chunk)."""
        if not self.ok or len(self.content_times) < 2 or self.output_tokens < 2:
            return None
        span = self.content_times[-1] - self.content_times[0]
        if span <= 0:
            return None
        return (self.output_tokens - 1) / span

    @property
    def e2e_tokens_per_s(self) -> float | None:
        if not self.ok or self.output_tokens < 1 or self.end <= self.start:
            return None
        return self.output_tokens / (self.end - self.start)


# --------------------------------------------------------------------------- results


@dataclass
class BenchmarkResult:
    """One concurrency level: per-request samples plus the aggregate figures."""

    concurrency: int
    samples: list[RequestSample]
    wall_s: float

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def ok_samples(self) -> list[RequestSample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    @property
    def first_error(self) -> str | None:
        return next((s.error for s in self.samples if not s.ok), None)

    @property
    def output_tokens(self) -> int:
        return sum(s.output_tokens for s in self.ok_samples)

    @property
    def aggregate_tokens_per_s(self) -> float | None:
        """All output tokens of successful requests / wall time of the level."""
        if self.wall_s <= 0 or not self.ok_samples:
            return None
        return self.output_tokens / self.wall_s

    @property
    def token_count_source(self) -> str:
        sources = {s.token_source for s in self.ok_samples}
        if not sources:
            return "none"
        return sources.pop() if len(sources) == 1 else "mixed"

    def metric(self, name: str) -> dict[str, float | int | None]:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        return summarize(getattr(s, name) for s in self.ok_samples)

    def ttft_verdict(self, target_ms: float, stat: str = "p95") -> bool | None:
        """True when the TTFT statistic is below target; None when there is no data."""
        value = self.metric("ttft_ms")[stat]
        return None if value is None else value < target_ms

    def to_dict(self) -> dict[str, Any]:
        prompt_tokens = [s.prompt_tokens for s in self.ok_samples if s.prompt_tokens is not None]
        data: dict[str, Any] = {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "wall_s": self.wall_s,
            "output_tokens": self.output_tokens,
            "aggregate_tokens_per_s": self.aggregate_tokens_per_s,
            "token_count_source": self.token_count_source,
            "prompt_tokens": summarize(prompt_tokens)["mean"],
        }
        for name in METRICS:
            data[name] = self.metric(name)
        data["first_error"] = self.first_error
        return data


# --------------------------------------------------------------------------- client side


ClientFactory = Callable[[], Any]


def make_client_factory(
    base_url: str, api_key: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> ClientFactory:
    """A factory of OpenAI clients without retries (a retry would hide an error's latency)."""

    def factory() -> Any:
        from openai import OpenAI

        return OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)

    return factory


class _UsageSupport:
    """Whether the server accepts ``stream_options``; learnt from the first 400 it returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted = True

    def reject(self) -> None:
        with self._lock:
            self.accepted = False


def _is_stream_options_rejection(exc: Exception) -> bool:
    from openai import BadRequestError, UnprocessableEntityError

    return isinstance(exc, (BadRequestError, UnprocessableEntityError)) and (
        "stream_options" in str(exc) or "include_usage" in str(exc)
    )


def tag_prompt(prompt: str) -> str:
    """``prompt`` behind a random 8-hex-digit tag, so no two requests share a prefix."""
    return f"[{secrets.token_hex(4)}] {prompt}"


def _stream_once(
    client: Any,
    model: str,
    prompt: str,
    max_tokens: int,
    usage: _UsageSupport,
    extra: dict[str, Any],
    unique: bool,
    messages: list[dict[str, str]] | None = None,
) -> RequestSample:
    """One streamed chat completion: ``prompt`` as the one user message, or ``messages``."""
    content = tag_prompt(prompt) if unique else prompt
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages if messages is not None else [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": True,
        **extra,
    }
    if usage.accepted:
        kwargs["stream_options"] = {"include_usage": True}
    start = time.perf_counter()
    try:
        stream = client.chat.completions.create(**kwargs)
    except Exception as exc:
        if "stream_options" in kwargs and _is_stream_options_rejection(exc):
            usage.reject()
            return _stream_once(client, model, prompt, max_tokens, usage, extra, unique, messages)
        return RequestSample(start=start, end=time.perf_counter(), error=_describe(exc))
    sample = RequestSample(start=start, end=start)
    try:
        for chunk in stream:
            now = time.perf_counter()
            if getattr(chunk, "usage", None) is not None:
                sample.usage_tokens = chunk.usage.completion_tokens
                sample.prompt_tokens = chunk.usage.prompt_tokens
            for choice in chunk.choices or ():
                delta = choice.delta
                if delta is not None and delta.content:
                    sample.content_times.append(now)
                    sample.text += delta.content
                    break
    except Exception as exc:
        sample.error = _describe(exc)
    finally:
        sample.end = time.perf_counter()
        close = getattr(stream, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # the outcome is already recorded
                close()
    if sample.ok and not sample.content_times:
        sample.error = "empty response: the stream carried no content"
    return sample


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
