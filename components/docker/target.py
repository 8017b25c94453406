"""The local Docker target: LocalAI in one container on the local Docker daemon."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.api_key import endpoint_api_key
from components.readiness.command import wait_for_endpoint
from components.serving import ServingArgs
from components.weights.manifest import CONFIG_SYNC, FETCHER

CONTAINER_PORT = 8080
MODELS_DIR = "/build/models"  # LocalAI v2.24.0: ${WORKDIR}/models, WORKDIR /build
CONFIG_STAGING_DIR = "/etc/localai/models"
HEALTHCHECK_START_PERIOD = "60m"  # the port stays closed while weights download
LOCAL_CPU_SHARES = 512  # Docker's default weight is 1024

WEIGHTS_MANIFEST = "/etc/localai/weights.tsv"
SYNC_CONFIGS = "/usr/local/sbin/localai-sync-configs"
FETCH_WEIGHTS = "/usr/local/sbin/localai-fetch-weights"
# The image's ENTRYPOINT is /build/entrypoint.sh (v2.24.0:Dockerfile; Ubuntu, with bash and
# curl). At each start, before it: the rendered configs (uploaded to a staging dir) replace
# the ones an earlier start installed, and only those (a model removed from the stack no
# longer loads; its weights stay); then the shared fetcher makes every weights file present
# and verified, so LocalAI never downloads and never serves an unverified file. A failed
# fetch exits the container with the reason in `docker logs`; Docker restarts it.
# A gated model's HF_TOKEN reaches the fetcher only: LocalAI's templates can read its
# environment (sprig's env), so it is unset before LocalAI starts.
_ENTRYPOINT_SCRIPT = (
    "set -euo pipefail; "
    f"{SYNC_CONFIGS} {CONFIG_STAGING_DIR} {MODELS_DIR}; "
    'token="${HF_TOKEN:-}"; unset HF_TOKEN; '
    f'HF_TOKEN="$token" {FETCH_WEIGHTS} {WEIGHTS_MANIFEST} {MODELS_DIR}; '
    "unset token; "
    'exec /build/entrypoint.sh "$@"'
)


@dataclass(frozen=True)
class DockerTargetArgs:
    """What the local container needs; every value already validated and decided."""

    serving: ServingArgs
    image: str
    """Full image reference (CPU ``-ffmpeg-core`` or CUDA ``-cublas-cuda12``)."""
    use_gpu: bool
    """Request all GPUs (``--gpus all``); only with the CUDA image."""
    model_files: Mapping[str, str]
    """Rendered LocalAI model YAMLs: file name -> content."""
    weights_manifest: str
    """What the fetcher makes present and verified before LocalAI starts."""
    bind_address: str
    volume_name: str
    container_name: str


class LocalDockerTarget(pulumi.ComponentResource):
    """LocalAI on the local Docker daemon, with weights on a named volume."""

    base_url: pulumi.Output[str]
    """OpenAI base URL, ending in /v1."""
    api_key: pulumi.Output[str]
    """The endpoint's key (secret)."""
    health_url: pulumi.Output[str]
    container_name: pulumi.Output[str]
    volume_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: DockerTargetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("localai:docker:LocalTarget", name, None, opts)
        serving = args.serving
        host = client_host(args.bind_address)
        self.api_key = endpoint_api_key(name, serving.api_key, parent=self)
        self.base_url = pulumi.Output.from_input(f"http://{host}:{serving.port}/v1")
        self.health_url = pulumi.Output.from_input(f"http://{host}:{serving.port}/readyz")

        image = docker.RemoteImage(
            f"{name}-image",
            name=args.image,
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        volume = docker.Volume(
            f"{name}-models",
            name=args.volume_name,
            labels=[docker.VolumeLabelArgs(label="dev.localai.role", value="model-weights")],
            opts=pulumi.ResourceOptions(
                parent=self, retain_on_delete=serving.keep_volume_on_destroy
            ),
        )
        container = self._create_container(name, args, image, volume)
        self.container_name = container.name
        self.volume_name = volume.name

        if serving.wait_for_ready:
            wait_for_endpoint(
                f"{name}-ready",
                base_url=self.base_url,
                api_key=self.api_key,
                model=serving.default_model,
                timeout_s=serving.ready_timeout_seconds,
                triggers=[container.id],
                parent=self,
                depends_on=[container],
                hint=f"Check the container's log: docker logs {args.container_name}",
                extra_args=["--docker-container", args.container_name],
            )

        self.register_outputs(
            {
                "base_url": self.base_url,
                "api_key": self.api_key,
                "health_url": self.health_url,
                "container_name": self.container_name,
                "volume_name": self.volume_name,
            }
        )

    def _create_container(
        self,
        name: str,
        args: DockerTargetArgs,
        image: docker.RemoteImage,
        volume: docker.Volume,
    ) -> docker.Container:
        serving = args.serving
        envs = pulumi.Output.secret(self.api_key).apply(lambda key: container_env(args, key))
        return docker.Container(
            f"{name}-container",
            name=args.container_name,
            image=image.image_id,
            entrypoints=["/bin/bash", "-c", _ENTRYPOINT_SCRIPT, "localai-entrypoint"],
            envs=envs,
            ports=[
                docker.ContainerPortArgs(
                    internal=CONTAINER_PORT, external=serving.port, ip=args.bind_address
                )
            ],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=MODELS_DIR)
            ],
            uploads=[
                *(
                    docker.ContainerUploadArgs(
                        file=f"{CONFIG_STAGING_DIR}/{file_name}", content=text
                    )
                    for file_name, text in sorted(args.model_files.items())
                ),
                docker.ContainerUploadArgs(file=WEIGHTS_MANIFEST, content=args.weights_manifest),
                docker.ContainerUploadArgs(
                    file=SYNC_CONFIGS, content=CONFIG_SYNC.read_text(), executable=True
                ),
                docker.ContainerUploadArgs(
                    file=FETCH_WEIGHTS, content=FETCHER.read_text(), executable=True
                ),
            ],
            cpus=f"{serving.cpu_limit:g}",
            # Half the default weight: under contention the desktop wins, idle CPU is used.
            cpu_shares=LOCAL_CPU_SHARES,
            memory=serving.memory_limit_mb,
            memory_swap=serving.memory_limit_mb,  # no swap: a model that does not fit fails fast
            gpus="all" if args.use_gpu else None,
            restart="unless-stopped",
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "3"},
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "curl", "-fsS", f"http://localhost:{CONTAINER_PORT}/readyz"],
                interval="30s",
                timeout="10s",
                retries=3,
                start_period=HEALTHCHECK_START_PERIOD,
            ),
            labels=[
                docker.ContainerLabelArgs(label="dev.localai.model", value=serving.default_model)
            ],
            wait=False,  # readiness is the real check below, not the healthcheck
            opts=pulumi.ResourceOptions(parent=self, depends_on=[volume]),
        )


def container_env(args: DockerTargetArgs, api_key: str) -> list[str]:
    """Environment of the LocalAI container (``KEY=value`` strings)."""
    serving = args.serving
    env = {
        "API_KEY": api_key,
        "MODELS_PATH": MODELS_DIR,
        "THREADS": str(serving.threads),
        "LOCALAI_LOG_LEVEL": "info",
    }
    if serving.parallel_requests > 1:
        env["PARALLEL_REQUESTS"] = "true"
        env["LLAMACPP_PARALLEL"] = str(serving.parallel_requests)
    env.update(serving.server_env())
    if serving.keep_removed_weights:  # a directory: LocalAI does not list what is in it
        env["FETCH_RETIRE_DIR"] = f"{MODELS_DIR}/.localai/removed-weights"
    if serving.hf_token is not None:  # the whole env list is a secret Output
        env["HF_TOKEN"] = serving.hf_token.get_secret_value()
    return [f"{key}={value}" for key, value in env.items()]


def client_host(bind_address: str) -> str:
    """The address a client on this machine uses to reach a port bound to ``bind_address``."""
    address = ipaddress.ip_address(bind_address)
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return str(address) if address.version == 4 else f"[{address}]"
