"""Calibrate the CPU speed estimates of ``components.sizing`` against llama.cpp, here.

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
6. Asks the planner (``components.sizing.plan``) for its estimates on THIS machine:
   ``components.local_host.local_host_resources()`` with the measured bandwidth, the
   model's facts with the synthetic file's size and Q4_0, ``threads`` = each thread count
   (and the planner's own pick), ``cpu_limit`` = all vCPUs (the server runs without a
   container limit unless ``--cpu-limit``). Prints measured / estimate, the default
   thread count's speed relative to the best of the sweep, and decode as a share of the
   memory-bandwidth limit (measured read bandwidth / weight bytes read per token).
7. Solves the Calibration constants that this run implies.

``--fit A.json B.json ... [--check C.json ...] [--out FILE]`` combines the ``--json``
outputs of several runs (several model shapes) into one proposed
:class:`components.sizing.Calibration` (see :func:`fit`), and checks the planner with it
against every measurement. ``--gguf FILE`` measures a given file (e.g. the real
download) instead of a synthetic one.

``--server-python`` runs the server with another interpreter, e.g. one whose
llama-cpp-python was built for AVX2 only (LocalAI v2.24.0's CPU image has no AVX-512
kernels, see ``components.sizing.LOCALAI_CPU_IMAGE_HAS_AVX512``).

``--cpu-limit 1.5`` runs the server in a cgroup with that CPU quota, like
``docker run --cpus 1.5`` (root and a writable cgroup ``cpu`` controller needed).

Nothing is downloaded. Runtime on a 2-core machine (AMD EPYC, KVM): ~1 minute for
qwen2.5-0.5b's shape, ~3.5 for phi-3.5-mini's (2.2 GB file, written once in ~15 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from benchmarks.bench_endpoint import (
    BenchmarkResult,
    make_client_factory,
    percentile,
    run_benchmark,
    tag_prompt,
)
from tools.llama_server import LlamaServer

DEFAULT_MODEL = "qwen2.5-0.5b-instruct"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    "localai/calibration"
)
BANDWIDTH_BYTES_PER_PROCESS = 256 * 1024**2
BANDWIDTH_ROUNDS = 9
SERVER_START_TIMEOUT_S = 180.0
N_CTX = 1024
FILLER = (
    "The quick brown fox jumps over the lazy dog while the operators watch the "
    "dashboards, count the tokens and write down every number they see. "
) * 40
CHAT_FORMAT = "mistral-instruct"
"""``[INST] {prompt} [/INST]``: the shortest template llama-cpp-python has. The synthetic
vocabulary spends one token per byte, so chatml's markers alone would be ~80 tokens;
real tokenizers spend one token per marker."""
DISTURBED_CORES = 0.2
"""A measurement during which other processes used more CPU than this is retried."""
TOLERANCE = 0.25  # the planner should be within 25% of measurements


# --------------------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def describe_machine(server_python: str) -> dict[str, Any]:
    """lscpu model name, SIMD flags, cores, memory, and the llama.cpp build in use."""
    lscpu = _run_text(["lscpu"])
    fields = {}
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("Flags", "").split())
    if not flags:
        match = re.search(r"^flags\s*:\s*(.*)$", _read("/proc/cpuinfo"), re.MULTILINE)
        flags = set(match.group(1).split()) if match else set()
    meminfo = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    build = _run_text(
        [
            server_python,
            "-c",
            "import llama_cpp; print(llama_cpp.__version__); "
            "print(llama_cpp.llama_print_system_info().decode())",
        ]
    ).splitlines()
    system_info = build[1] if len(build) > 1 else ""
    return {
        "cpu_model": fields.get("Model name", platform.processor() or "unknown"),
        "vendor": fields.get("Vendor ID"),
        "hypervisor": fields.get("Hypervisor vendor"),
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "vcpus": len(os.sched_getaffinity(0)),
        "threads_per_core": fields.get("Thread(s) per core"),
        "l3_cache": fields.get("L3 cache"),
        "memory_gib": round(int(meminfo.group(1)) / 1024**2, 1) if meminfo else None,
        "python": platform.python_version(),
        "server_python": server_python,
        "llama_cpp_python": build[0] if build else None,
        "llama_cpp_system_info": system_info,
        "server_kernels": "avx512" if "AVX512 = 1" in system_info else "avx2",
    }


def _run_text(command: list[str]) -> str:
    if shutil.which(command[0]) is None and not Path(command[0]).exists():
        return ""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


# --------------------------------------------------------------------------- bandwidth


def _bandwidth_worker(barrier: Any, queue: Any, nbytes: int, rounds: int, kind: str) -> None:
    import numpy as np

    src = np.ones(nbytes // 8)
    dst = np.empty_like(src) if kind == "copy" else None
    for _ in range(2):  # fault the pages in, warm the TLB
        if dst is None:
            src.sum()
        else:
            np.copyto(dst, src)
    for index in range(rounds):
        barrier.wait()
        start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        if dst is None:
            src.sum()
        else:
            np.copyto(dst, src)
        queue.put((index, start, time.perf_counter()))


def measure_bandwidth(
    processes: int,
    kind: str = "read",
    nbytes: int = BANDWIDTH_BYTES_PER_PROCESS,
    rounds: int = BANDWIDTH_ROUNDS,
) -> float:
    """GB/s (10^9) that ``processes`` processes stream together; median of ``rounds``
    (the best round is an outlier on a shared VM: up to 1.6x the typical rate here)."""
    if kind not in ("read", "copy"):
        raise ValueError(f"kind must be 'read' or 'copy', got {kind!r}")
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    barrier = ctx.Barrier(processes)
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_bandwidth_worker, args=(barrier, queue, nbytes, rounds, kind))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    marks = [queue.get(timeout=300) for _ in range(processes * rounds)]
    for worker in workers:
        worker.join()
    moved = processes * nbytes * (2 if kind == "copy" else 1)
    rates = []
    for index in range(rounds):
        starts = [s for i, s, _ in marks if i == index]
        ends = [e for i, _, e in marks if i == index]
        rates.append(moved / (max(ends) - min(starts)) / 1e9)
    return percentile(rates, 50)


def bandwidth_profile(thread_counts: Sequence[int]) -> dict[str, Any]:
    counts = sorted({1, *thread_counts, len(os.sched_getaffinity(0))})
    read = {n: measure_bandwidth(n, "read") for n in counts}
    copy = {n: measure_bandwidth(n, "copy") for n in counts}
    return {
        "method": (
            f"numpy, N processes x {BANDWIDTH_BYTES_PER_PROCESS // 1024**2} MiB float64 "
            "arrays released by a barrier; read = a.sum() (bytes / s), copy = "
            f"np.copyto (2 x bytes / s); median of {BANDWIDTH_ROUNDS} rounds"
        ),
        "read_gbs": {str(n): round(v, 2) for n, v in read.items()},
        "copy_gbs": {str(n): round(v, 2) for n, v in copy.items()},
        "single_read_gbs": round(read[1], 2),
        "multi_read_gbs": round(read[counts[-1]], 2),
        "single_copy_gbs": round(copy[1], 2),
        "multi_copy_gbs": round(copy[counts[-1]], 2),
    }


# --------------------------------------------------------------------------- model file


def shape_from_facts(facts: Any) -> dict[str, Any]:
    """``write_synthetic_gguf`` arguments for the model's real transformer shape.

    The facts give layers, widths, heads and vocabulary; the FFN width follows from the
    parameter count: per block, q/k/v/o + 3 FFN matrices + 2 norm vectors.
    """
    q_width = facts.heads * facts.head_dim
    if q_width != facts.n_embd:
        raise ValueError(
            f"{facts.name}: heads x head_dim = {q_width} differs from n_embd = {facts.n_embd}; "
            "the synthetic llama writer cannot represent that shape"
        )
    kv_width = facts.kv_heads * facts.head_dim
    embeddings = facts.vocab * facts.n_embd * (1 if facts.tied_embeddings else 2)
    per_block = (facts.parameters - embeddings - facts.n_embd) / facts.layers
    attention = facts.n_embd * (q_width + 2 * kv_width) + q_width * facts.n_embd
    n_ff = (per_block - attention - 2 * facts.n_embd) / (3 * facts.n_embd)
    n_ff = round(n_ff / 32) * 32
    if n_ff <= 0:
        raise ValueError(f"{facts.name}: parameters too small for its shape (n_ff = {n_ff})")
    return {
        "n_layers": facts.layers,
        "n_embd": facts.n_embd,
        "n_head": facts.heads,
        "n_head_kv": facts.kv_heads,
        "n_ff": n_ff,
        "n_vocab": facts.vocab,
        "tie_embeddings": facts.tied_embeddings,
        "context_length": facts.max_context or 4096,
    }


def ensure_gguf(name: str, shape: dict[str, Any], cache_dir: Path) -> tuple[Path, bool]:
    """(path, reused): the Q4_0 synthetic file for ``shape``, written once per shape."""
    from tools.synthetic_gguf import write_synthetic_gguf

    tag = (
        f"L{shape['n_layers']}-E{shape['n_embd']}-H{shape['n_head']}-KV{shape['n_head_kv']}"
        f"-FF{shape['n_ff']}-V{shape['n_vocab']}{'-tied' if shape['tie_embeddings'] else ''}"
    )
    path = cache_dir / f"{name}-{tag}-Q4_0.gguf"
    if path.is_file():
        return path, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    try:
        # general.name must not name the model: llama.cpp special-cases names containing
        # "phi-3" and then fails to load the synthetic vocabulary (no "<|end|>" token).
        write_synthetic_gguf(partial, tensor_type="Q4_0", name=f"synthetic {tag}", **shape)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path, False


def tiny_gguf(cache_dir: Path) -> Path:
    from tools.synthetic_gguf import PRESETS, write_synthetic_gguf

    path = cache_dir / "tiny-F32.gguf"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_synthetic_gguf(path, name="tiny", **PRESETS["tiny"])
    return path


def weight_bytes_per_token(path: Path) -> int:
    """Tensor bytes one decode step reads: every tensor except an untied token embedding
    (a lookup reads one row of it); a tied one is read in full as the output head."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    sizes = {t.name: int(t.n_bytes) for t in reader.tensors}
    if "output.weight" in sizes:
        sizes.pop("token_embd.weight", None)
    return sum(sizes.values())


