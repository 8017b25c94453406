"""components/docker/target.py under Pulumi mocks: what the local container is made of."""

from __future__ import annotations

import pytest
import yaml

from components.docker.daemon import DaemonInfo
from components.docker.target import client_host
from components.weights.manifest import CONFIG_SYNC, FETCHER
from tests.support.program_run import NO_GPU_DAEMON, NVIDIA_DAEMON, run_program
from tests.support.pulumi_mocks import RecordingMocks

CONTAINER = "docker:index/container:Container"
SENTINEL_KEY = "sk-sentinel-0123456789abcdef"


def container(mocks: RecordingMocks) -> dict:
    return mocks.one(CONTAINER).inputs


def env_of(inputs: dict) -> dict[str, str]:
    envs = inputs["envs"]
    if isinstance(envs, dict):  # a secret list arrives wrapped
        envs = envs["value"]
    return dict(item.split("=", 1) for item in envs)


def test_cpu_image_volume_and_mounts(pulumi_mocks: RecordingMocks) -> None:
    run_program({})
    image = pulumi_mocks.one("docker:index/remoteImage:RemoteImage").inputs
    assert image["name"] == "localai/localai:v2.24.0-ffmpeg-core"
    volume = pulumi_mocks.one("docker:index/volume:Volume")
    assert volume.inputs["name"] == "localai-test-models"
    assert volume.retain_on_delete, "weights survive `pulumi destroy` by default"
    inputs = container(pulumi_mocks)
    assert inputs["volumes"] == [
        {"containerPath": "/build/models", "volumeName": "localai-test-models"}
    ]
    assert inputs.get("gpus") is None


def test_port_is_bound_to_loopback_by_default(pulumi_mocks: RecordingMocks) -> None:
    run_program({})
    assert container(pulumi_mocks)["ports"] == [
        {"internal": 8080, "external": 8080, "ip": "127.0.0.1"}
    ]


def test_port_and_bind_address_are_configurable(pulumi_mocks: RecordingMocks) -> None:
    result = run_program({"port": "9090", "bindAddress": "0.0.0.0", "allowNetworkBind": "true"})
    assert container(pulumi_mocks)["ports"] == [
        {"internal": 8080, "external": 9090, "ip": "0.0.0.0"}
    ]
    assert result.outputs["OPENAI_BASE_URL"] == "http://127.0.0.1:9090/v1"


def test_limits_restart_logs_and_healthcheck(pulumi_mocks: RecordingMocks) -> None:
    run_program({"cpuLimit": "3", "memoryLimitMb": "6144", "threads": "3"})
    inputs = container(pulumi_mocks)
    assert inputs["cpus"] == "3"
    assert inputs["memory"] == 6144
    assert inputs["memorySwap"] == 6144
    assert inputs["restart"] == "unless-stopped"
    assert inputs["logDriver"] == "json-file"
    assert inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}
    health = inputs["healthcheck"]
    assert health["tests"] == ["CMD", "curl", "-fsS", "http://localhost:8080/readyz"]
    assert health["startPeriod"] == "60m", "downloads keep the port closed for minutes"
    assert env_of(inputs)["THREADS"] == "3"


def test_limits_are_derived_from_the_daemon_when_not_configured(
    pulumi_mocks: RecordingMocks,
) -> None:
    small = DaemonInfo(reachable=True, ncpu=4, mem_total_bytes=8 * 1024**3, runtimes=frozenset())
    run_program({}, daemon=small)
    inputs = container(pulumi_mocks)
    assert float(inputs["cpus"]) == 4, "no quota below the thread count"
    assert inputs["cpuShares"] == 512, "the desktop wins under contention"
    assert 2048 < inputs["memory"] < 8192, "leave memory for the host"


