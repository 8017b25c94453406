"""Calibrate the CPU speed estimates of ``components.sizing.planner`` against llama.cpp, here.

What one run does (``python -m benchmarks.calibrate_cpu [--model NAME]``):

1. Describes the machine (``lscpu`` model name, AVX2/AVX-512 flags, cores, memory, and
   the llama.cpp build that serves the model: llama-cpp-python version and its SIMD).
2. Measures memory bandwidth with numpy, before any server runs: N processes (not
   threads: numpy's reductions hold the GIL) each stream their own 256 MiB arrays,
   released together by a barrier; ``read`` = ``a.sum()`` over float64 (bytes read /
   time), ``copy`` = ``np.copyto(b, a)`` (STREAM convention: 2 x bytes / time). Wall
   time is the first start to the last end of a round; the median of 9 rounds counts.
   Measured for one process and for each thread count of the sweep.
3. Writes a random-weight GGUF with the REAL shape of a catalog model
   (``model_configs/facts/<name>.yaml``; the FFN width, which the facts do not record,
   is solved from the parameter count) in Q4_0 with ``tools.synthetic_gguf``, into a
   cache directory (reused when present). Weight values do not change the speed.
4. For each thread count of the sweep (default: 1, 2, 4, ... up to ``nproc``), starts
   ``python -m llama_cpp.server`` on 127.0.0.1 with ``--n_threads`` and
   ``--n_threads_batch`` set to it, and runs :func:`benchmarks.bench_endpoint.run_benchmark`
   at concurrency 1: streaming chat requests whose prompt is exactly
   ``--prompt-tokens`` (64) tokens as the server counts them (``usage.prompt_tokens``
   of a non-streaming probe; chat template included) and ``--max-tokens`` (64) output.
   Every prompt starts with a random tag, so llama.cpp's prefix cache cannot skip the
   prefill. Reports p50 decode tok/s (after the first token) and p50 TTFT. Other
   processes' CPU use is accounted (``/proc/stat`` minus the server and this process):
   a measurement disturbed by more than 0.2 cores is repeated (``--attempts``), and
   each one first waits for an idle machine (``--quiet-wait``).
5. Serves the tiny 0.4 MB model the same way to measure the server's own TTFT overhead
   (HTTP, template, tokenization, sampling), so TTFT splits into overhead + prefill.
6. Asks the planner (``components.sizing.planner.plan``) for its estimates on THIS machine:
   ``components.sizing.local_host.local_host_resources()`` with the measured bandwidth, the
   model's facts with the synthetic file's size and Q4_0, ``threads`` = each thread count
   (and the planner's own pick), ``cpu_limit`` = all vCPUs (the server runs without a
   container limit unless ``--cpu-limit``). Prints measured / estimate, the default
   thread count's speed relative to the best of the sweep, and decode as a share of the
   memory-bandwidth limit (measured read bandwidth / weight bytes read per token).
7. Solves the Calibration constants that this run implies.

``--fit A.json B.json ... [--check C.json ...] [--out FILE]`` combines the ``--json``
outputs of several runs (several model shapes) into one proposed
:class:`components.sizing.calibration.Calibration` (see :func:`fit`), and checks the planner with it
against every measurement. ``--gguf FILE`` measures a given file (e.g. the real
download) instead of a synthetic one.

``--server-python`` runs the server with another interpreter, e.g. one whose
llama-cpp-python was built for AVX2 only (LocalAI v2.24.0's CPU image has no AVX-512
kernels, see ``components.sizing.calibration.LOCALAI_CPU_IMAGE_HAS_AVX512``).

``--cpu-limit 1.5`` runs the server in a cgroup with that CPU quota, like
``docker run --cpus 1.5`` (root and a writable cgroup ``cpu`` controller needed).

Nothing is downloaded. Runtime on a 2-core machine (AMD EPYC, KVM): ~1 minute for
qwen2.5-0.5b's shape, ~3.5 for phi-3.5-mini's (2.2 GB file, written once in ~15 s).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.calibration.constants import DEFAULT_CACHE, DEFAULT_MODEL
from benchmarks.calibration.fitting import fit
from benchmarks.calibration.report import format_fit, format_report
from benchmarks.calibration.run import calibrate


def _counts(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 1,2,4, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibrate_cpu",
        description="Measure llama.cpp CPU speed for a catalog model's shape on this machine "
        "and compare it with components.sizing.planner's estimates.",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}")
    parser.add_argument("--threads-sweep", type=_counts, default=None, metavar="1,2")
    parser.add_argument("--requests", type=int, default=5, help="per thread count")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--gguf",
        type=Path,
        default=None,
        help="measure this GGUF file (e.g. the real download) instead of a synthetic one",
    )
    parser.add_argument("--server-python", default=sys.executable)
    parser.add_argument("--cpu-limit", type=float, default=None, help="CPU quota (cgroup)")
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="skip measuring")
    parser.add_argument(
        "--attempts",
        type=int,
        default=3,
        help="measure a thread count up to this often while other processes disturb it "
        "(the least disturbed attempt counts)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for the machine to be idle",
    )
    parser.add_argument("--json", action="store_true", help="JSON to stdout")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--fit",
        nargs="+",
        type=Path,
        default=None,
        metavar="RUN.json",
        help="combine --json outputs into one proposed Calibration (no benchmark)",
    )
    parser.add_argument(
        "--check",
        nargs="+",
        type=Path,
        default=None,
        metavar="RUN.json",
        help="with --fit: more runs to check the proposal against, not to fit",
    )
    parser.add_argument("--out", type=Path, default=None, help="with --fit: write JSON here")
    parser.add_argument("--note", action="append", help="with --fit: a note for the JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.fit:
        results = [json.loads(path.read_text()) for path in args.fit]
        extra = [json.loads(path.read_text()) for path in args.check or ()]
        data = {
            "notes": args.note or [],
            "machine": results[0]["machine"],
            **fit(results, extra),
            "runs": results,
            "check_runs": extra,
        }
        if args.out:
            args.out.write_text(json.dumps(data, indent=2) + "\n")
        print(json.dumps(data, indent=2) if args.json else format_fit(data))
        return 0
    data = calibrate(args)
    if args.json:
        print(json.dumps(data, indent=2))
        print(format_report(data), file=sys.stderr)
    else:
        print(format_report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