# --------------------------------------------------------------------------- server


@contextlib.contextmanager
def cpu_quota(limit: float | None) -> Iterator[Path | None]:
    """A cgroup with ``limit`` CPUs of quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``)."""
    if limit is None:
        yield None
        return
    period = 100_000
    quota = round(limit * period)
    name = f"localai-calibrate-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    group = Path("/sys/fs/cgroup") / name if v2 else Path("/sys/fs/cgroup/cpu") / name
    try:
        group.mkdir()
        if v2:
            (group / "cpu.max").write_text(f"{quota} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
    except OSError as exc:
        raise RuntimeError(
            f"--cpu-limit needs a writable cgroup cpu controller ({group}): {exc}"
        ) from None
    try:
        yield group
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, all threads) process ``pid`` has used."""
    if pid is None:
        return 0.0
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 15:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _system_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in _read("/proc/stat").splitlines()[0].split()[1:]]
    if len(values) < 8:
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


class CpuAccount:
    """How much CPU others used while we measured: (machine busy - server - this process)
    / wall time, in cores; and the hypervisor's steal time, in cores."""

    def __init__(self, server: LlamaServer):
        self.server = server

    def __enter__(self) -> CpuAccount:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        wall = end[0] - self._start[0]
        busy, steal, server, own = (e - s for e, s in zip(end[1:], self._start[1:], strict=True))
        self.background_cores = max(busy - server - own, 0.0) / wall if wall > 0 else 0.0
        self.steal_cores = steal / wall if wall > 0 else 0.0

    def _snapshot(self) -> tuple[float, float, float, float, float]:
        busy, steal = _system_cpu()
        times = os.times()
        return (
            time.monotonic(),
            busy,
            steal,
            cpu_seconds(self.server.pid),
            times.user + times.system,
        )