def test_the_model_yamls_are_uploaded_rendered_for_cpu(pulumi_mocks: RecordingMocks) -> None:
    run_program({"models": '["phi-3.5-mini-instruct", "qwen2.5-0.5b-instruct"]'})
    uploaded = {u["file"]: u for u in container(pulumi_mocks)["uploads"]}
    configs = {
        path: yaml.safe_load(u["content"])
        for path, u in uploaded.items()
        if path.startswith("/etc/localai/models/")
    }
    assert set(configs) == {
        "/etc/localai/models/phi-3.5-mini-instruct.yaml",
        "/etc/localai/models/qwen2.5-0.5b-instruct.yaml",
        "/etc/localai/models/nomic-embed-text-v1.5.yaml",  # the embeddings model
    }
    assert all(cfg["gpu_layers"] == 0 for cfg in configs.values())
    # The shared scripts, byte for byte, executable; the manifest of both models' files.
    assert uploaded["/usr/local/sbin/localai-fetch-weights"]["content"] == FETCHER.read_text()
    assert uploaded["/usr/local/sbin/localai-sync-configs"]["content"] == CONFIG_SYNC.read_text()
    assert uploaded["/usr/local/sbin/localai-fetch-weights"]["executable"] is True
    manifest = uploaded["/etc/localai/weights.tsv"]["content"]
    assert "Phi-3.5-mini-instruct.Q4_K_M.gguf\t3f68916e" in manifest
    assert "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf\t6eb923e7" in manifest
    # Sync the configs (only those it installed), fetch and verify, then start LocalAI.
    entry = container(pulumi_mocks)["entrypoints"]
    assert entry[:2] == ["/bin/bash", "-c"]
    sync = "/usr/local/sbin/localai-sync-configs /etc/localai/models /build/models"
    fetch = "/usr/local/sbin/localai-fetch-weights /etc/localai/weights.tsv /build/models"
    assert (
        entry[2].index(sync) < entry[2].index(fetch) < entry[2].index("exec /build/entrypoint.sh")
    )
    assert "rm -f /build/models/*.yaml" not in entry[2], "never every YAML in the volume"
    assert entry[2].startswith("set -euo pipefail;")


def test_auto_uses_cuda_only_when_the_daemon_has_the_nvidia_runtime(
    pulumi_mocks: RecordingMocks,
) -> None:
    result = run_program({}, daemon=NVIDIA_DAEMON)
    image = pulumi_mocks.one("docker:index/remoteImage:RemoteImage").inputs
    assert image["name"] == "localai/localai:v2.24.0-cublas-cuda12-core"
    inputs = container(pulumi_mocks)
    assert inputs["gpus"] == "all"
    config = yaml.safe_load(inputs["uploads"][0]["content"])
    assert config["gpu_layers"] == 99, "a GPU host offloads every layer"
    assert result.outputs["accelerator"] == "gpu"


@pytest.mark.parametrize(
    "daemon",
    [NO_GPU_DAEMON, DaemonInfo(reachable=False, error="Cannot connect to the Docker daemon")],
    ids=["no-nvidia-runtime", "daemon-unreachable"],
)
def test_auto_falls_back_to_cpu(daemon: DaemonInfo, pulumi_mocks: RecordingMocks) -> None:
    result = run_program({}, daemon=daemon)
    assert result.outputs["accelerator"] == "cpu"
    assert container(pulumi_mocks).get("gpus") is None


def test_gpu_forces_cuda_and_cpu_forbids_it(pulumi_mocks: RecordingMocks) -> None:
    run_program({"accelerator": "gpu"}, daemon=NO_GPU_DAEMON)
    assert container(pulumi_mocks)["gpus"] == "all"
    pulumi_mocks.resources.clear()
    run_program({"accelerator": "cpu"}, daemon=NVIDIA_DAEMON)
    assert container(pulumi_mocks).get("gpus") is None
    image = pulumi_mocks.one("docker:index/remoteImage:RemoteImage").inputs
    assert image["name"].endswith("-ffmpeg-core")


