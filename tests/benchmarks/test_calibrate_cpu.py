"""benchmarks/calibrate_cpu.py: model shapes from the facts files, the bandwidth probe,
the planner inversion, and one small end-to-end calibration against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.calibration.fitting import implied_constants
from benchmarks.calibration.machine import measure_bandwidth
from benchmarks.calibration.model_files import shape_from_facts
from benchmarks.calibration.planner_bridge import planner_decode_bytes
from benchmarks.calibration.run import _default_sweep
from components.models.facts import load_model_facts
from components.sizing.calibration import DEFAULT_CALIBRATION
from tools.synthetic_gguf import PRESETS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("model", "preset"),
    [
        ("qwen2.5-0.5b-instruct", "qwen2.5-0.5b"),
        ("phi-3.5-mini-instruct", "phi-3.5-mini"),
        ("llama-3.1-8b-instruct", "llama-3.1-8b"),
    ],
)
def test_shape_from_facts_matches_the_published_architecture(model, preset):
    """The facts files have no FFN width; solving it from the parameter count must give
    the real models' n_ff (Qwen2.5-0.5B 4864, Phi-3.5-mini 8192, Llama-3.1-8B 14336)."""
    shape = shape_from_facts(load_model_facts(model))
    expected = PRESETS[preset]
    for key in ("n_layers", "n_embd", "n_head", "n_head_kv", "n_ff", "n_vocab"):
        assert shape[key] == expected[key], key
    assert shape["tie_embeddings"] == bool(expected.get("tie_embeddings", False))


def test_default_thread_sweep_doubles_up_to_the_cpu_count():
    assert _default_sweep(1) == [1]
    assert _default_sweep(2) == [1, 2]
    assert _default_sweep(6) == [1, 2, 4, 6]


def test_bandwidth_probe_reports_a_plausible_rate():
    gbs = measure_bandwidth(1, "read", nbytes=64 * 1024**2, rounds=2)
    assert 0.5 < gbs < 2000


def test_implied_constants_invert_the_planner_decode_formula():
    """A run at exactly the speed the default constants predict implies those constants."""
    facts = load_model_facts("qwen2.5-0.5b-instruct")
    c = DEFAULT_CALIBRATION
    host_gbs = 30.0
    effective = min(host_gbs, 1 * c.per_core_bandwidth_gbs) * c.cpu_bandwidth_efficiency
    seconds = planner_decode_bytes(facts) / (effective * 1e9) + c.decode_overhead_ms / 1000
    runs = [{"threads": 1, "decode_tokens_per_s": 1 / seconds, "ttft_ms": None}]
    implied = implied_constants(runs, facts, {"multi_read_gbs": host_gbs}, None, "avx2")
    assert implied["effective_gbs"]["1"] == pytest.approx(effective)


@pytest.mark.slow
def test_calibration_runs_end_to_end_on_the_smallest_shape(tmp_path):
    pytest.importorskip("llama_cpp.server")
    try:
        proc = subprocess.run(
            [
                sys.executable, "-m", "benchmarks.calibrate_cpu",
                "--threads-sweep", "1", "--requests", "1", "--max-tokens", "4",
                "--bandwidth-gbs", "20", "--quiet-wait", "0", "--attempts", "1",
                "--cache-dir", str(tmp_path), "--json", "--no-progress",
            ],
            cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        for model_file in tmp_path.glob("*.gguf"):
            model_file.unlink()  # 280 MB; pytest keeps the last three temp trees
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["prompt"]["tokens"] == 64
    (run,) = data["runs"]
    assert run["errors"] == 0
    assert run["decode_tokens_per_s"] > 0
    assert run["estimate"]["tokens_per_s"] > 0
    assert data["planner_default"]["threads"] >= 1


def _synthetic_result(model: str, calibration, host_gbs: float = 30.0) -> dict:
    """A calibration result whose 'measurements' are the planner's own estimates under
    ``calibration``: fitting it must give constants that reproduce them."""
    from dataclasses import asdict

    from benchmarks.calibration.planner_bridge import planner_estimates
    from components.sizing.resources import HostResources

    facts = load_model_facts(model)
    host = HostResources.local(2, 2, 24 * 1024, host_gbs, cpu_isa="avx2")
    runs = []
    for threads in (1, 2):
        estimate = planner_estimates(host, facts, threads, 2.0, calibration)
        runs.append(
            {
                "threads": threads,
                "decode_tokens_per_s": estimate["tokens_per_s"],
                "ttft_ms": estimate["ttft_ms"],
            }
        )
    overhead = calibration.ttft_overhead_ms
    implied = implied_constants(runs, facts, {"multi_read_gbs": host_gbs}, overhead, "avx2")
    return {
        "model": model,
        "cpu_limit": None,
        "model_file": {"quantization": facts.quantization},
        "facts_for_planner": json.loads(facts.model_dump_json()),
        "host_for_planner": {k: v for k, v in asdict(host).items() if v is not None},
        "server_overhead_ttft_ms": overhead,
        "implied_calibration": implied,
        "runs": runs,
    }


def test_fit_recovers_constants_that_reproduce_the_measurements():
    from dataclasses import replace

    from benchmarks.calibration.fitting import fit

    truth = replace(
        DEFAULT_CALIBRATION,
        per_core_bandwidth_gbs=18.0,
        cpu_bandwidth_efficiency=0.8,
        decode_overhead_ms=3.0,
        prefill_gflops_per_core_avx2=90.0,
    )
    results = [
        _synthetic_result("qwen2.5-0.5b-instruct", truth),
        _synthetic_result("phi-3.5-mini-instruct", truth),
    ]
    data = fit(results)
    assert data["all_within_25_percent"]
    for check in data["checks"]:
        assert check["decode_ratio_proposed"] == pytest.approx(1.0, abs=0.03)
        assert check["ttft_ratio_proposed"] == pytest.approx(1.0, abs=0.05)
    assert data["proposed_calibration"]["prefill_gflops_per_core_avx2"] == pytest.approx(
        90.0, rel=0.05
    )