def wait_until_quiet(max_wait_s: float, window_s: float = 2.0) -> float:
    """Wait (up to ``max_wait_s``) for a ``window_s`` window in which the machine uses less
    than ``DISTURBED_CORES`` of CPU (this process excluded); returns the last load seen."""
    deadline = time.monotonic() + max_wait_s
    load = math.inf
    while True:
        busy0, _ = _system_cpu()
        own0 = sum(os.times()[:2])
        time.sleep(window_s)
        busy1, _ = _system_cpu()
        load = max(busy1 - busy0 - (sum(os.times()[:2]) - own0), 0.0) / window_s
        if load <= DISTURBED_CORES or time.monotonic() >= deadline:
            if load > DISTURBED_CORES:
                log(f"warning: the machine is busy ({load:.2f} cores used by others)")
            return load


def prompt_tokens(client: Any, model: str, content: str) -> int:
    """Prompt tokens the server counts for one user message (chat template included)."""
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=1
    )
    if response.usage is None:
        raise RuntimeError("the server reports no usage; cannot size the prompt")
    return int(response.usage.prompt_tokens)


def fit_prompt(client: Any, model: str, target: int) -> tuple[str, int]:
    """(prompt, tokens): filler text that, behind :func:`tag_prompt`'s tag, makes the
    server count ``target`` prompt tokens (or the closest it can)."""
    base = prompt_tokens(client, model, tag_prompt(""))
    if base >= target:
        return "", base
    probe = 400
    per_char = max(prompt_tokens(client, model, tag_prompt(FILLER[:probe])) - base, 1) / probe
    length = round((target - base) / per_char)
    best = ("", base)
    for _ in range(8):
        length = max(0, min(length, len(FILLER)))
        text = FILLER[:length].rstrip() if length else ""
        count = prompt_tokens(client, model, tag_prompt(text))
        if abs(count - target) < abs(best[1] - target):
            best = (text, count)
        if count == target:
            break
        length += max(1, round(abs(target - count) / per_char)) * (1 if count < target else -1)
    return best


# --------------------------------------------------------------------------- planner


