"""The memory model, on worked examples: every figure written out as arithmetic here.

Two synthetic models with round numbers, so each formula of components/sizing/memory.py
(see its docstring) is pinned to the byte, not to a range: a changed factor, constant or
operator moves at least one of these figures.
"""

from __future__ import annotations

import math

import pytest

from components.models.facts import ModelFacts
from components.sizing.memory import (
    Load,
    Shape,
    describe_need,
    fixed_vram,
    gib,
    offload_into,
    place,
)
from components.sizing.resources import HostResources

MIB = 1024 * 1024
GIB = 1024 * MIB

# 10 layers, 2 bytes per parameter, untied heads: attention scores dominate compute.
SMALL = ModelFacts(
    name="small-test",
    quantization="F16",
    file_size_bytes=10_000_000,
    parameters=5_000_000,
    layers=10,
    n_embd=64,
    heads=4,
    kv_heads=2,
    head_dim=32,
    vocab=1000,
    default_context=1000,
)
EMBEDDING = 1000 * 64 * 2.0  # vocab x n_embd x bytes per parameter = 128,000
LAYER = (10_000_000 - 2 * EMBEDDING) / 10  # 974,400 (two head matrices in the file)
KV_LAYER = 2 * 2 * 32 * 2 * 1024  # K and V x kv_heads x head_dim x f16 x n_ctx = 262,144
COMPUTE = 1.1 * max(1000 * 512 * 4, 1024 * 512 * 4 * 4)  # scores win: 9,227,468.8
PER_BLOCK = LAYER + KV_LAYER
FIXED_1 = 512 * MIB + COMPUTE  # CUDA context and cuBLAS workspace + compute, one GPU

# Tied heads and a large vocabulary: the logits dominate compute.
WIDE = ModelFacts(
    name="wide-test",
    quantization="F16",
    file_size_bytes=40_000_000,
    parameters=20_000_000,
    layers=10,
    n_embd=64,
    heads=4,
    kv_heads=4,
    head_dim=16,
    vocab=50_000,
    tied_embeddings=True,
    default_context=256,
)


def gpu_host(gpu_memory_mib: int, gpu_count: int = 1) -> HostResources:
    return HostResources(
        name="gpu-test",
        vcpus=4,
        physical_cores=2,
        memory_mib=16384,
        arch="x86_64",
        gpu_count=gpu_count,
        gpu_memory_mib=gpu_memory_mib,
        gpu_memory_bandwidth_gbs=300.0,
    )


class TestShape:
    def test_every_figure_of_an_untied_model(self):
        shape = Shape.of(SMALL, 1000)
        assert shape.n_ctx == 1024
        assert shape.token_embd == 128_000
        assert shape.output == 128_000
        assert shape.layer == pytest.approx(974_400, rel=1e-12)
        assert shape.kv_layer == 262_144
        assert shape.compute == pytest.approx(9_227_468.8, rel=1e-12)
        assert (shape.layer, shape.kv_layer, shape.compute) == (LAYER, KV_LAYER, COMPUTE)

    def test_a_tied_model_has_one_head_matrix_in_the_file_and_logits_win(self):
        shape = Shape.of(WIDE, 256)
        embedding = 50_000 * 64 * 2.0  # 6,400,000
        assert shape.token_embd == shape.output == embedding
        assert shape.layer == pytest.approx((40_000_000 - embedding) / 10, rel=1e-12)
        assert shape.kv_layer == 2 * 4 * 16 * 2 * 256
        # logits 50,000 x 512 x 4 = 102,400,000 beat scores 256 x 512 x 4 x 4 = 2,097,152
        assert shape.compute == pytest.approx(1.1 * 102_400_000, rel=1e-12)

    @pytest.mark.parametrize(
        ("context", "n_ctx"),
        [(1, 256), (255, 256), (256, 256), (257, 512), (1024, 1024), (1025, 1280)],
    )
    def test_the_context_is_padded_up_to_a_multiple_of_256(self, context, n_ctx):
        assert Shape.of(SMALL, context).n_ctx == n_ctx


