"""The batched decode roofline against the single-stream estimate it extends."""

from __future__ import annotations

import pytest

from components.models.facts import load_facts_for
from components.sizing.calibration import DEFAULT_CALIBRATION
from components.sizing.instance_types import lookup
from components.sizing.memory import Shape, place
from components.sizing.resources import HostResources
from components.sizing.speed import batched_tokens_per_second, estimates

MODELS = ["phi-3.5-mini-instruct", "llama-3.1-8b-instruct", "qwen2.5-0.5b-instruct"]


def load_on(instance: str, model: str, *, gpu: bool):
    host = HostResources.from_instance_type(lookup(instance))
    ((name, facts),) = load_facts_for([model])
    placement = place(host, [(name, Shape.of(facts, 4096))], use_gpu=gpu, together=True)
    return host, placement.loads[name]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("instance", "gpu"), [("c7a.xlarge", False), ("g6.xlarge", True)])
def test_one_slot_is_the_single_stream_decode_speed(instance, gpu, model) -> None:
    host, load = load_on(instance, model, gpu=gpu)
    single, _ttft = estimates(host, load, cores_used=4, calibration=DEFAULT_CALIBRATION)
    one = batched_tokens_per_second(
        host, load, slots=1, cores_used=4, calibration=DEFAULT_CALIBRATION
    )
    assert one == pytest.approx(single, rel=1e-9)


@pytest.mark.parametrize(("instance", "gpu"), [("c7a.xlarge", False), ("g6.xlarge", True)])
def test_more_slots_give_more_tokens_a_second_but_each_slot_fewer(instance, gpu) -> None:
    host, load = load_on(instance, "phi-3.5-mini-instruct", gpu=gpu)
    speeds = [
        batched_tokens_per_second(
            host, load, slots=n, cores_used=4, calibration=DEFAULT_CALIBRATION
        )
        for n in (1, 2, 4, 8)
    ]
    assert speeds == sorted(speeds)
    assert speeds[1] > speeds[0]
    per_slot = [s / n for s, n in zip(speeds, (1, 2, 4, 8), strict=True)]
    assert per_slot == sorted(per_slot, reverse=True)


def test_on_a_cpu_the_arithmetic_caps_the_batch() -> None:
    # c7a.xlarge, 4 cores at 97.3 GFLOP/s: a batch is bound by 2 FLOP per weight parameter
    # per slot once that exceeds one read of the weights. Past it, more slots add only
    # their KV reads and overheads, so the total stays flat.
    host, load = load_on("c7a.xlarge", "phi-3.5-mini-instruct", gpu=False)
    s = load.shape
    params = (s.facts.layers * s.layer + s.output) / s.facts.bytes_per_parameter
    rate = 4 * DEFAULT_CALIBRATION.prefill_gflops_per_core_avx2 * 1e9
    bandwidth = min(host.memory_bandwidth_gbs, 4 * 19.0) * 0.82 * 1e9
    kv = s.facts.layers * (s.kv_layer / s.n_ctx) * 192 / bandwidth
    for n in (2, 4, 8):
        assert 2 * n * params / rate > s.facts.layers * s.layer / bandwidth  # compute bound
        expected = n / (2 * n * params / rate + n * (kv + 0.003))
        got = batched_tokens_per_second(
            host, load, slots=n, cores_used=4, calibration=DEFAULT_CALIBRATION
        )
        assert got == pytest.approx(expected, rel=1e-9)


def test_no_slot_is_refused() -> None:
    host, load = load_on("c7a.xlarge", "phi-3.5-mini-instruct", gpu=False)
    with pytest.raises(ValueError, match="slots must be >= 1"):
        batched_tokens_per_second(
            host, load, slots=0, cores_used=4, calibration=DEFAULT_CALIBRATION
        )