def synthetic_facts(facts: Any, path: Path, quantization: str) -> Any:
    """The catalog facts, with the measured file's size and quantization."""
    return facts.model_copy(
        update={
            "file_size_bytes": path.stat().st_size,
            "quantization": quantization,
            "gguf_file": path.name,
        }
    )


def gguf_quantization(path: Path) -> str:
    """The file type (``general.file_type``) name, e.g. ``Q4_0`` or ``Q4_K_M``."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(path)
    field = reader.fields.get("general.file_type")
    if field is None:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return f"file_type {value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def planner_estimates(
    host: Any,
    facts: Any,
    threads: int | None,
    cpu_limit: float | None,
    calibration: Any = None,
) -> dict[str, Any]:
    from components.sizing import DEFAULT_CALIBRATION, SizingError, plan

    try:
        result = plan(
            host,
            [(facts.name, facts)],
            use_gpu=False,
            context_size={facts.name: N_CTX},
            parallel_requests=1,
            threads=threads,
            cpu_limit=cpu_limit,
            calibration=calibration or DEFAULT_CALIBRATION,
        )
    except SizingError as exc:
        return {"error": str(exc)}
    return {
        "threads": result.threads,
        "cpu_limit": result.cpu_limit,
        "tokens_per_s": result.estimated_tokens_per_second,
        "ttft_ms": result.estimated_ttft_ms,
    }


def planner_decode_bytes(facts: Any) -> float:
    """Bytes per decode token in the planner's model (weights on the CPU + KV cache)."""
    from components.sizing import DECODE_REFERENCE_TOKENS

    embedding = facts.vocab * facts.n_embd * facts.bytes_per_parameter
    weights = facts.file_size_bytes - (0.0 if facts.tied_embeddings else embedding)
    return weights + facts.kv_bytes_per_token * DECODE_REFERENCE_TOKENS


def planner_prefill_flops(facts: Any) -> float:
    from components.sizing import TTFT_PROMPT_TOKENS

    return 2.0 * facts.parameters * TTFT_PROMPT_TOKENS


def host_for(bandwidth_gbs: float, kernels: str) -> Any:
    """This machine for the planner: measured bandwidth; ``cpu_isa`` = the kernels the
    server build runs (the planner maps AVX-512 to AVX2 for LocalAI's images)."""
    from components.local_host import local_host_resources

    host = local_host_resources()
    return replace(host, memory_bandwidth_gbs=bandwidth_gbs, cpu_isa=kernels)


# --------------------------------------------------------------------------- one run


def run_thread_count(
    args: argparse.Namespace,
    model_path: Path,
    alias: str,
    threads: int,
    prompt: str | None,
    log_dir: Path,
    cgroup: Path | None,
) -> tuple[BenchmarkResult, str, int | None, CpuAccount]:
    server = LlamaServer(
        model_path,
        log_dir / f"{alias}-t{threads}.log",
        model=alias,
        python=args.server_python,
        threads=threads,
        n_ctx=N_CTX,
        chat_format=CHAT_FORMAT,
        cgroup=cgroup,
        start_timeout_s=SERVER_START_TIMEOUT_S,
    )
    with server:
        factory = make_client_factory(server.base_url, server.api_key)
        counted = None
        if prompt is None:
            prompt, counted = fit_prompt(factory(), alias, args.prompt_tokens)
        with CpuAccount(server) as account:
            result = run_benchmark(
                model=alias,
                requests=args.requests,
                concurrency=1,
                max_tokens=args.max_tokens,
                prompt=prompt,
                warmup=1,
                client_factory=factory,
                unique_prompts=True,
                progress=not args.no_progress,
            )
    return result, prompt, counted, account