def test_api_key_is_always_on_and_reaches_the_container_only_as_a_secret(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program({"apiKey": SENTINEL_KEY}, secret_keys=("apiKey",))
    inputs = container(pulumi_mocks)
    assert env_of(inputs)["API_KEY"] == SENTINEL_KEY
    assert isinstance(inputs["envs"], dict), "envs must be marked secret"
    command = pulumi_mocks.one("command:local:Command").inputs
    assert SENTINEL_KEY not in command["create"], "the key must not be on a command line"


def test_generated_key_is_a_random_password_without_special_characters(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program({})
    password = pulumi_mocks.one("random:index/randomPassword:RandomPassword").inputs
    assert password["special"] is False
    assert password["length"] >= 32


def test_up_waits_for_the_default_model_to_answer(pulumi_mocks: RecordingMocks) -> None:
    run_program({"models": '["qwen2.5-0.5b-instruct"]', "readyTimeoutSeconds": "900"})
    ready = pulumi_mocks.one("command:local:Command")
    create = ready.inputs["create"]
    assert "-m components.readiness " in create  # the command line every deployed stack has
    assert "--base-url http://127.0.0.1:8080/v1" in create
    assert "--model qwen2.5-0.5b-instruct" in create
    assert "--timeout 900" in create
    assert "docker logs localai-test" in create, "the failure says where to look"
    assert ready.inputs["triggers"] == ["localai-container-id"], "re-run on a new container"
    assert any("Container::localai-container" in dep for dep in ready.dependencies)


def test_waiting_can_be_turned_off(pulumi_mocks: RecordingMocks) -> None:
    run_program({"waitForReady": "false"})
    assert not pulumi_mocks.of_type("command:local:Command")


def test_children_are_parented_to_the_component(pulumi_mocks: RecordingMocks) -> None:
    run_program({})
    for registration in pulumi_mocks.resources:
        if registration.custom:
            assert "localai:docker:LocalTarget" in registration.parent, registration.urn


@pytest.mark.parametrize(
    ("bind", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "[::1]"),
        ("10.1.2.3", "10.1.2.3"),
    ],
)
def test_client_host_for_a_bind_address(bind: str, host: str) -> None:
    assert client_host(bind) == host


# --- a local GPU is planned like an EC2 one (issue 12, item 7) -----------------------------


def local_gpu(vram_mib: int):
    from components.sizing.resources import HostResources

    return lambda: HostResources.local(
        8, 8, 32 * 1024, arch="x86_64", cpu_isa="avx2",
        gpu_count=1, gpu_memory_mib=vram_mib, gpu_model="T4",
    )  # fmt: skip


def uploaded_gpu_layers(mocks: RecordingMocks) -> dict[str, int]:
    return {
        u["file"].rsplit("/", 1)[1]: yaml.safe_load(u["content"])["gpu_layers"]
        for u in container(mocks)["uploads"]
        if u["file"].startswith("/etc/localai/models/")
    }


def test_a_local_gpu_too_small_for_the_model_gets_a_split(pulumi_mocks: RecordingMocks) -> None:
    run_program(
        {"models": '["llama-3.1-8b-instruct"]', "accelerator": "gpu"},
        daemon=NVIDIA_DAEMON, local_host=local_gpu(4096),
    )  # fmt: skip
    layers = uploaded_gpu_layers(pulumi_mocks)["llama-3.1-8b-instruct.yaml"]
    assert 0 < layers < 32, "nvidia-smi's 4 GiB hold only part of the 8B model"


def test_a_local_gpu_that_holds_the_model_gets_every_layer(pulumi_mocks: RecordingMocks) -> None:
    run_program(
        {"models": '["llama-3.1-8b-instruct"]', "accelerator": "gpu"},
        daemon=NVIDIA_DAEMON, local_host=local_gpu(24 * 1024),
    )  # fmt: skip
    assert uploaded_gpu_layers(pulumi_mocks)["llama-3.1-8b-instruct.yaml"] == 99


def test_without_nvidia_smi_every_layer_is_offloaded_as_before(
    pulumi_mocks: RecordingMocks,
) -> None:
    run_program({"models": '["llama-3.1-8b-instruct"]', "accelerator": "gpu"}, daemon=NVIDIA_DAEMON)
    assert uploaded_gpu_layers(pulumi_mocks)["llama-3.1-8b-instruct.yaml"] == 99
