"""Latency and throughput benchmark for any OpenAI-compatible chat endpoint.

Streams chat completions with the OpenAI SDK and measures, per request:

- ``ttft_ms``: time to first token, from sending the request to the first chunk that carries
  content (role-only and empty chunks do not count);
- ``itl_ms``: inter-token latency, the mean gap between consecutive content chunks;
- ``e2e_ms``: end-to-end latency, until the stream is fully consumed;
- ``tokens_per_s``: decode rate after the first token, ``(tokens - 1) / (last - first chunk)``;
- ``e2e_tokens_per_s``: overall rate, ``tokens / e2e``.

Output tokens come from the server's ``usage`` (requested with
``stream_options={"include_usage": True}``); when the server sends no usage, each content
chunk counts as one token. The report says which (``token_count_source``).

``--requests N`` requests run closed-loop at ``--concurrency C`` (C worker threads, each
sending its next request when the previous one ends). ``--concurrency-sweep 1,2,4`` repeats
that for each level. Each level reports p50/p95/mean of every metric, the aggregate
throughput (all output tokens / wall time of the level) and the error count. A failing
request is counted, not fatal; if every request fails the exit status is 1 and the first
error is printed.

Each request's prompt starts with a random tag (``[3fa9c2d1] ``) unless ``--same-prompt``:
llama.cpp servers reuse the KV cache of a matching prompt prefix, so identical prompts
would skip most of the prefill and make TTFT look better than users will see it.

The TTFT target is checked against p95 by default (``--ttft-stat p50`` to relax it): p95 is
what a user of the endpoint sees "most of the time", and p50 hides queueing at high
concurrency.

Examples::

    export $(pulumi stack output --shell --show-secrets)
    python -m benchmarks.bench_endpoint --requests 20 --concurrency-sweep 1,2,4 \\
        --plot bench.png
    python -m benchmarks.bench_endpoint --json > bench.json

``--hourly-usd X`` adds what the run's output tokens cost at X dollars an hour of the
host: ``X / (aggregate tokens/s x 3600) x 10^6`` dollars per million, per level (the
measured counterpart of the stack's ``usdPerMillionOutputTokens``, which assumes every
parallel slot busy: compare at ``--concurrency`` = ``parallelRequests``). Without the flag
it is read from the stack's outputs in the environment (``hourlyCostUsd`` on a single VM,
``hourlyCostUsdAtMinSize`` on a fleet), after ``export $(pulumi stack output --shell ...)``.

Importable: ``run_benchmark(...) -> BenchmarkResult`` and ``percentile(values, q)`` are
reused by ``benchmarks/calibrate_cpu.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from benchmarks.chat_workload import format_chat, run_chat
from benchmarks.endpoint_requests import (
    DEFAULT_TIMEOUT_S,
    METRICS,
    BenchmarkResult,
    ClientFactory,
    RequestSample,
    _describe,
    _fmt,
    _stream_once,
    _UsageSupport,
    make_client_factory,
)

DEFAULT_PROMPT = "In two sentences, explain what a load balancer does."
DEFAULT_MAX_TOKENS = 64
DEFAULT_TTFT_TARGET_MS = 500.0


EXIT_ALL_FAILED = 1
EXIT_TARGET_MISSED = 3


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="req", file=sys.stderr, disable=not enabled)


def run_benchmark(
    base_url: str | None = None,
    api_key: str | None = None,
    model: str = "",
    requests: int = 10,
    concurrency: int = 1,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    prompt: str = DEFAULT_PROMPT,
    warmup: int = 1,
    client_factory: ClientFactory | None = None,
    extra_body: dict[str, Any] | None = None,
    temperature: float | None = None,
    unique_prompts: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> BenchmarkResult:
    """Run ``warmup`` uncounted requests, then ``requests`` requests at ``concurrency``.

    Give either ``client_factory`` (returns an OpenAI client) or ``base_url`` + ``api_key``.
    ``unique_prompts`` puts a random tag in front of every prompt (:func:`tag_prompt`).
    Request errors are recorded in the samples; this function raises only on bad arguments.
    """
    if requests < 1:
        raise ValueError(f"requests must be >= 1, got {requests}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if not model:
        raise ValueError("model is required")
    if client_factory is None:
        if not base_url:
            raise ValueError("give base_url (and api_key) or client_factory")
        client_factory = make_client_factory(base_url, api_key or "", timeout_s)
    client = client_factory()
    extra: dict[str, Any] = {}
    if temperature is not None:
        extra["temperature"] = temperature
    if extra_body:
        extra["extra_body"] = dict(extra_body)
    usage = _UsageSupport()

    for _ in range(warmup):
        sample = _stream_once(client, model, prompt, max_tokens, usage, extra, unique_prompts)
        if not sample.ok:
            print(f"warmup request failed: {sample.error}", file=sys.stderr)

    samples: list[RequestSample] = []
    with (
        _progress(requests, f"concurrency {concurrency}", progress) as bar,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        wall_start = time.perf_counter()
        futures = [
            pool.submit(
                _stream_once, client, model, prompt, max_tokens, usage, extra, unique_prompts
            )
            for _ in range(requests)
        ]
        for future in as_completed(futures):
            samples.append(future.result())
            bar.update(1)
        wall_s = time.perf_counter() - wall_start
    samples.sort(key=lambda s: s.start)
    return BenchmarkResult(concurrency=concurrency, samples=samples, wall_s=wall_s)


def run_sweep(levels: Sequence[int], **kwargs: Any) -> list[BenchmarkResult]:
    """``run_benchmark`` per concurrency level; warmup only before the first level."""
    results = []
    warmup = kwargs.pop("warmup", 1)
    for index, level in enumerate(levels):
        results.append(
            run_benchmark(concurrency=level, warmup=warmup if index == 0 else 0, **kwargs)
        )
    return results


def first_model(client_factory: ClientFactory) -> str:
    """The first model the endpoint lists (used when no model is given)."""
    models = list(client_factory().models.list())
    if not models:
        raise RuntimeError("the endpoint lists no models; pass --model")
    return models[0].id


# --------------------------------------------------------------------------- reporting


def format_table(results: Sequence[BenchmarkResult]) -> str:
    """One row per (concurrency, metric) with p50/p95/mean, then totals per level."""
    header = f"{'conc':>4}  {'metric':<17}{'p50':>10}{'p95':>10}{'mean':>10}"
    lines = [header, "-" * len(header)]
    for result in results:
        for name in METRICS:
            stats = result.metric(name)
            lines.append(
                f"{result.concurrency:>4}  {name:<17}{_fmt(stats['p50']):>10}"
                f"{_fmt(stats['p95']):>10}{_fmt(stats['mean']):>10}"
            )
        lines.append(
            f"{result.concurrency:>4}  aggregate {_fmt(result.aggregate_tokens_per_s)} tok/s, "
            f"{result.output_tokens} tokens in {result.wall_s:.2f} s, "
            f"{result.requests} requests, {result.errors} errors, "
            f"tokens counted from {result.token_count_source}"
        )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def usd_per_million_tokens(result: BenchmarkResult, hourly_usd: float) -> float | None:
    """What the level's output tokens cost at ``hourly_usd``: hour / tokens an hour."""
    rate = result.aggregate_tokens_per_s
    if not rate:
        return None
    return hourly_usd / (rate * 3600.0) * 1e6


