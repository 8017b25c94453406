"""components/sizing/coldstart.py: the arithmetic, on a worked example, and the outputs."""

from __future__ import annotations

import pytest

from components.sizing.coldstart import ColdStartConstants, estimate
from tests.support.program_run import localai_keys, run_program
from tests.support.pulumi_mocks import RecordingMocks, stack_config

C = ColdStartConstants(
    ec2_boot_s=40, docker_install_s=45, registry_mb_per_s=50, huggingface_mb_per_s=60,
    volume_move_s=60, model_load_cached_s_per_gb=0.5, cpu_image_bytes=1.6e9,
    gpu_image_bytes=6.5e9,
)  # fmt: skip


def test_a_new_cpu_host_pulls_and_fetches_in_parallel() -> None:
    # weights 2.4 GB: fetch 2.4e9 / 60e6 = 40 s; image 1.6e9 / 50e6 = 32 s -> max = 40 s.
    # load: 2.4e9 / (250 MiB/s = 262,144,000 B/s) = 9.155 s + 2.4 x 0.5 = 1.2 s -> 10.355 s.
    # new host: 40 + 45 + 40 + 10.355 + 1.3 = 136.655 -> 136.7
    # replacement: 40 + 60 + 10.355 + 1.3 = 111.655 -> 111.7
    # a scheduled start of the same host (no volume move): 40 + 10.355 + 1.3 -> 51.7
    result = estimate(
        gpu=False, install_docker=True, all_weights_bytes=2.4e9, default_weights_bytes=2.4e9,
        volume_throughput_mibs=250, ttft_s=1.3, constants=C,
    )  # fmt: skip
    assert (result.new_host_s, result.replacement_s, result.restart_s) == (136.7, 111.7, 51.7)


def test_on_a_gpu_host_the_bigger_image_dominates_and_docker_is_preinstalled() -> None:
    # image 6.5e9 / 50e6 = 130 s > fetch (7.3e9 / 60e6 = 121.7 s); no Docker install.
    # load: 4.9e9 / 262,144,000 = 18.692 s + 4.9 x 0.5 = 2.45 s -> 21.142 s.
    # new host: 40 + 130 + 21.142 + 0.2 = 191.342 -> 191.3; replacement: 40+60+21.142+0.2
    result = estimate(
        gpu=True, install_docker=False, all_weights_bytes=7.3e9, default_weights_bytes=4.9e9,
        volume_throughput_mibs=250, ttft_s=0.2, constants=C,
    )  # fmt: skip
    assert (result.new_host_s, result.replacement_s) == (191.3, 121.3)


def test_more_volume_throughput_shortens_both() -> None:
    slow = estimate(
        gpu=False,
        install_docker=True,
        all_weights_bytes=2.4e9,
        default_weights_bytes=2.4e9,
        volume_throughput_mibs=125,
        ttft_s=1,
        constants=C,
    )
    fast = estimate(gpu=False, install_docker=True, all_weights_bytes=2.4e9,
                    default_weights_bytes=2.4e9, volume_throughput_mibs=1000, ttft_s=1, constants=C)  # fmt: skip
    assert fast.new_host_s < slow.new_host_s and fast.replacement_s < slow.replacement_s


@pytest.mark.parametrize("stack", ["dev", "gpu"])
def test_the_aws_stacks_export_both_estimates(stack: str, pulumi_mocks: RecordingMocks) -> None:
    outputs = run_program(localai_keys(stack_config(stack)), stack=stack).outputs
    cold, replacement = outputs["estimatedColdStartSeconds"], outputs["estimatedReplacementSeconds"]
    assert isinstance(cold, int) and isinstance(replacement, int)
    assert 0 < replacement < cold
    print(stack, cold, replacement)


def test_a_new_host_reads_its_blank_volume_whole_first() -> None:
    """The volume script formats only a volume that reads as zeros (issue 18, item 20): a
    20 GiB volume at 250 MiB/s is 81.92 s more for a new host, nothing for a replacement."""
    args = dict(gpu=False, install_docker=True, all_weights_bytes=2.4e9,
                default_weights_bytes=2.4e9, volume_throughput_mibs=250, ttft_s=1, constants=C)  # fmt: skip
    without = estimate(**args)
    with_scan = estimate(**args, blank_volume_bytes=20 * 1024**3)
    assert with_scan.new_host_s == round(without.new_host_s + 81.92, 1)
    assert with_scan.replacement_s == without.replacement_s