class TestLoadOnCpu:
    load = Load(Shape.of(SMALL, 1000), 0, False, 0)

    def test_everything_is_in_host_ram(self):
        load = self.load
        assert (load.gpu_blocks, load.full, load.gpu_layers) == (0, False, 0)
        assert load.host_weights == 10_000_000
        assert load.host_kv == 10 * KV_LAYER
        assert load.host_runtime == pytest.approx(COMPUTE + 160 * MIB, rel=1e-12)
        assert load.host_total == pytest.approx(
            10_000_000 + 10 * KV_LAYER + COMPUTE + 160 * MIB, rel=1e-12
        )
        assert load.vram_total == 0.0

    def test_a_cpu_load_that_is_not_placeable_still_needs_no_vram(self):
        load = Load(Shape.of(SMALL, 1000), 0, False, 0, placeable=False)
        assert load.vram_total == 0.0
        assert load.host_total == math.inf


class TestLoadOnGpu:
    def test_a_partial_offload_splits_weights_and_cache_by_layer(self):
        load = Load(Shape.of(SMALL, 1000), 4, True, 1)
        assert (load.gpu_blocks, load.full, load.gpu_layers) == (4, False, 4)
        assert load.host_weights == pytest.approx(10_000_000 - 4 * LAYER, rel=1e-12)
        assert load.host_kv == 6 * KV_LAYER
        # Not full: the whole compute buffer on the host too, plus the CUDA host overhead.
        assert load.host_runtime == pytest.approx(COMPUTE + (160 + 512) * MIB, rel=1e-12)
        assert load.vram_total == pytest.approx(FIXED_1 + 4 * PER_BLOCK, rel=1e-12)

    def test_every_layer_but_not_the_head(self):
        load = Load(Shape.of(SMALL, 1000), 10, True, 1)
        assert (load.gpu_blocks, load.full, load.gpu_layers) == (10, False, 10)
        assert load.host_weights == pytest.approx(10_000_000 - 10 * LAYER, rel=1e-12)
        assert load.host_kv == 0
        assert load.vram_total == pytest.approx(FIXED_1 + 10 * PER_BLOCK, rel=1e-12)

    def test_a_full_offload_moves_the_head_and_keeps_a_tenth_of_compute_on_the_host(self):
        load = Load(Shape.of(SMALL, 1000), 11, True, 1)
        assert (load.gpu_blocks, load.full, load.gpu_layers) == (10, True, 99)
        # Only the token embedding stays: 10,000,000 - 10 x 974,400 - 128,000 = 128,000.
        assert load.host_weights == pytest.approx(128_000, rel=1e-9)
        assert load.host_kv == 0
        assert load.host_runtime == pytest.approx(0.1 * COMPUTE + (160 + 512) * MIB, rel=1e-12)
        assert load.vram_total == pytest.approx(FIXED_1 + 10 * PER_BLOCK + 128_000, rel=1e-12)

    def test_a_full_offload_of_a_tied_model_keeps_the_shared_matrix_on_the_host(self):
        shape = Shape.of(WIDE, 256)
        load = Load(shape, 11, True, 1)
        assert load.host_weights == pytest.approx(40_000_000 - 10 * shape.layer, rel=1e-12)
        assert load.host_weights == pytest.approx(shape.token_embd, rel=1e-9)

    def test_two_gpus_each_pay_the_fixed_reserve(self):
        shape = Shape.of(SMALL, 1000)
        assert fixed_vram(shape, 2) == pytest.approx(2 * FIXED_1, rel=1e-12)
        load = Load(shape, 4, True, 2)
        assert load.vram_total == pytest.approx(2 * FIXED_1 + 4 * PER_BLOCK, rel=1e-12)

    def test_a_load_that_does_not_fit_is_infinite_on_both_sides(self):
        load = Load(Shape.of(SMALL, 1000), 0, True, 1, placeable=False)
        assert load.host_total == math.inf
        assert load.vram_total == math.inf