def cost_lines(results: Sequence[BenchmarkResult], hourly_usd: float) -> str:
    lines = []
    for result in results:
        usd = usd_per_million_tokens(result, hourly_usd)
        figure = "no tokens" if usd is None else f"${usd:.4f}"
        lines.append(
            f"c={result.concurrency}: {figure} per million output tokens at ${hourly_usd:g}/h "
            f"({_fmt(result.aggregate_tokens_per_s)} tok/s measured)"
        )
    return "\n".join(lines) + "\n"


def hourly_usd_from_env(environ: Mapping[str, str]) -> float | None:
    """The stack's hourly price from its exported outputs, if they are in the environment."""
    for name in ("hourlyCostUsd", "hourlyCostUsdAtMinSize"):
        if environ.get(name):
            try:
                return _non_negative_float(environ[name])
            except argparse.ArgumentTypeError:
                raise SystemExit(f"error: {name}={environ[name]!r} is not a price") from None
    return None


def ttft_line(results: Sequence[BenchmarkResult], target_ms: float, stat: str) -> str:
    parts = []
    overall = True
    for result in results:
        verdict = result.ttft_verdict(target_ms, stat)
        value = result.metric("ttft_ms")[stat]
        word = {True: "PASS", False: "FAIL", None: "NO DATA"}[verdict]
        overall = overall and bool(verdict)
        parts.append(f"c={result.concurrency}: {word} ({_fmt(value)} ms)")
    head = "PASS" if overall else "FAIL"
    return f"{head}: TTFT {stat} < {target_ms:g} ms -- " + "; ".join(parts)


