"""How long an EC2 host takes to its first token: a new host with nothing cached, and a
replacement that finds the image and the weights on the volume (issue 12, item 4).

Pure arithmetic over constants kept here with their sources. "Assumed" constants are not
measured on AWS (no AWS from the development machines); ``scripts/coldstart-report.sh``
measures the real boot timeline after a deploy, phase by phase, to check them.

- new host: boot + reading the new weights volume whole (the volume script formats only a
  volume that reads as zeros) + Docker install (plain Ubuntu only) + max(image pull,
  weights fetch) (they run in parallel) + model load from EBS + time to first token;
- replacement: boot + moving the volume (stop the old host, detach, attach) + model load
  from EBS + time to first token (the image and the verified weights are on the volume).
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9
MIB = 1024**2


@dataclass(frozen=True)
class ColdStartConstants:
    ec2_boot_s: float = 40.0
    """Assumed: RunInstances to cloud-init's final stage on Ubuntu 24.04 / the DLAMI."""
    docker_install_s: float = 45.0
    """Assumed: ``apt-get install docker.io`` on plain Ubuntu (the DLAMI ships Docker)."""
    registry_mb_per_s: float = 50.0
    """Assumed: Docker Hub pull including layer extraction."""
    huggingface_mb_per_s: float = 60.0
    """Assumed: one HTTPS stream from Hugging Face's CDN."""
    volume_move_s: float = 60.0
    """Assumed: stop the old host (a clean unmount), detach, attach to the new one."""
    model_load_cached_s_per_gb: float = 1.27 / 2.15
    """Measured here: llama.cpp loads a 2.15 GB Phi-3.5-mini-shaped Q4_0 GGUF in 1.27-1.29 s
    from the page cache (6.87 s after dropping it, at this machine's disk speed); on EC2
    the file is read at the volume's throughput instead (below)."""
    cpu_image_bytes: float = 1.6 * GB
    """Assumed: localai/localai:v2.24.0-ffmpeg-core, compressed (not checked: no registry)."""
    gpu_image_bytes: float = 6.5 * GB
    """Assumed: the core CUDA 12 image, compressed (not checked: no registry)."""


DEFAULT_COLDSTART = ColdStartConstants()


@dataclass(frozen=True)
class ColdStartEstimate:
    new_host_s: float
    replacement_s: float
    restart_s: float = 0.0
    """The same host started again (a schedule's start): its volume never moved."""


def model_load_s(weights_bytes: float, volume_throughput_mibs: int, c: ColdStartConstants) -> float:
    """Reading the default model's file from EBS at the volume's throughput, plus what
    llama.cpp spends on a file already in memory."""
    read = weights_bytes / (volume_throughput_mibs * MIB)
    return read + weights_bytes / GB * c.model_load_cached_s_per_gb


def estimate(
    *,
    gpu: bool,
    install_docker: bool,
    all_weights_bytes: float,
    default_weights_bytes: float,
    volume_throughput_mibs: int,
    ttft_s: float,
    blank_volume_bytes: float = 0.0,
    constants: ColdStartConstants = DEFAULT_COLDSTART,
) -> ColdStartEstimate:
    """``blank_volume_bytes``: a new host's weights volume, read whole before it is
    formatted; a replacement keeps its formatted volume and reads none of it."""
    c = constants
    blank_check = blank_volume_bytes / (volume_throughput_mibs * MIB)
    image = (c.gpu_image_bytes if gpu else c.cpu_image_bytes) / (c.registry_mb_per_s * 1e6)
    fetch = all_weights_bytes / (c.huggingface_mb_per_s * 1e6)
    load = model_load_s(default_weights_bytes, volume_throughput_mibs, c)
    new_host = (
        c.ec2_boot_s + blank_check + (c.docker_install_s if install_docker else 0.0)
        + max(image, fetch) + load + ttft_s
    )  # fmt: skip
    replacement = c.ec2_boot_s + c.volume_move_s + load + ttft_s
    restart = c.ec2_boot_s + load + ttft_s
    return ColdStartEstimate(round(new_host, 1), round(replacement, 1), round(restart, 1))