class TestOffloadInto:
    shape = Shape.of(SMALL, 1000)

    @pytest.mark.parametrize(
        ("vram_free", "blocks"),
        [
            (FIXED_1 - 1, None),  # not even the CUDA context and compute buffer
            (FIXED_1, 0),
            (FIXED_1 + PER_BLOCK - 1, 0),
            (FIXED_1 + PER_BLOCK, 1),
            (FIXED_1 + 3 * PER_BLOCK - 1, 2),
            (FIXED_1 + 3 * PER_BLOCK, 3),
            (FIXED_1 + 10 * PER_BLOCK + 128_000 - 1, 10),  # the head does not fit
            (FIXED_1 + 10 * PER_BLOCK + 128_000, 11),
            (FIXED_1 + 100 * PER_BLOCK, 11),
        ],
    )
    def test_whole_layers_then_the_head_at_both_sides_of_each_step(self, vram_free, blocks):
        assert offload_into(self.shape, vram_free, 1) == blocks

    def test_with_two_gpus_the_reserve_is_paid_twice(self):
        assert offload_into(self.shape, 2 * FIXED_1 - 1, 2) is None
        assert offload_into(self.shape, 2 * FIXED_1 + PER_BLOCK, 2) == 1


class TestPlace:
    def test_on_cpu_nothing_is_offloaded(self):
        shape = Shape.of(SMALL, 1000)
        placement = place(gpu_host(16), [("a", shape)], use_gpu=False, together=False)
        assert placement.loads == {"a": Load(shape, 0, False, 0)}
        assert placement.together is False

    def test_apart_each_model_gets_the_whole_vram(self):
        shape = Shape.of(SMALL, 1000)
        vram_mib = math.ceil((FIXED_1 + 3 * PER_BLOCK) / MIB)  # room for 3 blocks, not 4
        assert offload_into(shape, vram_mib * MIB, 1) == 3
        placement = place(
            gpu_host(vram_mib), [("a", shape), ("b", shape)], use_gpu=True, together=False
        )
        assert placement.loads == {"a": Load(shape, 3, True, 1), "b": Load(shape, 3, True, 1)}

    def test_together_the_second_model_gets_what_the_first_left(self):
        shape = Shape.of(SMALL, 1000)
        first = FIXED_1 + 10 * PER_BLOCK + 128_000  # the first model, fully offloaded
        vram_mib = math.ceil((first + FIXED_1 + 2 * PER_BLOCK) / MIB)
        placement = place(
            gpu_host(vram_mib), [("a", shape), ("b", shape)], use_gpu=True, together=True
        )
        left = vram_mib * MIB - first
        assert placement.loads["a"] == Load(shape, 11, True, 1)
        assert placement.loads["b"] == Load(shape, offload_into(shape, left, 1), True, 1)
        assert placement.loads["b"].offload == 2
        assert placement.together is True

    def test_a_model_whose_context_does_not_fit_is_marked_unplaceable(self):
        shape = Shape.of(SMALL, 1000)
        placement = place(gpu_host(512), [("a", shape)], use_gpu=True, together=False)
        assert placement.loads["a"] == Load(shape, 0, True, 1, False)


class TestMessages:
    def test_gib_has_two_decimals(self):
        assert gib(1.5 * GIB) == "1.50 GiB"
        assert gib(GIB / 3) == "0.33 GiB"

    def test_the_need_on_cpu_names_every_part(self):
        load = Load(Shape.of(SMALL, 1000), 0, False, 0)
        total = 10_000_000 + 10 * KV_LAYER + COMPUTE + (160 + 256) * MIB
        assert describe_need("small-test", load) == (
            f"small-test (F16, context 1024) needs {total / GIB:.2f} GiB of container memory: "
            f"weights {10_000_000 / GIB:.2f} GiB + KV cache {10 * KV_LAYER / GIB:.2f} GiB + "
            f"compute buffers and runtime {(COMPUTE + (160 + 256) * MIB) / GIB:.2f} GiB"
        )
        assert describe_need("small-test", load).startswith(
            "small-test (F16, context 1024) needs 0.43 GiB of container memory: "
        )

    def test_the_need_on_gpu_says_how_many_layers_are_offloaded(self):
        load = Load(Shape.of(SMALL, 1000), 4, True, 1)
        text = describe_need("small-test", load)
        assert (
            " of container memory with 4 of 10 layers on the GPU (the rest in host RAM): " in text
        )


