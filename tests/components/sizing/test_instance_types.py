"""The supported EC2 catalog: lookups, error messages and internal consistency."""

from __future__ import annotations

import itertools

import pytest

from components.sizing.instance_types import (
    BURSTABLE_FAMILIES,
    CATALOG,
    FAMILIES,
    GPU_FAMILIES,
    InstanceType,
    UnknownInstanceTypeError,
    cpu_types,
    gpu_types,
    lookup,
)

ARM_FAMILIES = {"c7g", "m7g", "c8g"}
SMT_FAMILIES = {"c7i", "m7i", "r7i", "t3", "g4dn", "g5", "g6", "g6e"}
NO_SMT_FAMILIES = {"c7a", "m7a", "c7g", "m7g", "c8g"}
GIB_PER_VCPU = {"c7i": 2, "m7i": 4, "r7i": 8, "c7a": 2, "m7a": 4, "c7g": 2, "m7g": 4, "c8g": 2}
GPU_BANDWIDTH = {"T4": 320, "A10G": 600, "L4": 300, "L40S": 864}


def test_lookup_returns_the_default_cpu_stack_type() -> None:
    it = lookup("c7i.xlarge")
    assert (it.vcpus, it.physical_cores, it.memory_gib, it.arch) == (4, 2, 8.0, "x86_64")
    assert it.gpu_count == 0 and it.gpu_model is None
    # One socket: 8 channels x DDR5-4800 = 307.2 GB/s peak, ~80% of it achievable.
    assert it.memory_bandwidth_gbs == pytest.approx(245.8)
    assert it.hourly_usd == pytest.approx(0.1785)


def test_lookup_returns_the_default_gpu_stack_type() -> None:
    it = lookup("g6.xlarge")
    assert (it.vcpus, it.memory_gib, it.gpu_count, it.gpu_model) == (4, 16.0, 1, "L4")
    assert it.gpu_memory_gib * 1024 == pytest.approx(23034)  # what nvidia-smi reports
    assert it.gpu_memory_bandwidth_gbs == 300


def test_lookup_ignores_case_and_surrounding_spaces() -> None:
    assert lookup(" C7G.XLarge ") is CATALOG["c7g.xlarge"]


@pytest.mark.parametrize("name", ["x9z.large", "p5.48xlarge", "t2.micro", "", "c7"])
def test_unknown_family_is_refused_listing_the_supported_families(name: str) -> None:
    with pytest.raises(UnknownInstanceTypeError) as caught:
        lookup(name)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "unknown family" in message
    for family in FAMILIES:
        assert family in message


@pytest.mark.parametrize("name", ["c7i.nano", "c7i.metal", "g6.48xlarge", "c7i", "t3.micro"])
def test_unknown_size_is_refused_listing_that_familys_sizes(name: str) -> None:
    family = name.split(".")[0]
    with pytest.raises(UnknownInstanceTypeError) as caught:
        lookup(name)
    message = str(caught.value)
    assert f"family {family} comes in sizes {', '.join(FAMILIES[family])}" in message
    assert "unknown family" not in message


@pytest.mark.parametrize(
    ("name", "physical"),
    [
        ("c7i.xlarge", 2),  # Intel: two hyperthreads per core
        ("m7i.2xlarge", 4),
        ("c7a.xlarge", 4),  # AMD Genoa on EC2: one core per vCPU
        ("c7g.xlarge", 4),  # Graviton: no SMT
        ("c8g.2xlarge", 8),
        ("t3.medium", 1),
        ("g6.xlarge", 2),  # EPYC hosts of g5/g6/g6e do run SMT
        ("g6e.12xlarge", 24),
    ],
)
def test_physical_cores_follow_the_familys_smt(name: str, physical: int) -> None:
    assert lookup(name).physical_cores == physical


def test_cpu_families_cover_large_to_16xlarge() -> None:
    for family in ("c7i", "m7i", "r7i", "c7a", "m7a", "c7g", "m7g", "c8g"):
        sizes = FAMILIES[family]
        assert sizes[0] == "large" and sizes[-1] == "16xlarge"
        assert {"xlarge", "2xlarge", "4xlarge", "8xlarge"} <= set(sizes)