def _p50(result: BenchmarkResult, metric: str) -> float | None:
    return result.metric(metric)["p50"]


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    from components.model_facts import load_model_facts

    facts = load_model_facts(args.model)
    if facts is None:
        raise SystemExit(f"error: no model_configs/facts/{args.model}.yaml")
    nproc = len(os.sched_getaffinity(0))
    sweep = args.threads_sweep or _default_sweep(nproc)
    log(f"machine: {nproc} vCPUs; thread sweep {sweep}")
    machine = describe_machine(args.server_python)

    if args.bandwidth_gbs:
        bandwidth = {"method": "given with --bandwidth-gbs", "multi_read_gbs": args.bandwidth_gbs}
        bandwidth["single_read_gbs"] = args.bandwidth_gbs
        bandwidth["read_gbs"] = {str(n): args.bandwidth_gbs for n in sweep}
    else:
        wait_until_quiet(args.quiet_wait)
        log("measuring memory bandwidth ...")
        bandwidth = bandwidth_profile(sweep)
    log(f"bandwidth read GB/s: {bandwidth['read_gbs']}")

    shape = shape_from_facts(facts)
    started = time.monotonic()
    if args.gguf:
        model_path, reused = args.gguf, True
    else:
        model_path, reused = ensure_gguf(args.model, shape, args.cache_dir)
    quantization = gguf_quantization(model_path)
    log(
        f"model file {model_path} ({model_path.stat().st_size / 1e6:.0f} MB, "
        f"{'reused' if reused else f'written in {time.monotonic() - started:.0f} s'})"
    )
    synth = synthetic_facts(facts, model_path, quantization)
    read_per_token = weight_bytes_per_token(model_path)
    kernels = machine["server_kernels"]
    host = host_for(bandwidth["multi_read_gbs"], kernels)

    runs = []
    prompt: str | None = None
    counted: int | None = None
    with (
        tempfile.TemporaryDirectory(prefix="calibrate-") as logs,
        cpu_quota(args.cpu_limit) as cgroup,
    ):
        log_dir = Path(logs)
        wait_until_quiet(args.quiet_wait)
        log("server overhead: tiny model ...")
        tiny, _, _, _ = run_thread_count(
            args, tiny_gguf(args.cache_dir), "tiny", 1, None, log_dir, cgroup
        )
        overhead_ms = _p50(tiny, "ttft_ms")
        for threads in sweep:
            attempts = []
            for attempt in range(1, args.attempts + 1):
                wait_until_quiet(args.quiet_wait)
                log(f"{args.model}: {threads} thread(s), attempt {attempt} ...")
                result, prompt, fitted, account = run_thread_count(
                    args, model_path, args.model, threads, prompt, log_dir, cgroup
                )
                counted = counted or fitted
                attempts.append((account.background_cores, result, account))
                if account.background_cores <= DISTURBED_CORES:
                    break
                log(
                    f"warning: other processes used {account.background_cores:.2f} cores "
                    "during this measurement; it is disturbed"
                )
            _, result, account = min(attempts, key=lambda item: item[0])
            if result.errors == result.requests:
                raise SystemExit(f"error: every request failed: {result.first_error}")
            limit = args.cpu_limit if args.cpu_limit is not None else float(nproc)
            estimate = planner_estimates(host, synth, min(threads, host.physical_cores), limit)
            bw_here = float(bandwidth["read_gbs"].get(str(threads), bandwidth["multi_read_gbs"]))
            record = _thread_record(result, threads, estimate, read_per_token, bw_here)
            record["background_cores"] = round(account.background_cores, 3)
            record["steal_cores"] = round(account.steal_cores, 3)
            record["attempts"] = len(attempts)
            runs.append(record)

    default = planner_estimates(host, synth, None, args.cpu_limit)
    best = max(runs, key=lambda r: r["decode_tokens_per_s"] or 0.0)
    picked = next((r for r in runs if r["threads"] == host.physical_cores), None)
    implied = implied_constants(runs, synth, bandwidth, overhead_ms, kernels)
    return {
        "command": "python -m benchmarks.calibrate_cpu " + " ".join(sys.argv[1:]),
        "model": args.model,
        "shape": shape,
        "model_file": {
            "path": str(model_path),
            "bytes": model_path.stat().st_size,
            "quantization": quantization,
            "synthetic": args.gguf is None,
            "weight_bytes_read_per_token": read_per_token,
        },
        "facts_for_planner": json.loads(synth.model_dump_json()),
        "machine": machine,
        "host_for_planner": _host_dict(host),
        "bandwidth": bandwidth,
        "cpu_limit": args.cpu_limit,
        "prompt": {"text": prompt, "tokens": counted, "target": args.prompt_tokens},
        "max_tokens": args.max_tokens,
        "requests_per_thread_count": args.requests,
        "server_overhead_ttft_ms": overhead_ms,
        "runs": runs,
        "best_threads": best["threads"],
        "default_threads": host.physical_cores,
        "default_vs_best": (
            picked["decode_tokens_per_s"] / best["decode_tokens_per_s"]
            if picked and best["decode_tokens_per_s"]
            else None
        ),
        "planner_default": default,
        "implied_calibration": implied,
    }


def _default_sweep(nproc: int) -> list[int]:
    counts = {nproc}
    n = 1
    while n < nproc:
        counts.add(n)
        n *= 2
    return sorted(counts)


def _host_dict(host: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(host).items() if v is not None}


def _thread_record(
    result: BenchmarkResult,
    threads: int,
    estimate: dict[str, Any],
    read_per_token: int,
    bandwidth_gbs: float,
) -> dict[str, Any]:
    decode = _p50(result, "tokens_per_s")
    ttft = _p50(result, "ttft_ms")
    limit = bandwidth_gbs * 1e9 / read_per_token
    return {
        "threads": threads,
        "decode_tokens_per_s": decode,
        "ttft_ms": ttft,
        "ttft_ms_p95": result.metric("ttft_ms")["p95"],
        "itl_ms": _p50(result, "itl_ms"),
        "e2e_ms": _p50(result, "e2e_ms"),
        "output_tokens_mean": result.output_tokens / max(len(result.ok_samples), 1),
        "token_count_source": result.token_count_source,
        "requests": result.requests,
        "errors": result.errors,
        "estimate": estimate,
        "decode_ratio": _ratio(decode, estimate.get("tokens_per_s")),
        "ttft_ratio": _ratio(ttft, estimate.get("ttft_ms")),
        "bandwidth_limit_tokens_per_s": limit,
        "share_of_bandwidth_limit": decode / limit if decode else None,
        "achieved_gbs": decode * read_per_token / 1e9 if decode else None,
    }