# An odd number of layers and weights that do not divide evenly among them.
ODD = ModelFacts(
    name="odd-test",
    quantization="Q8_0",
    file_size_bytes=10_000_001,
    parameters=9_000_000,
    layers=7,
    n_embd=64,
    heads=4,
    kv_heads=1,
    head_dim=16,
    vocab=1000,
    default_context=512,
)


def test_a_layer_is_a_fraction_of_the_weights_not_a_floor():
    shape = Shape.of(ODD, 512)
    embedding = 1000 * 64 * (10_000_001 / 9_000_000)
    assert shape.layer == pytest.approx((10_000_001 - 2 * embedding) / 7, rel=1e-12)
    assert shape.layer != int(shape.layer)


def test_a_full_offload_of_an_odd_number_of_layers_is_layers_plus_one():
    shape = Shape.of(ODD, 512)
    room = fixed_vram(shape, 1) + 7 * (shape.layer + shape.kv_layer) + shape.output + 1
    assert offload_into(shape, room, 1) == 8
    assert Load(shape, 8, True, 1).gpu_layers == 99
    assert Load(shape, 7, True, 1).gpu_layers == 7


def test_loads_and_shapes_are_immutable_values():
    import dataclasses

    shape = Shape.of(SMALL, 1000)
    load = Load(shape, 0, False, 0)
    placement = place(gpu_host(16), [("a", shape)], use_gpu=False, together=False)
    for value, field in ((shape, "n_ctx"), (load, "offload"), (placement, "together")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 1)


def test_on_cpu_every_model_is_placed():
    a, b = Shape.of(SMALL, 1000), Shape.of(WIDE, 256)
    placement = place(gpu_host(16), [("a", a), ("b", b)], use_gpu=False, together=True)
    assert placement.loads == {"a": Load(a, 0, False, 0), "b": Load(b, 0, False, 0)}


def test_two_gpus_pool_their_memory():
    shape = Shape.of(SMALL, 1000)
    # Each GPU pays the reserve; together they hold 2 x vram_mib.
    vram_mib = math.ceil((2 * FIXED_1 + 3 * PER_BLOCK) / 2 / MIB)
    placement = place(gpu_host(vram_mib, gpu_count=2), [("a", shape)], use_gpu=True, together=False)
    assert placement.loads["a"] == Load(shape, 3, True, 2)


# The container-memory figure has two decimals of GiB (10.24 MiB): these weights put the
# total half a MiB on either side of 0.425 GiB, so the 256 MiB of the API process counts.
CPU_REST = 10 * KV_LAYER + COMPUTE + (160 + 256) * MIB
BOUNDARY = 0.425 * GIB


@pytest.mark.parametrize(("offset", "shown"), [(-MIB / 2, "0.42 GiB"), (MIB / 2, "0.43 GiB")])
def test_the_api_process_is_counted_once_in_the_need(offset: float, shown: str):
    file_size = round(BOUNDARY - CPU_REST + offset)
    facts = SMALL.model_copy(update={"file_size_bytes": file_size})
    load = Load(Shape.of(facts, 1000), 0, False, 0)
    assert f"needs {shown} of container memory" in describe_need("small-test", load)
    assert load.host_total + 256 * MIB == pytest.approx(BOUNDARY + offset, abs=1)


def test_place_takes_the_accelerator_and_sharing_by_keyword_only():
    shape = Shape.of(SMALL, 1000)
    with pytest.raises(TypeError):
        place(gpu_host(16), [("a", shape)], False, False)  # type: ignore[misc]


@pytest.mark.parametrize("offload", [0, 4, 11])
def test_a_cpu_load_renders_no_gpu_layers_whatever_its_offload(offload: int) -> None:
    """gpu_layers is what the model file gets: on a CPU plan always 0, even if a caller
    built the load with an offload (else the full-offload sentinel reaches a CPU host)."""
    assert Load(Shape.of(SMALL, 1000), offload, False, 0).gpu_layers == 0
    if offload:
        assert Load(Shape.of(SMALL, 1000), offload, True, 1).gpu_layers != 0