def test_multi_gpu_sizes_have_four_gpus() -> None:
    for family in ("g4dn", "g5", "g6", "g6e"):
        assert lookup(f"{family}.12xlarge").gpu_count == 4
        assert lookup(f"{family}.xlarge").gpu_count == 1


def test_only_t3_is_burstable() -> None:
    assert {"t3"} == BURSTABLE_FAMILIES
    assert [t.name for t in CATALOG.values() if t.burstable] == [
        "t3.medium",
        "t3.large",
        "t3.xlarge",
        "t3.2xlarge",
    ]


def test_cpu_and_gpu_views_partition_the_catalog() -> None:
    assert {t.name for t in cpu_types()} | {t.name for t in gpu_types()} == set(CATALOG)
    assert not {t.name for t in cpu_types()} & {t.name for t in gpu_types()}
    assert {t.family for t in gpu_types()} == GPU_FAMILIES == {"g4dn", "g5", "g6", "g6e"}


@pytest.mark.parametrize("it", list(CATALOG.values()), ids=list(CATALOG))
def test_every_catalog_entry_is_internally_consistent(it: InstanceType) -> None:
    assert it.name == f"{it.family}.{it.size}" and it.size in FAMILIES[it.family]
    assert 1 <= it.physical_cores <= it.vcpus
    if it.family in SMT_FAMILIES:
        assert it.physical_cores * 2 == it.vcpus
    else:
        assert it.family in NO_SMT_FAMILIES and it.physical_cores == it.vcpus
    assert it.arch == ("arm64" if it.family in ARM_FAMILIES else "x86_64")
    assert (it.cpu_isa == "arm64") == (it.arch == "arm64")
    assert it.memory_gib > 0 and it.hourly_usd > 0
    # The instance's share of its host's DRAM bandwidth: positive, below a whole socket.
    assert 0 < it.memory_bandwidth_gbs <= 1100
    if it.family in GIB_PER_VCPU:
        assert it.memory_gib == GIB_PER_VCPU[it.family] * it.vcpus
    if it.family in GPU_FAMILIES:
        assert it.gpu_count >= 1 and it.gpu_model in GPU_BANDWIDTH
        assert it.gpu_memory_bandwidth_gbs == GPU_BANDWIDTH[it.gpu_model]
        assert 14 < it.gpu_memory_gib < 48
    else:
        assert it.gpu_count == 0 and it.gpu_model is None
        assert it.gpu_memory_gib == 0 and it.gpu_memory_bandwidth_gbs == 0


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in GPU_FAMILIES])
def test_price_and_bandwidth_grow_with_size_in_cpu_families(family: str) -> None:
    types = [lookup(f"{family}.{size}") for size in FAMILIES[family]]
    for smaller, larger in itertools.pairwise(types):
        assert smaller.hourly_usd < larger.hourly_usd
        assert smaller.memory_bandwidth_gbs <= larger.memory_bandwidth_gbs
        assert smaller.memory_gib <= larger.memory_gib


def test_bandwidth_is_the_sockets_achievable_bandwidth_for_every_size() -> None:
    """AWS does not partition memory bandwidth; cores bound what a small type pulls
    (sizing's per-core figure). The vCPU-share model put a 2-vCPU Genoa at 9.6 GB/s
    where one measured 30-35 GB/s."""
    small, big = lookup("c7g.xlarge"), lookup("c7g.16xlarge")
    assert small.memory_bandwidth_gbs == big.memory_bandwidth_gbs == pytest.approx(245.8)
    assert lookup("c7a.large").memory_bandwidth_gbs == pytest.approx(368.6)  # Genoa 460.8


def test_describe_names_the_type_its_resources_and_price() -> None:
    assert lookup("c7g.xlarge").describe() == "c7g.xlarge (4 vCPU, 8 GiB, arm64, ~$0.145/h)"
    assert "1x L4 22.5 GiB" in lookup("g6.xlarge").describe()