def _ratio(measured: float | None, estimate: float | None) -> float | None:
    return measured / estimate if measured and estimate else None


# --------------------------------------------------------------------------- fitting


def implied_constants(
    runs: Sequence[dict[str, Any]],
    facts: Any,
    bandwidth: dict[str, Any],
    overhead_ms: float | None,
    kernels: str,
) -> dict[str, Any]:
    """What one run says about the constants, in the planner's own formulas.

    ``effective_gbs[T]`` = planner bytes per token / (1 / measured tok/s - decode
    overhead): the ``min(host, T x per_core) x efficiency`` the planner would need.
    ``prefill_gflops_per_core[T]`` = planner FLOPs / (T x (TTFT - server overhead)).
    """
    from components.sizing import DEFAULT_CALIBRATION

    c = DEFAULT_CALIBRATION
    per_token = planner_decode_bytes(facts)
    flops = planner_prefill_flops(facts)
    effective = {}
    gflops = {}
    for run in runs:
        decode = run["decode_tokens_per_s"]
        if decode:
            seconds = 1.0 / decode - c.decode_overhead_ms / 1000
            effective[str(run["threads"])] = per_token / seconds / 1e9
        if run["ttft_ms"] and overhead_ms is not None and run["ttft_ms"] > overhead_ms:
            prefill_s = (run["ttft_ms"] - overhead_ms) / 1000
            gflops[str(run["threads"])] = flops / (run["threads"] * prefill_s) / 1e9
    return {
        "planner_decode_bytes_per_token": per_token,
        "planner_prefill_flops": flops,
        "effective_gbs": effective,
        "prefill_gflops_per_core": gflops,
        "server_kernels": kernels,
        "host_read_gbs": bandwidth["multi_read_gbs"],
    }


PLANNER_KERNELS = "avx2"
"""The kernels the planner assumes for x86 (LocalAI v2.24.0's CPU image: AVX2 at most)."""