def to_json(
    results: Sequence[BenchmarkResult], meta: dict[str, Any], target_ms: float, stat: str
) -> dict[str, Any]:
    """Meta + ``runs`` (one object per level); a single level is also merged at top level."""
    runs = []
    for result in results:
        run = result.to_dict()
        run["ttft_target"] = {
            "ms": target_ms,
            "stat": stat,
            "pass": result.ttft_verdict(target_ms, stat),
        }
        runs.append(run)
    data: dict[str, Any] = {**meta, "ttft_target_ms": target_ms, "ttft_stat": stat}
    data["pass"] = all(run["ttft_target"]["pass"] for run in runs)
    if len(runs) == 1:
        data.update(runs[0])
    data["runs"] = runs
    return data


def plot(results: Sequence[BenchmarkResult], path: str, target_ms: float, title: str) -> None:
    """Latency (TTFT and e2e p50/p95) and throughput against concurrency, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [r.concurrency for r in results]

    def series(metric: str, stat: str) -> list[float]:
        return [_nan(r.metric(metric)[stat]) for r in results]

    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4.2))
    lat.plot(levels, series("ttft_ms", "p50"), "o-", label="TTFT p50")
    lat.plot(levels, series("ttft_ms", "p95"), "o--", label="TTFT p95")
    lat.plot(levels, series("e2e_ms", "p50"), "s-", label="e2e p50")
    lat.plot(levels, series("e2e_ms", "p95"), "s--", label="e2e p95")
    lat.axhline(target_ms, color="grey", linewidth=0.8, linestyle=":", label="TTFT target")
    lat.set_xlabel("concurrency")
    lat.set_ylabel("latency (ms)")
    lat.set_title("latency")
    lat.legend(fontsize="small")
    thr.plot(
        levels, [_nan(r.aggregate_tokens_per_s) for r in results], "o-", label="aggregate tok/s"
    )
    thr.plot(levels, series("tokens_per_s", "p50"), "s--", label="per-request decode p50")
    thr.set_xlabel("concurrency")
    thr.set_ylabel("output tokens / s")
    thr.set_title("throughput")
    thr.legend(fontsize="small")
    for axis in (lat, thr):
        axis.set_xticks(levels)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


# --------------------------------------------------------------------------- CLI


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,4, got {text!r}"
        ) from None
    if not levels or any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError(f"concurrency levels must be >= 1, got {text!r}")
    return levels


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_endpoint",
        description="Benchmark TTFT, inter-token latency and throughput of an "
        "OpenAI-compatible chat endpoint (streaming).",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL"),
        help="endpoint base URL ending in /v1 (default: $OPENAI_BASE_URL)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key (default: $OPENAI_API_KEY; prefer the variable: argv is visible to "
        "other users of the machine)",
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("OPENAI_MODEL"),
        help="model name (default: $OPENAI_MODEL, else the first model the endpoint lists)",
    )
    parser.add_argument("--requests", type=_positive_int, default=10, help="per level")
    parser.add_argument("--concurrency", type=_positive_int, default=1)
    parser.add_argument(
        "--concurrency-sweep",
        type=_levels,
        default=None,
        metavar="LEVELS",
        help="comma-separated levels, e.g. 1,2,4 (overrides --concurrency)",
    )
    parser.add_argument("--max-tokens", type=_positive_int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument(
        "--same-prompt",
        action="store_true",
        help="send the prompt as is (default: a random tag in front defeats prefix caches)",
    )
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument(
        "--extra-body",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="extra request fields, e.g. '{\"ignore_eos\": true}' for LocalAI",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="uncounted requests before the first level"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per request, s")
    parser.add_argument("--ttft-target-ms", type=float, default=DEFAULT_TTFT_TARGET_MS)
    parser.add_argument(
        "--ttft-stat",
        choices=("p50", "p95"),
        default="p95",
        help="statistic checked against the TTFT target (default p95)",
    )
    parser.add_argument(
        "--fail-on-target",
        action="store_true",
        help=f"exit {EXIT_TARGET_MISSED} when the TTFT target is missed at any level",
    )
    parser.add_argument(
        "--workload",
        choices=("single", "chat"),
        default="single",
        help="single prompts (default), or multi-turn conversations (first vs follow-up TTFT)",
    )
    parser.add_argument("--conversations", type=_positive_int, default=3, help="chat workload")
    parser.add_argument(
        "--turns", type=_positive_int, default=3, help="chat: turns per conversation"
    )
    parser.add_argument(
        "--system-tokens", type=int, default=300, help="chat: system prompt size (words)"
    )
    parser.add_argument(
        "--evict-between-turns",
        action="store_true",
        help="chat: an unrelated request between turns (measures a server without prefix reuse)",
    )
    parser.add_argument(
        "--hourly-usd",
        type=_non_negative_float,
        default=None,
        help="the host's price per hour: report dollars per million output tokens "
        "(default: $hourlyCostUsd or $hourlyCostUsdAtMinSize from the stack's outputs)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON results to stdout")
    parser.add_argument("--plot", metavar="FILE.png", default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if not args.base_url:
        parser.error("no endpoint: pass --base-url or set OPENAI_BASE_URL")
    if not api_key:
        parser.error("no API key: set OPENAI_API_KEY (or pass --api-key)")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")

    factory = make_client_factory(args.base_url, api_key, args.timeout)
    model = args.model
    if not model:
        try:
            model = first_model(factory)
        except Exception as exc:
            print(f"error: cannot list the endpoint's models: {_describe(exc)}", file=sys.stderr)
            return EXIT_ALL_FAILED
    if args.workload == "chat":
        if args.turns < 2:
            parser.error("--turns must be >= 2 for the chat workload")
        chat = run_chat(
            factory,
            model,
            conversations=args.conversations,
            turns=args.turns,
            system_tokens=args.system_tokens,
            max_tokens=args.max_tokens,
            first_question=args.prompt,
            evict_between_turns=args.evict_between_turns,
        )
        if args.json:
            print(
                json.dumps({"base_url": args.base_url, "model": model, **chat.to_dict()}, indent=2)
            )
        print(format_chat(chat), file=sys.stderr if args.json else sys.stdout)
        failed = chat.first_turn.errors + chat.follow_up.errors
        total = chat.first_turn.requests + chat.follow_up.requests
        return EXIT_ALL_FAILED if failed == total else 0
    levels = args.concurrency_sweep or [args.concurrency]
    results = run_sweep(
        levels,
        model=model,
        requests=args.requests,
        max_tokens=args.max_tokens,
        prompt=args.prompt,
        warmup=args.warmup,
        client_factory=factory,
        extra_body=args.extra_body,
        temperature=args.temperature,
        unique_prompts=not args.same_prompt,
        timeout_s=args.timeout,
        progress=not args.no_progress,
    )

    meta = {
        "base_url": args.base_url,
        "model": model,
        "max_tokens": args.max_tokens,
        "prompt": args.prompt,
        "warmup": args.warmup,
        "unique_prompts": not args.same_prompt,
        "concurrency_levels": levels,
    }
    hourly = args.hourly_usd if args.hourly_usd is not None else hourly_usd_from_env(os.environ)
    report = format_table(results) + ttft_line(results, args.ttft_target_ms, args.ttft_stat)
    if hourly is not None:
        report += "\n" + cost_lines(results, hourly)
    header = (
        f"{args.base_url} model={model} max_tokens={args.max_tokens} requests/level={args.requests}"
    )
    if args.json:
        data = to_json(results, meta, args.ttft_target_ms, args.ttft_stat)
        if hourly is not None:
            data["hourly_usd"] = hourly
            for run, result in zip(data["runs"], results, strict=True):
                run["usd_per_million_output_tokens"] = usd_per_million_tokens(result, hourly)
            if len(results) == 1:
                data["usd_per_million_output_tokens"] = data["runs"][0][
                    "usd_per_million_output_tokens"
                ]
        print(json.dumps(data, indent=2))
        print(header + "\n" + report, file=sys.stderr)
    else:
        print(header)
        print(report)

    if args.plot:
        plot(results, args.plot, args.ttft_target_ms, f"{model} @ {args.base_url}")
        print(f"plot written to {args.plot}", file=sys.stderr)

    total = sum(r.requests for r in results)
    failed = sum(r.errors for r in results)
    if failed == total:
        first = next(r.first_error for r in results if r.first_error)
        print(f"error: all {total} requests failed; first error: {first}", file=sys.stderr)
        return EXIT_ALL_FAILED
    if failed:
        print(f"warning: {failed} of {total} requests failed", file=sys.stderr)
    if args.fail_on_target and not all(
        r.ttft_verdict(args.ttft_target_ms, args.ttft_stat) for r in results
    ):
        return EXIT_TARGET_MISSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
