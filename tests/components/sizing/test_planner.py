"""Hardware-aware sizing: fit checks, limits, GPU offload, estimates and the EBS volume."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from components.models.facts import ModelFacts, load_model_facts
from components.sizing.instance_types import CATALOG, InstanceType, lookup
from components.sizing.planner import (
    DEFAULT_CALIBRATION,
    GPU_LAYERS_ALL,
    TTFT_TARGET_MS,
    HostResources,
    SizingError,
    SizingPlan,
    plan,
    volume_size_gb,
)

PHI = "phi-3.5-mini-instruct"
LLAMA = "llama-3.1-8b-instruct"
QWEN = "qwen2.5-0.5b-instruct"


def facts(name: str) -> ModelFacts:
    loaded = load_model_facts(name)
    assert loaded is not None, name
    return loaded


def host(name: str) -> HostResources:
    return HostResources.from_instance_type(lookup(name))


def plan_on(
    target: HostResources | str,
    names: list[str],
    *,
    use_gpu: bool = False,
    context: dict[str, int] | None = None,
    parallel: int = 1,
    **kwargs,
) -> SizingPlan:
    resources = host(target) if isinstance(target, str) else target
    return plan(
        resources,
        [(n, facts(n)) for n in names],
        use_gpu=use_gpu,
        context_size=context or {},
        parallel_requests=parallel,
        **kwargs,
    )


def named_types(message: str) -> list[InstanceType]:
    """Catalog types a message names, in order."""
    found = re.findall(r"\b([a-z][a-z0-9]*\.[0-9]*x?large|[a-z][a-z0-9]*\.medium)\b", message)
    return [lookup(name) for name in found if name in CATALOG]


def fits(it: InstanceType, names: list[str], **kwargs) -> bool:
    try:
        plan_on(it.name, names, **kwargs)
    except SizingError:
        return False
    return True


def fake_gpu_host(vram_mib: int) -> HostResources:
    return HostResources(
        name=f"fake-{vram_mib}-mib-gpu",
        vcpus=8,
        physical_cores=4,
        memory_mib=32 * 1024,
        arch="x86_64",
        gpu_count=1,
        gpu_memory_mib=vram_mib,
        memory_bandwidth_gbs=50.0,
        gpu_memory_bandwidth_gbs=300.0,
        hourly_usd=None,
        gpu_model="L4",
    )


# -- memory fit -------------------------------------------------------------------------------


def test_8b_model_on_a_4_gib_type_is_refused_with_the_numbers_and_a_type_that_fits() -> None:
    with pytest.raises(SizingError) as caught:
        plan_on("t3.medium", [LLAMA])
    message = str(caught.value)
    # needed = weights + KV cache (8192 tokens x 128 KiB) + buffers; available = 4 - 1 GiB.
    assert re.search(r"needs 6\.\d\d GiB of container memory", message), message
    assert "weights 4.58 GiB + KV cache 1.00 GiB + compute buffers and runtime" in message
    assert "t3.medium gives the container 3.00 GiB (4.00 GiB - 1.00 GiB kept for the OS)" in message
    suggested = named_types(message.split("fits:")[1])[0]
    assert fits(suggested, [LLAMA])


def test_the_suggested_type_is_the_cheapest_of_the_hosts_arch_that_fits() -> None:
    with pytest.raises(SizingError) as caught:
        plan_on("t3.medium", [LLAMA])
    suggested, cheaper_arm = named_types(str(caught.value).split("fits:")[1])
    assert suggested.arch == "x86_64" and not suggested.burstable and suggested.gpu_count == 0
    for it in CATALOG.values():
        if it.hourly_usd < suggested.hourly_usd and it.arch == "x86_64" and not it.burstable:
            assert it.gpu_count or not fits(it, [LLAMA]), f"{it.name} is cheaper and fits"
    assert cheaper_arm.arch == "arm64" and cheaper_arm.hourly_usd < suggested.hourly_usd
    assert fits(cheaper_arm, [LLAMA])


def test_a_2_gib_host_refuses_the_8b_model() -> None:
    tiny = HostResources("tiny", 2, 1, 2048, "x86_64", memory_bandwidth_gbs=10.0)
    with pytest.raises(SizingError, match=r"tiny gives the container 1\.00 GiB.*fits: \S+"):
        plan_on(tiny, [LLAMA])


def test_a_context_beyond_the_models_training_cannot_fit_anywhere() -> None:
    with pytest.raises(SizingError, match=r"contextSize 262144 cannot fit anywhere"):
        plan_on("r7i.16xlarge", [LLAMA], context={LLAMA: 262144})


def test_a_context_no_candidate_can_hold_is_refused_with_the_largest_that_fits() -> None:
    small_types = [lookup("c7i.xlarge"), lookup("c7i.2xlarge")]
    with pytest.raises(SizingError) as caught:
        plan_on("c7i.xlarge", [LLAMA], context={LLAMA: 131072}, candidates=small_types)
    message = str(caught.value)
    assert "KV cache 16.00 GiB" in message
    assert "No supported instance type fits this at the requested context" in message
    largest = int(re.search(r"fits c7i\.xlarge with contextSize <= (\d+)", message).group(1))
    assert 4096 < largest < 131072
    assert plan_on("c7i.xlarge", [LLAMA], context={LLAMA: largest})
    with pytest.raises(SizingError):
        plan_on("c7i.xlarge", [LLAMA], context={LLAMA: largest + 256})


def test_phi_with_its_default_context_fits_the_default_cpu_stack_with_room() -> None:
    result = plan_on("c7i.xlarge", [PHI])  # context from the facts: 4096
    assert result.per_request_context == {PHI: 4096}
    assert result.gpu_layers == {PHI: 0}
    assert result.memory_limit_mb == 8192 - 1024
    assert result.total_memory_needed_mib + 2048 < result.memory_limit_mb  # >= 2 GiB spare
    # weights 2.23 GiB + KV 1.5 GiB (no GQA) + buffers: well over the file size alone.
    assert 4 * 1024 < result.memory_needed_mib[PHI] < 5 * 1024


def test_an_8b_model_with_its_default_context_fits_an_8_gib_type() -> None:
    """Product requirement: 7B-and-smaller models within 8 GB of RAM."""
    result = plan_on("c7i.xlarge", [LLAMA])  # context 8192 from the facts
    assert result.total_memory_needed_mib <= result.memory_limit_mb == 7168


def test_parallel_requests_share_the_context_instead_of_multiplying_the_cache() -> None:
    one = plan_on("c7i.xlarge", [PHI], context={PHI: 4096}, parallel=1)
    four = plan_on("c7i.xlarge", [PHI], context={PHI: 4096}, parallel=4)
    assert four.total_memory_needed_mib == one.total_memory_needed_mib
    assert four.per_request_context == {PHI: 1024}
    eight = plan_on("c7i.xlarge", [PHI], context={PHI: 4096}, parallel=8)
    assert any("each request gets only 512 tokens" in w for w in eight.warnings)
    assert not any("each request gets" in w for w in four.warnings)
    # Prompt reuse is per slot: more slots, fewer follow-ups that reuse their prefix.
    reuse = [w for w in four.warnings if "keeps only its own last prompt" in w]
    assert reuse and reuse[0].startswith("parallelRequests 4: ")
    assert not any("keeps only its own last prompt" in w for w in one.warnings)


def test_memory_needed_grows_with_context() -> None:
    small = plan_on("m7i.2xlarge", [LLAMA], context={LLAMA: 2048})
    large = plan_on("m7i.2xlarge", [LLAMA], context={LLAMA: 16384})
    kv_growth_mib = (16384 - 2048) * 128 / 1024  # 128 KiB of f16 KV per token
    assert large.total_memory_needed_mib - small.total_memory_needed_mib >= kv_growth_mib


# -- several models ---------------------------------------------------------------------------


def test_models_that_fit_only_one_at_a_time_turn_on_single_active_backend() -> None:
    result = plan_on("c7i.xlarge", [LLAMA, PHI])  # 6.5 + 4.2 GiB > 7 GiB, each < 7 GiB
    assert result.single_active_backend
    assert any("SINGLE_ACTIVE_BACKEND" in w for w in result.warnings)
    assert result.total_memory_needed_mib <= result.memory_limit_mb


def test_models_that_fit_together_stay_loaded_together() -> None:
    result = plan_on("m7i.xlarge", [LLAMA, PHI])
    assert not result.single_active_backend
    needed = sum(result.memory_needed_mib.values())
    assert needed < result.total_memory_needed_mib <= result.memory_limit_mb


def test_a_model_without_facts_is_not_checked_but_warned_about() -> None:
    result = plan(
        host("c7i.xlarge"),
        [(PHI, facts(PHI)), ("my-own-model", None)],
        use_gpu=False,
        context_size={},
        parallel_requests=1,
    )
    assert result.gpu_layers == {PHI: 0, "my-own-model": 0}
    assert "my-own-model" not in result.memory_needed_mib
    assert any("my-own-model" in w and "not checked" in w for w in result.warnings)
    assert result.estimated_tokens_per_second is not None  # the default model is known


def test_a_default_model_without_facts_gets_no_estimates() -> None:
    result = plan(
        host("g6.xlarge"),
        [("my-own-model", None)],
        use_gpu=True,
        context_size={"my-own-model": 4096},
        parallel_requests=2,
    )
    assert result.estimated_tokens_per_second is None and result.estimated_ttft_ms is None
    assert result.gpu_layers == {"my-own-model": GPU_LAYERS_ALL}
    assert result.per_request_context == {"my-own-model": 2048}


# -- GPU offload --------------------------------------------------------------------------------


def test_llama_8b_is_fully_offloaded_on_g6_xlarge() -> None:
    result = plan_on("g6.xlarge", [LLAMA], use_gpu=True)
    assert result.gpu_layers == {LLAMA: GPU_LAYERS_ALL}
    assert result.vram_needed_mib[LLAMA] < 23034
    # Host RAM keeps only the token embedding, buffers and the process.
    assert result.memory_needed_mib[LLAMA] < 2048
    assert not any("layers fit" in w for w in result.warnings)


def test_llama_8b_is_split_on_a_4_gib_gpu() -> None:
    result = plan_on(fake_gpu_host(4096), [LLAMA], use_gpu=True)
    layers = result.gpu_layers[LLAMA]
    assert 0 < layers < 32
    assert result.vram_needed_mib[LLAMA] <= 4096
    assert any(f"only {layers} of 32 layers fit" in w for w in result.warnings)


def test_more_vram_offloads_more_layers_and_decodes_faster() -> None:
    small = plan_on(fake_gpu_host(4096), [LLAMA], use_gpu=True)
    large = plan_on(fake_gpu_host(6144), [LLAMA], use_gpu=True)
    assert small.gpu_layers[LLAMA] < large.gpu_layers[LLAMA]
    assert small.estimated_tokens_per_second < large.estimated_tokens_per_second
    assert large.memory_needed_mib[LLAMA] < small.memory_needed_mib[LLAMA]


def test_the_gpu_stack_keeps_both_models_on_the_gpu() -> None:
    result = plan_on("g6.xlarge", [LLAMA, PHI], use_gpu=True)
    assert result.gpu_layers == {LLAMA: GPU_LAYERS_ALL, PHI: GPU_LAYERS_ALL}
    assert not result.single_active_backend
    assert sum(result.vram_needed_mib.values()) < 23034


def test_models_packed_after_the_first_get_the_vram_that_is_left() -> None:
    result = plan_on(fake_gpu_host(8192), [LLAMA, PHI], use_gpu=True)
    assert result.gpu_layers[LLAMA] == GPU_LAYERS_ALL
    assert 0 <= result.gpu_layers[PHI] < 32
    assert any(f"{PHI}: only" in w and "models before it leave" in w for w in result.warnings)


def test_a_gpu_request_on_a_cpu_host_falls_back_to_cpu() -> None:
    result = plan_on("c7i.xlarge", [PHI], use_gpu=True)
    assert result.gpu_layers == {PHI: 0} and not result.use_gpu
    assert any("has none: planned for CPU only" in w for w in result.warnings)


def test_cpu_plans_on_a_gpu_host_offload_nothing() -> None:
    assert plan_on("g6.xlarge", [PHI], use_gpu=False).gpu_layers == {PHI: 0}


# -- threads and container limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "threads"), [("c7i.xlarge", 2), ("c7a.xlarge", 4), ("c7g.xlarge", 4)]
)
def test_threads_default_to_physical_cores(name: str, threads: int) -> None:
    assert plan_on(name, [QWEN]).threads == threads


def test_a_lower_cpu_limit_caps_threads_rounding_up() -> None:
    """2 threads in a 1.5-CPU quota measured faster than 1 (calibration_results.json)."""
    result = plan_on("c7a.2xlarge", [QWEN], cpu_limit=2.5)
    assert (result.threads, result.cpu_limit) == (3, 2.5)


def test_explicit_threads_are_kept_and_oversubscription_is_warned_about() -> None:
    result = plan_on("c7i.xlarge", [QWEN], threads=4)
    assert result.threads == 4
    assert any("threads=4 exceeds the 2 physical cores" in w for w in result.warnings)


@pytest.mark.parametrize("it", list(CATALOG.values()), ids=list(CATALOG))
def test_default_limits_leave_room_for_the_os(it: InstanceType) -> None:
    resources = HostResources.from_instance_type(it)
    memory_mib = it.memory_gib * 1024
    assert resources.default_memory_limit_mib <= memory_mib - max(1024, 0.1 * memory_mib)
    assert resources.default_cpu_limit <= it.vcpus
    # A quota below the default thread count throttles every token; the OS keeps its
    # room through memory, the container's lower CPU weight and, on SMT types, the
    # sibling hyperthreads.
    assert resources.default_cpu_limit >= it.physical_cores
    if it.physical_cores < it.vcpus:
        assert it.vcpus - 0.5 <= resources.default_cpu_limit < it.vcpus


def test_a_local_host_keeps_more_for_the_desktop() -> None:
    local = HostResources.local(8, 4, 16384)
    vm = HostResources("vm", 8, 4, 16384, "x86_64")
    assert local.default_memory_limit_mib == 16384 - 4096  # max(2 GiB, 25%)
    assert vm.default_memory_limit_mib < 16384
    assert local.default_memory_limit_mib < vm.default_memory_limit_mib
    assert local.default_cpu_limit == 7.0 and local.hourly_usd is None


def test_a_memory_limit_above_what_the_host_can_give_is_refused_with_numbers() -> None:
    with pytest.raises(SizingError, match=r"memoryLimitMb 8000 MiB .*8192 MiB - 1024 MiB .*7168"):
        plan_on("c7i.xlarge", [QWEN], memory_limit_mb=8000)


def test_a_cpu_limit_above_the_vcpus_is_refused() -> None:
    with pytest.raises(SizingError, match=r"cpuLimit 6 is more than c7i.xlarge has: 4 vCPUs"):
        plan_on("c7i.xlarge", [QWEN], cpu_limit=6)


def test_a_memory_limit_too_small_for_the_model_is_refused() -> None:
    with pytest.raises(SizingError, match=r"the container limit \(memoryLimitMb\) is 3\.00 GiB"):
        plan_on("c7i.xlarge", [PHI], memory_limit_mb=3072)
    assert plan_on("c7i.xlarge", [PHI], memory_limit_mb=5120).memory_limit_mb == 5120


def test_host_resources_reject_impossible_hardware() -> None:
    with pytest.raises(ValueError, match="physical_cores must be between 1 and vcpus=2"):
        HostResources("odd", 2, 4, 4096, "x86_64")
    with pytest.raises(ValueError, match="arch must be"):
        HostResources("odd", 2, 1, 4096, "riscv64")


# -- estimates -----------------------------------------------------------------------------------


def test_the_hourly_cost_is_the_instance_price() -> None:
    assert plan_on("c7i.xlarge", [PHI]).hourly_cost_usd == pytest.approx(0.1785)
    assert plan_on(HostResources.local(4, 4, 16384), [PHI]).hourly_cost_usd is None


def test_a_slow_first_token_warns_and_names_a_type_that_meets_the_target() -> None:
    result = plan_on("c7i.xlarge", [PHI])
    assert result.estimated_ttft_ms > TTFT_TARGET_MS
    warning = next(w for w in result.warnings if "time to first token" in w)
    assert f"{result.estimated_ttft_ms:.0f} ms, above the 500 ms target" in warning
    faster = named_types(warning.split("meets it:")[1])
    assert faster, warning
    for it in faster:
        assert it.gpu_count == 0  # same kind: a CPU plan suggests CPU types
        assert plan_on(it.name, [PHI]).estimated_ttft_ms <= TTFT_TARGET_MS


def test_the_gpu_stack_meets_the_ttft_target_without_a_warning() -> None:
    result = plan_on("g6.xlarge", [LLAMA, PHI], use_gpu=True)
    assert result.estimated_ttft_ms <= TTFT_TARGET_MS
    assert not any("time to first token" in w for w in result.warnings)


def test_decode_speed_follows_memory_bandwidth() -> None:
    cpu = plan_on("c7i.xlarge", [LLAMA])
    gpu = plan_on("g6.xlarge", [LLAMA], use_gpu=True)
    a10g = plan_on("g5.xlarge", [LLAMA], use_gpu=True)
    assert 1 < cpu.estimated_tokens_per_second < 10
    assert 30 < gpu.estimated_tokens_per_second < 60  # L4, 300 GB/s
    assert a10g.estimated_tokens_per_second > gpu.estimated_tokens_per_second  # 600 GB/s


def test_the_calibration_drives_the_estimates() -> None:
    base = replace(DEFAULT_CALIBRATION, decode_overhead_ms=0.0)
    default = plan_on("c7g.2xlarge", [PHI], calibration=base)
    faster = replace(
        base,
        cpu_bandwidth_efficiency=DEFAULT_CALIBRATION.cpu_bandwidth_efficiency * 2,
        prefill_gflops_per_core_arm64=DEFAULT_CALIBRATION.prefill_gflops_per_core_arm64 * 2,
    )
    tuned = plan_on("c7g.2xlarge", [PHI], calibration=faster)
    assert tuned.estimated_tokens_per_second == pytest.approx(
        default.estimated_tokens_per_second * 2, rel=0.05
    )
    assert tuned.estimated_ttft_ms < default.estimated_ttft_ms


# -- EBS volume -----------------------------------------------------------------------------------


def test_volume_fits_the_weights_with_headroom_in_steps_of_10() -> None:
    assert volume_size_gb([(PHI, facts(PHI))]) == 20  # the minimum
    assert volume_size_gb([(LLAMA, facts(LLAMA)), (PHI, facts(PHI))]) == 20  # 7.5 + 10
    # 2 unknown models at 16 GiB + 4.6 GiB x 1.1 + 10 GiB = 47.0 -> 50.
    assert volume_size_gb([(LLAMA, facts(LLAMA)), ("a", None), ("b", None)]) == 50


def test_unknown_models_get_a_conservative_allowance() -> None:
    assert volume_size_gb([("a", None)]) == 30  # 16 + 10 = 26 -> 30
    known = volume_size_gb([(QWEN, facts(QWEN))] * 3)
    assert volume_size_gb([("a", None)] * 3) > known


# --- partial offload on the CUDA image's generic kernels (issue 12, item 7) ----------------


def test_a_partial_offload_slower_than_the_cpu_image_is_warned_with_the_numbers() -> None:
    result = plan_on(fake_gpu_host(2048), [LLAMA], use_gpu=True)
    cpu = plan_on(fake_gpu_host(2048), [LLAMA], use_gpu=False)
    layers = result.gpu_layers[LLAMA]
    assert 0 < layers < 32
    assert result.estimated_tokens_per_second < cpu.estimated_tokens_per_second
    warning = next(w for w in result.warnings if "generic CPU kernels" in w)
    assert f"with {layers} of 32 layers on the GPU" in warning
    assert f"about {result.estimated_tokens_per_second:.1f} tokens/s" in warning
    assert f"slower than the CPU image's {cpu.estimated_tokens_per_second:.1f}" in warning


def test_no_generic_kernel_warning_on_full_offload_or_on_cpu() -> None:
    full = plan_on("g6.xlarge", [LLAMA], use_gpu=True)
    cpu = plan_on("c7a.xlarge", [LLAMA], use_gpu=False)
    for result in (full, cpu):
        assert not [w for w in result.warnings if "generic CPU kernels" in w]


def test_the_cuda_image_runs_cpu_layers_on_generic_kernels() -> None:
    from components.sizing.speed import kernel_isa

    host = fake_gpu_host(4096)
    assert kernel_isa(host, cuda_image=True) == "generic"
    assert kernel_isa(host) in ("avx2", "arm64")


# -- warnings fire exactly where they must, and nowhere else (issue 13) -------------------


def test_a_plain_plan_has_no_warnings():
    assert list(plan_on("c7i.xlarge", [QWEN]).warnings) == []
    assert list(plan_on("g6.xlarge", [PHI], use_gpu=True).warnings) == []


def test_the_burstable_warning_only_on_burstable_hosts():
    burstable = [t for t in CATALOG.values() if t.burstable]
    assert burstable, "the catalog has burstable types"
    warned = plan_on(HostResources.from_instance_type(burstable[-1]), [QWEN])
    assert [w for w in warned.warnings if "is burstable" in w] == [
        f"{burstable[-1].name} is burstable: sustained inference spends CPU credits and then "
        "runs at the baseline share (or bills surplus credits in unlimited mode)"
    ]
    assert not any("burstable" in w for w in plan_on("c7i.xlarge", [QWEN]).warnings)


def test_the_threads_warning_starts_one_past_the_physical_cores():
    cores = host("c7i.xlarge").physical_cores
    assert plan_on("c7i.xlarge", [QWEN], threads=cores).warnings == ()
    over = plan_on("c7i.xlarge", [QWEN], threads=cores + 1).warnings
    assert list(over) == [
        f"threads={cores + 1} exceeds the {cores} physical cores of c7i.xlarge: llama.cpp "
        "gets slower with SMT siblings or oversubscribed cores"
    ]


def test_the_per_request_context_warning_starts_below_1024_tokens():
    reuse = (
        "parallelRequests 4: requests run side by side, but each of the slots keeps only its "
        "own last prompt, so a conversation's follow-up re-reads its whole history unless it "
        "lands on its previous slot (with 1, each follow-up reads only its new turn)"
    )
    at_limit = plan_on("c7i.2xlarge", [QWEN], context={QWEN: 4096}, parallel=4)
    assert at_limit.warnings == (reuse,)
    below = plan_on("c7i.2xlarge", [QWEN], context={QWEN: 4095}, parallel=4)
    assert list(below.warnings) == [
        f"{QWEN}: llama.cpp splits contextSize 4095 across 4 parallel slots, so each request "
        "gets only 1023 tokens; raise contextSize to 4096 or lower parallelRequests",
        reuse,
    ]


def test_the_no_gpu_warning_only_when_a_gpu_was_asked_for():
    warned = plan_on("c7i.xlarge", [QWEN], use_gpu=True).warnings
    assert list(warned) == ["a GPU was requested but c7i.xlarge has none: planned for CPU only"]
    assert plan_on("c7i.xlarge", [QWEN], use_gpu=False).warnings == ()