def fit(
    results: Sequence[dict[str, Any]], checks_only: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """One Calibration from several runs, then the planner checked against every run.

    Decode: ``per_core_bandwidth_gbs``, ``cpu_bandwidth_efficiency`` and
    ``decode_overhead_ms`` by grid search, minimising the worst |log(measured /
    estimate)| over the runs without a CPU limit whose server ran the planner's kernels
    (AVX2); the planner's own formula, with its bytes per token. Prefill:
    ``prefill_gflops_per_core_<kernels>`` per kernel set, the geometric middle of the
    values the runs imply (smallest worst-case error). ``ttft_overhead_ms`` stays: it is
    LocalAI's (Go API + gRPC), which this machine cannot measure; the llama-cpp-python
    server's own overhead is measured and subtracted before the prefill rate is derived.
    """
    import numpy as np

    from components.sizing import DEFAULT_CALIBRATION, Calibration

    default = DEFAULT_CALIBRATION
    fitted = [r for r in results if r.get("cpu_limit") is None]
    decode_runs = [
        r for r in fitted if r["implied_calibration"]["server_kernels"] == PLANNER_KERNELS
    ] or fitted
    rows = []  # (threads, host GB/s, bytes per token, measured tok/s)
    for result in decode_runs:
        implied = result["implied_calibration"]
        for run in result["runs"]:
            if run["decode_tokens_per_s"]:
                rows.append(
                    (
                        run["threads"],
                        implied["host_read_gbs"],
                        implied["planner_decode_bytes_per_token"],
                        run["decode_tokens_per_s"],
                    )
                )
    threads, hosts, per_token, measured = np.array(rows, dtype=float).T
    per_core = np.arange(2.0, 80.0, 0.5)[:, None, None, None]
    efficiency = np.arange(0.10, 1.0001, 0.01)[None, :, None, None]
    overhead_ms = np.arange(0.0, 10.01, 0.25)[None, None, :, None]
    bandwidth = np.minimum(hosts, threads * per_core) * efficiency * 1e9
    modelled = 1.0 / (per_token / bandwidth + overhead_ms / 1000)
    worst = np.abs(np.log(measured / modelled)).max(axis=3)
    # Near-equal fits: prefer constants close to the defaults (the data may not pin them).
    score = (
        worst
        + 0.01 * np.abs(efficiency[..., 0] - default.cpu_bandwidth_efficiency)
        + 0.001 * np.abs(overhead_ms[..., 0] - default.decode_overhead_ms)
    )
    i, j, k = np.unravel_index(np.argmin(score), score.shape)

    gflops: dict[str, float] = {}
    for kernels in sorted({r["implied_calibration"]["server_kernels"] for r in fitted}):
        values = [
            v
            for r in fitted
            if r["implied_calibration"]["server_kernels"] == kernels
            for v in r["implied_calibration"]["prefill_gflops_per_core"].values()
        ]
        if values:
            gflops[kernels] = math.sqrt(min(values) * max(values))
    proposal = replace(
        default,
        per_core_bandwidth_gbs=round(float(per_core[i, 0, 0, 0]), 2),
        cpu_bandwidth_efficiency=round(float(efficiency[0, j, 0, 0]), 3),
        decode_overhead_ms=round(float(overhead_ms[0, 0, k, 0]), 2),
        prefill_gflops_per_core_avx2=round(
            gflops.get("avx2", default.prefill_gflops_per_core_avx2), 1
        ),
        prefill_gflops_per_core_avx512=round(
            gflops.get("avx512", default.prefill_gflops_per_core_avx512), 1
        ),
        source="benchmarks/calibrate_cpu.py --fit (see benchmarks/calibration_results.json)",
    )
    checks = [
        _check(result, run, proposal, used=result in fitted)
        for result in [*results, *checks_only]
        for run in result["runs"]
    ]
    fitted_checks = [c for c in checks if c["used_for_fit"]]
    within = all(
        c[key] is not None and abs(c[key] - 1) <= TOLERANCE
        for c in fitted_checks
        if c["kernels"] == PLANNER_KERNELS
        for key in ("decode_ratio_proposed", "ttft_ratio_proposed")
    )
    fields = {f.name: getattr(proposal, f.name) for f in dataclass_fields(proposal)}
    fields["gpu_prefill_tflops"] = dict(proposal.gpu_prefill_tflops)
    return {
        "proposed_calibration": fields,
        "proposed_calibration_python": _calibration_source(proposal, default),
        "decode_fit_worst_abs_log_error": float(worst[i, j, k]),
        "prefill_gflops_per_core_by_kernels": gflops,
        "checks": checks,
        "all_within_25_percent": within,
        "within_25_percent_means": (
            "every fitted run whose server ran the planner's kernels (AVX2), decode and TTFT"
        ),
        "calibration_class": Calibration.__qualname__,
    }


def _check(result: dict[str, Any], run: dict[str, Any], proposal: Any, used: bool) -> dict:
    facts = _facts_from(result)
    host = _host_from(result)
    threads_used = min(run["threads"], host.physical_cores)
    limit = result["cpu_limit"] or float(host.vcpus)
    before = planner_estimates(host, facts, threads_used, limit)
    after = planner_estimates(host, facts, threads_used, limit, proposal)
    return {
        "model": result["model"],
        "quantization": result["model_file"]["quantization"],
        "kernels": result["implied_calibration"]["server_kernels"],
        "cpu_limit": result["cpu_limit"],
        "threads": run["threads"],
        "used_for_fit": used,
        "measured_tokens_per_s": run["decode_tokens_per_s"],
        "measured_ttft_ms": run["ttft_ms"],
        "default_estimate": before,
        "proposed_estimate": after,
        "decode_ratio_default": _ratio(run["decode_tokens_per_s"], before.get("tokens_per_s")),
        "ttft_ratio_default": _ratio(run["ttft_ms"], before.get("ttft_ms")),
        "decode_ratio_proposed": _ratio(run["decode_tokens_per_s"], after.get("tokens_per_s")),
        "ttft_ratio_proposed": _ratio(run["ttft_ms"], after.get("ttft_ms")),
    }


def _calibration_source(proposal: Any, default: Any) -> str:
    changed = [
        f"    {name}={getattr(proposal, name)!r},"
        for name in (
            "per_core_bandwidth_gbs",
            "cpu_bandwidth_efficiency",
            "decode_overhead_ms",
            "prefill_gflops_per_core_avx512",
            "prefill_gflops_per_core_avx2",
            "ttft_overhead_ms",
        )
        if getattr(proposal, name) != getattr(default, name)
    ]
    return "Calibration(\n" + "\n".join(changed) + "\n)"


def _facts_from(result: dict[str, Any]) -> Any:
    from components.model_facts import ModelFacts

    return ModelFacts.model_validate(result["facts_for_planner"])


def _host_from(result: dict[str, Any]) -> Any:
    from components.sizing import HostResources

    return HostResources(**result["host_for_planner"])


# --------------------------------------------------------------------------- report


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(data: dict[str, Any]) -> str:
    m = data["machine"]
    b = data["bandwidth"]
    lines = [
        f"machine: {m['cpu_model']} ({m['hypervisor'] or 'bare metal'}), {m['vcpus']} vCPUs, "
        f"{m['memory_gib']} GiB, avx2={m['avx2']} avx512f={m['avx512f']}",
        f"server: llama-cpp-python {m['llama_cpp_python']} ({m['server_kernels']} kernels)",
        f"bandwidth (read, GB/s): single {b['single_read_gbs']}, multi {b['multi_read_gbs']}"
        + (
            f"; copy: single {b['single_copy_gbs']}, multi {b['multi_copy_gbs']}"
            if "single_copy_gbs" in b
            else ""
        ),
        f"  {b['method']}",
        f"model: {data['model']} shape, {data['model_file']['bytes'] / 1e6:.0f} MB "
        f"{data['model_file']['quantization']}; "
        f"{data['model_file']['weight_bytes_read_per_token'] / 1e6:.0f} MB read per token",
        f"prompt: {data['prompt']['tokens']} tokens (target {data['prompt']['target']}), "
        f"{data['max_tokens']} output tokens, {data['requests_per_thread_count']} requests "
        "per thread count"
        + (f", cpu limit {data['cpu_limit']}" if data["cpu_limit"] is not None else ""),
        f"server TTFT overhead (tiny model): {_f(data['server_overhead_ttft_ms'])} ms",
        "",
        f"{'threads':>7} {'decode tok/s':>12} {'est':>7} {'ratio':>6} "
        f"{'TTFT ms':>8} {'est':>7} {'ratio':>6} {'BW-limit share':>14} {'others':>6}",
    ]
    for run in data["runs"]:
        est = run["estimate"]
        lines.append(
            f"{run['threads']:>7} {_f(run['decode_tokens_per_s']):>12} "
            f"{_f(est.get('tokens_per_s')):>7} {_f(run['decode_ratio'], 2):>6} "
            f"{_f(run['ttft_ms']):>8} {_f(est.get('ttft_ms')):>7} {_f(run['ttft_ratio'], 2):>6} "
            f"{_f((run['share_of_bandwidth_limit'] or 0) * 100, 0) + '%':>14} "
            f"{_f(run.get('background_cores'), 2):>6}"
        )
    d = data["planner_default"]
    implied = data["implied_calibration"]
    lines += [
        "(others = CPU cores other processes used during the measurement)",
        "",
        f"planner's pick here: threads={d.get('threads')} cpu_limit={d.get('cpu_limit')} -> "
        f"{_f(d.get('tokens_per_s'))} tok/s, TTFT {_f(d.get('ttft_ms'))} ms",
        f"best thread count: {data['best_threads']}; default ({data['default_threads']}) "
        f"reaches {_f((data['default_vs_best'] or 0) * 100, 0)}% of the best decode speed",
        f"implied: effective GB/s by threads {_rounded(implied['effective_gbs'])}; "
        f"prefill GFLOP/s per core {_rounded(implied['prefill_gflops_per_core'])}",
    ]
    return "\n".join(lines) + "\n"


def _rounded(mapping: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in mapping.items()}


def format_fit(data: dict[str, Any]) -> str:
    lines = [data["proposed_calibration_python"], ""]
    lines.append(
        f"{'model':<24}{'quant':>7}{'kern':>7}{'cpus':>5}{'thr':>4}{'fit':>4}"
        f"{'tok/s':>8}{'est0':>7}{'est1':>7}{'ratio':>6}"
        f"{'TTFT':>8}{'est0':>8}{'est1':>8}{'ratio':>6}"
    )
    for c in data["checks"]:
        lines.append(
            f"{c['model']:<24}{c['quantization']:>7}{c['kernels']:>7}"
            f"{_f(c['cpu_limit'], 1) if c['cpu_limit'] else 'all':>5}{c['threads']:>4}"
            f"{'yes' if c['used_for_fit'] else 'no':>4}"
            f"{_f(c['measured_tokens_per_s']):>8}"
            f"{_f(c['default_estimate'].get('tokens_per_s')):>7}"
            f"{_f(c['proposed_estimate'].get('tokens_per_s')):>7}"
            f"{_f(c['decode_ratio_proposed'], 2):>6}"
            f"{_f(c['measured_ttft_ms'], 0):>8}"
            f"{_f(c['default_estimate'].get('ttft_ms'), 0):>8}"
            f"{_f(c['proposed_estimate'].get('ttft_ms'), 0):>8}"
            f"{_f(c['ttft_ratio_proposed'], 2):>6}"
        )
    lines.append("(est0: default constants; est1: proposed; ratio: measured / est1)")
    lines.append(f"within 25% ({data['within_25_percent_means']}): {data['all_within_25_percent']}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


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
        "and compare it with components.sizing's estimates.",
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
