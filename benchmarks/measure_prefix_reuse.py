"""Measure multi-turn TTFT with prefix reuse on and off, here, at a model's real shape.

    .venv/bin/python -m benchmarks.measure_prefix_reuse [--model phi-3.5-mini-instruct]
        [--system-tokens 300] [--conversations 2] [--turns 3] [--threads N] [--json]

Writes (once, cached) a random-weight Q4_0 GGUF with the model's real transformer shape
(as benchmarks/calibrate_cpu.py does), starts a real llama.cpp server (llama-cpp-python)
on it, and runs ``bench_endpoint --workload chat`` twice: sequential turns (the server
reuses the conversation's prefix, as LocalAI does with ``prompt_cache_all``) and with an
unrelated request between turns (every turn read from scratch, as without it). Prints
first-turn and follow-up TTFT for both. The synthetic vocabulary spends one token per
byte, so the system prompt's tokens are its characters: ``--system-tokens`` words are
several hundred to a few thousand tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.calibration.constants import DEFAULT_CACHE
from benchmarks.calibration.model_files import ensure_gguf, shape_from_facts
from components.models.facts import load_model_facts
from tools.llama_server import LlamaServer

ROOT = Path(__file__).resolve().parents[1]


def run_chat(server: LlamaServer, args: argparse.Namespace, evict: bool) -> dict:
    command = [
        sys.executable, "-m", "benchmarks.bench_endpoint", "--no-progress", "--json",
        "--workload", "chat", "--conversations", str(args.conversations),
        "--turns", str(args.turns), "--system-tokens", str(args.system_tokens),
        "--max-tokens", "8", "--timeout", "900",
    ] + (["--evict-between-turns"] if evict else [])  # fmt: skip
    env = {
        **os.environ,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": server.api_key,
        "OPENAI_MODEL": server.model,
    }
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.measure_prefix_reuse")
    parser.add_argument("--model", default="phi-3.5-mini-instruct")
    parser.add_argument("--system-tokens", type=int, default=60)
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    facts = load_model_facts(args.model)
    if facts is None:
        parser.error(f"no facts for {args.model}")
    path, _reused = ensure_gguf(args.model, shape_from_facts(facts), args.cache_dir)
    results = {}
    with tempfile.TemporaryDirectory() as log_dir:
        server = LlamaServer(
            path, Path(log_dir) / "server.log", api_key="sk-measure-prefix-reuse",
            threads=args.threads, n_ctx=4096,
        )  # fmt: skip
        with server:
            for label, evict in (("reuse", False), ("no_reuse", True)):
                results[label] = run_chat(server, args, evict)
    summary = {
        label: {
            "first_turn_ttft_ms_p50": data["first_turn"]["ttft_ms"]["p50"],
            "follow_up_ttft_ms_p50": data["follow_up"]["ttft_ms"]["p50"],
            "follow_up_ttft_ms_mean": data["follow_up"]["ttft_ms"]["mean"],
        }
        for label, data in results.items()
    }
    meta = {"model_shape": args.model, "threads": args.threads, "system_words": args.system_tokens}
    if args.json:
        print(json.dumps({**meta, **summary, "runs": results}, indent=2))
    else:
        print(
            f"{args.model} shape, {args.threads} threads, system prompt {args.system_tokens} words"
        )
        for label, row in summary.items():
            print(
                f"{label:<9} first turn {row['first_turn_ttft_ms_p50']:.0f} ms  "
                f"follow-up {row['follow_up_ttft_ms_p50']:.0f} ms (p50)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
