"""The weights volume's size, on worked examples at both sides of each rounding step.

``ceil((10 GiB + sum(file x 1.1) + 16 GiB per unknown model) / 10 GiB) x 10``, at least
20 (components/sizing/volume.py). Each figure is written out here, not imported.
"""

from __future__ import annotations

import pytest

from components.models.facts import ModelFacts
from components.sizing.volume import describe_weights, minimum_volume_gb, volume_size_gb

GIB = 1024**3
# The largest whole file whose x 1.1 stays under 20 GiB: 20 GiB / 1.1 = 19,522,578,618.18
UNDER_20_GIB = 19_522_578_618


def facts(name: str, file_size_bytes: int) -> ModelFacts:
    return ModelFacts(
        name=name,
        quantization="Q4_K_M",
        file_size_bytes=file_size_bytes,
        parameters=file_size_bytes * 8 // 4,  # 4 bits per parameter
        layers=32,
        n_embd=4096,
        heads=32,
        kv_heads=8,
        head_dim=128,
        vocab=32_000,
        default_context=4096,
    )


def test_the_boundary_sizes_are_what_the_comment_says():
    assert UNDER_20_GIB * 1.1 < 20 * GIB < (UNDER_20_GIB + 1) * 1.1


def test_no_models_is_the_minimum_of_20():
    assert volume_size_gb([]) == 20  # 10 GiB headroom rounds to 10, raised to 20


@pytest.mark.parametrize(
    ("file_size", "size"),
    [
        (UNDER_20_GIB, 30),  # 10 + 19.99... = 29.99... -> 30
        (UNDER_20_GIB + 1, 40),  # 10 + 20.00...1 -> 40
        (2 * GIB, 20),  # 10 + 2.2 = 12.2 -> 20
        (40 * GIB, 60),  # 10 + 44 = 54 -> 60
    ],
)
def test_one_model_at_both_sides_of_a_step(file_size, size):
    assert volume_size_gb([("m", facts("m", file_size))]) == size


def test_file_sizes_add_up():
    half = UNDER_20_GIB // 2  # two halves: 10 + 2 x 9.99... < 30
    models = [("a", facts("a", half)), ("b", facts("b", half))]
    assert volume_size_gb(models) == 30
    models = [("a", facts("a", half + 2)), ("b", facts("b", half + 2))]
    assert volume_size_gb(models) == 40


@pytest.mark.parametrize(("unknown", "size"), [(1, 30), (2, 50), (3, 60), (4, 80)])
def test_unknown_models_count_16_gib_each(unknown, size):
    # 10 + 16 = 26 -> 30; 42 -> 50; 58 -> 60; 74 -> 80
    assert volume_size_gb([(f"u{i}", None) for i in range(unknown)]) == size


def test_known_and_unknown_models_mix():
    # 10 + 16 + 3.99... = 29.99... -> 30; one byte more per GiB -> 40
    under_4_gib = 3_904_515_723  # 4 GiB / 1.1 = 3,904,515,723.6
    assert volume_size_gb([("u", None), ("k", facts("k", under_4_gib))]) == 30
    assert volume_size_gb([("u", None), ("k", facts("k", under_4_gib + 1))]) == 40


def test_the_minimum_is_the_weights_x_1_1_without_headroom():
    assert minimum_volume_gb([]) == 0
    assert minimum_volume_gb([("m", facts("m", UNDER_20_GIB))]) == 20
    assert minimum_volume_gb([("m", facts("m", UNDER_20_GIB + 1))]) == 21
    # Unknown models have no size to hold.
    assert minimum_volume_gb([("m", facts("m", UNDER_20_GIB)), ("u", None)]) == 20
    half = UNDER_20_GIB // 2
    assert minimum_volume_gb([("a", facts("a", half)), ("b", facts("b", half))]) == 20


def test_weights_are_described_in_decimal_gigabytes_without_unknown_models():
    models = [("a", facts("a", 2_390_000_000)), ("u", None), ("b", facts("b", 4_915_000_001))]
    assert describe_weights(models) == "a 2.39 GB + b 4.92 GB"
    assert describe_weights([("u", None)]) == ""


@pytest.mark.parametrize(
    ("file_size", "shown"), [(2_394_999_998, "2.39"), (2_395_000_002, "2.40"), (10**9, "1.00")]
)
def test_gigabytes_are_decimal_to_the_byte(file_size, shown):
    """A billion bytes, not 10**9 +- 1: these sizes sit two bytes from a rounding edge."""
    assert describe_weights([("m", facts("m", file_size))]) == f"m {shown} GB"
