"""The whole Pulumi program as a callable: settings in, one target, contract out.

``__main__.py`` calls :func:`build_from_stack_config`; tests call :func:`build` with
settings they made. Every decision that can fail (catalog, sizing, image, GPU) is made
before the first resource is declared, so bad input stops ``pulumi preview`` cleanly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.aws.launch import (
    check_root_volume,
    host_image,
    resolve_host_ami,
    root_volume_size_gb,
)
from components.aws.network import DeployedVolume
from components.docker.daemon import DaemonInfo, query_daemon
from components.errors import ConfigError, ModelConfigError
from components.models.catalog import (
    ALL_GPU_LAYERS,
    ModelConfig,
    config_file_name,
    load_catalog,
    render_model_yaml,
)
from components.models.facts import ModelFacts, ModelFactsError, load_facts_for
from components.serving import ServingArgs
from components.settings import Settings, load_settings, read_stack_config
from components.sizing.coldstart import estimate as estimate_coldstart
from components.sizing.instance_types import lookup
from components.sizing.local_host import local_host_resources
from components.sizing.planner import SizingError, SizingPlan, plan
from components.sizing.resources import HostResources
from components.sizing.volume import describe_weights, minimum_volume_gb, volume_size_gb
from components.weights.manifest import weights_manifest

STACK_RESOURCE_NAME = "localai"


@dataclass(frozen=True)
class Environment:
    """What the program reads from outside its settings (stubbed in tests)."""

    project: str
    stack: str
    daemon_query: Callable[[], DaemonInfo] = query_daemon
    local_host: Callable[[], HostResources] = local_host_resources
    """This machine (CPUs, memory, and GPUs by nvidia-smi), for the local target."""


def build_from_stack_config(
    daemon_query: Callable[[], DaemonInfo] = query_daemon,
) -> dict[str, Any]:
    """Read and validate ``localai:*`` config, then build. Used by ``__main__``."""
    catalog = load_catalog()
    raw, secret_keys = read_stack_config()
    settings = load_settings(raw, catalog=catalog, secret_keys=secret_keys)
    env = Environment(
        project=pulumi.get_project(), stack=pulumi.get_stack(), daemon_query=daemon_query
    )
    return build(settings, env, catalog=catalog)


def build(
    settings: Settings,
    env: Environment,
    *,
    catalog: Mapping[str, ModelConfig] | None = None,
) -> dict[str, Any]:
    """Declare the target for ``settings``; return the stack outputs to export."""
    catalog = catalog if catalog is not None else load_catalog()
    models = [catalog[name] for name in settings.served_models]
    try:
        facts = load_facts_for(settings.served_models)
    except ModelFactsError as exc:
        raise ModelConfigError(str(exc)) from None
    for key in settings.ignored_keys():
        pulumi.log.warn(f"localai:{key} has no effect on the '{settings.target}' target")
    if settings.target == "docker":
        return _build_docker(settings, env, models, facts)
    return _build_aws(settings, env, models, facts)


def _context_sizes(settings: Settings, models: list[ModelConfig]) -> dict[str, int]:
    # contextSize is the chat models': an embeddings model keeps the context it was
    # trained for (a longer one would not fit its position table).
    return {
        m.name: m.context_size if m.embeddings else settings.context_size or m.context_size
        for m in models
    }


def _plan(
    settings: Settings,
    host: HostResources,
    models: list[ModelConfig],
    facts: list[tuple[str, ModelFacts | None]],
    *,
    use_gpu: bool,
) -> SizingPlan:
    try:
        return plan(
            host,
            facts,
            use_gpu=use_gpu,
            context_size=_context_sizes(settings, models),
            parallel_requests=settings.parallel_requests,
            threads=settings.threads,
            cpu_limit=settings.cpu_limit,
            memory_limit_mb=settings.memory_limit_mb,
        )
    except SizingError as exc:
        raise ConfigError(f"localai sizing: {exc}") from None


def _render(
    settings: Settings,
    models: list[ModelConfig],
    *,
    threads: int,
    gpu_layers: Mapping[str, int],
) -> dict[str, str]:
    contexts = _context_sizes(settings, models)
    return {
        config_file_name(m): render_model_yaml(
            m,
            gpu_layers=gpu_layers[m.name],
            threads=threads,
            context_size=contexts[m.name],
            max_tokens=None
            if m.embeddings
            else default_max_tokens(contexts[m.name], settings.parallel_requests),
        )
        for m in models
    }


def default_max_tokens(context_size: int, parallel_requests: int) -> int:
    """A request that sets no ``max_tokens`` may answer with half of its slot's context
    (llama.cpp gives each of the parallel slots ``context_size // parallel``): the other
    half is left to the prompt, instead of generating until the slot is full."""
    return max(1, context_size // parallel_requests // 2)


def _serving(settings: Settings, sizing: SizingPlan, *, wait_for_ready: bool) -> ServingArgs:
    return ServingArgs(
        default_model=settings.default_model,
        api_key=settings.api_key,
        port=settings.port,
        cpu_limit=sizing.cpu_limit,
        memory_limit_mb=sizing.memory_limit_mb,
        threads=sizing.threads,
        parallel_requests=settings.parallel_requests,
        single_active_backend=sizing.single_active_backend,
        wait_for_ready=wait_for_ready,
        ready_timeout_seconds=settings.ready_timeout_seconds,
        keep_volume_on_destroy=settings.keep_volume_on_destroy,
        keep_removed_weights=settings.keep_removed_weights,
        extra_env=settings.extra_env,
        web_ui=settings.web_ui,
        hf_token=settings.hf_token,
    )


def _warn(sizing: SizingPlan) -> None:
    for warning in sizing.warnings:
        pulumi.log.warn(warning)


def _contract(
    settings: Settings, base_url: pulumi.Output[str], api_key: pulumi.Output[str]
) -> dict[str, Any]:
    contract = {
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": pulumi.Output.secret(api_key),
        "OPENAI_MODEL": settings.default_model,
    }
    if settings.embedding_model:
        # Not read by the SDK itself: apps pass it as `model=` to embeddings.create.
        contract["OPENAI_EMBEDDING_MODEL"] = settings.embedding_model
    return contract


def _speed_estimates(sizing: SizingPlan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sizing.estimated_tokens_per_second is not None:
        out["estimatedTokensPerSecond"] = round(sizing.estimated_tokens_per_second, 1)
    if sizing.estimated_ttft_ms is not None:
        out["estimatedTtftMs"] = round(sizing.estimated_ttft_ms)
    # The tokens one request has (prompt and answer) on the default model: llama.cpp cuts a
    # longer prompt from the front, with no error (README, "Use the endpoint").
    per_request = sizing.per_request_context.get(sizing.default_model)
    if per_request is not None:
        out["contextPerRequest"] = per_request
    return out


def _costs(
    settings: Settings, plans: Mapping[str, SizingPlan], hourly: Mapping[str, float], **kw: Any
) -> dict[str, Any]:
    """The cost outputs; the same figures go to the preview as info lines."""
    from components.cost_report import cost_report

    report = cost_report(settings, plans, hourly, **kw)
    for line in report.summary:
        pulumi.log.info(line)
    return report.outputs


def _dashboard(region: pulumi.Output[str], prefix: str, name: pulumi.Output[str]) -> dict[str, Any]:
    """``dashboardName``; the console URL goes to the preview (its ``?`` and ``#`` are not
    shell words, see the output contract)."""
    from components.aws.observability import dashboard_url

    region.apply(lambda r: pulumi.log.info(f"dashboard: {dashboard_url(r, prefix)}"))
    return {"dashboardName": name}


def _running_hours(settings: Settings) -> float:
    """A single VM's hours a month: all of them, or what ``localai:schedule`` leaves."""
    from components.schedule.cron import parse_eventbridge
    from components.schedule.hours import running_hours_per_month
    from components.sizing.cost import HOURS_PER_MONTH

    if settings.schedule is None:
        return HOURS_PER_MONTH
    return running_hours_per_month(
        parse_eventbridge(settings.schedule.stop), parse_eventbridge(settings.schedule.start)
    )


def _estimates(sizing: SizingPlan) -> dict[str, Any]:
    out = _speed_estimates(sizing)
    if sizing.hourly_cost_usd is not None:
        out["hourlyCostUsd"] = round(sizing.hourly_cost_usd, 4)
    return out


# -- local Docker ---------------------------------------------------------------------------


def docker_uses_gpu(accelerator: str, daemon: DaemonInfo) -> bool:
    """``gpu`` forces CUDA, ``cpu`` forbids it, ``auto`` asks the daemon (never fails)."""
    if accelerator == "gpu":
        return True
    if accelerator == "cpu":
        return False
    return daemon.has_nvidia_runtime


def docker_host_resources(daemon: DaemonInfo, local: HostResources) -> HostResources:
    """Size from what the daemon offers (a Docker Desktop VM is smaller than its host).
    The GPUs nvidia-smi sees here count only when the daemon runs on this machine."""
    if not daemon.reachable or daemon.ncpu is None or daemon.mem_total_bytes is None:
        return local
    same_machine = daemon.ncpu == local.vcpus
    return HostResources.local(
        cpu_count=daemon.ncpu,
        physical_cores=local.physical_cores if same_machine else daemon.ncpu,
        memory_mib=daemon.mem_total_bytes // (1024 * 1024),
        arch=local.arch,
        cpu_isa=local.cpu_isa,
        gpu_count=local.gpu_count if same_machine else 0,
        gpu_memory_mib=local.gpu_memory_mib if same_machine else 0,
        gpu_model=local.gpu_model if same_machine else None,
        gpu_memory_bandwidth_gbs=(local.gpu_memory_bandwidth_gbs or None) if same_machine else None,
    )


def _build_docker(
    settings: Settings,
    env: Environment,
    models: list[ModelConfig],
    facts: list[tuple[str, ModelFacts | None]],
) -> dict[str, Any]:
    from components.docker.target import DockerTargetArgs, LocalDockerTarget

    daemon = env.daemon_query()
    use_gpu = docker_uses_gpu(settings.accelerator, daemon)
    if settings.accelerator == "gpu" and not daemon.has_nvidia_runtime:
        pulumi.log.warn(
            "localai:accelerator is 'gpu' but the Docker daemon reports no NVIDIA runtime"
            + (f" ({daemon.error})" if daemon.error else "")
            + "; the CUDA container will fail to load models without it"
        )
    # The daemon cannot report VRAM, nvidia-smi on this machine can: with it the split is
    # planned as on EC2; without it every layer is offloaded, with a warning.
    host = docker_host_resources(daemon, env.local_host())
    plan_gpu = use_gpu and host.has_gpu
    sizing = _plan(settings, host, models, facts, use_gpu=plan_gpu)
    _warn(sizing)
    if use_gpu and not plan_gpu:
        pulumi.log.warn(
            "could not read the GPU's memory (nvidia-smi on this machine, with the Docker "
            "daemon local): every layer is offloaded; a model larger than the GPU fails to load"
        )
    layers = (
        dict(sizing.gpu_layers)
        if plan_gpu
        else {m.name: ALL_GPU_LAYERS if use_gpu else 0 for m in models}
    )
    target = LocalDockerTarget(
        STACK_RESOURCE_NAME,
        DockerTargetArgs(
            serving=_serving(settings, sizing, wait_for_ready=settings.wait_for_ready is not False),
            image=settings.cuda_image if use_gpu else settings.cpu_image,
            use_gpu=use_gpu,
            model_files=_render(
                settings,
                models,
                threads=sizing.threads,
                gpu_layers=layers,
            ),
            weights_manifest=weights_manifest(models, dict(facts)),
            bind_address=settings.bind_address,
            volume_name=f"{env.project}-{env.stack}-models",
            container_name=f"{env.project}-{env.stack}",
        ),
    )
    return {
        **_contract(settings, target.base_url, target.api_key),
        "healthUrl": target.health_url,
        "accelerator": "gpu" if use_gpu else "cpu",
        "containerName": target.container_name,
        "modelsVolume": target.volume_name,
        **_estimates(sizing),
    }


# -- AWS ------------------------------------------------------------------------------------


def _coldstart(
    settings: Settings,
    sizing: SizingPlan,
    facts: list[tuple[str, ModelFacts | None]],
    *,
    gpu: bool,
    install_docker: bool,
    volume_gib: int,
) -> dict[str, Any]:
    """estimatedColdStartSeconds and estimatedReplacementSeconds (components/sizing/
    coldstart.py), when the models' sizes and the TTFT are known."""
    known = [f for _n, f in facts if f is not None]
    default = facts[0][1]
    if default is None or sizing.estimated_ttft_ms is None or len(known) != len(facts):
        return {}
    result = estimate_coldstart(
        gpu=gpu,
        install_docker=install_docker,
        all_weights_bytes=sum(f.file_size_bytes for f in known),
        default_weights_bytes=default.file_size_bytes,
        volume_throughput_mibs=settings.volume_throughput,
        ttft_s=sizing.estimated_ttft_ms / 1000,
        blank_volume_bytes=volume_gib * 1024**3,
    )
    out = {
        "estimatedColdStartSeconds": round(result.new_host_s),
        "estimatedReplacementSeconds": round(result.replacement_s),
    }
    if settings.schedule is not None:
        out["estimatedScheduledStartSeconds"] = round(result.restart_s)
        pulumi.log.info(
            f"schedule: each start ({settings.schedule.start} {settings.schedule.timezone}) "
            f"is about {round(result.restart_s)} s to the first token: boot, the model read "
            "from the weights volume, the first token (image and weights stay on the volume)"
        )
    return out


def _weights_volume_size(
    settings: Settings,
    facts: list[tuple[str, ModelFacts | None]],
    deployed: DeployedVolume | None,
) -> int:
    """The weights volume's size: configured or sized from the models, never below what
    the weights need, and never below the deployed volume's size (EBS cannot shrink)."""
    needed = minimum_volume_gb(facts)
    if settings.volume_size_gb is not None and settings.volume_size_gb < needed:
        raise ConfigError(
            f"localai configuration is invalid:\n  - localai:volumeSizeGb = "
            f"{settings.volume_size_gb}: the weights need {needed} GiB "
            f"({describe_weights(facts)}, plus 10% for the filesystem); use at least {needed}"
        )
    size = settings.volume_size_gb if settings.volume_size_gb is not None else volume_size_gb(facts)
    if deployed is None or size >= deployed.size_gb:
        return size
    volume_id, current = deployed.volume_id, deployed.size_gb
    if settings.volume_size_gb is not None:
        raise ConfigError(
            f"localai configuration is invalid:\n  - localai:volumeSizeGb = "
            f"{settings.volume_size_gb}: the weights volume {volume_id} is {current} GiB and "
            f"EBS volumes cannot shrink; use {current} or more (or unset it)"
        )
    pulumi.log.info(
        f"weights volume {volume_id} stays at {current} GiB (the models now need {size}; "
        "EBS volumes never shrink)"
    )
    return current


def _build_aws(
    settings: Settings,
    env: Environment,
    models: list[ModelConfig],
    facts: list[tuple[str, ModelFacts | None]],
) -> dict[str, Any]:
    from components.aws import network
    from components.aws.access import check_names
    from components.aws.host import (
        AwsHost,
        AwsHostArgs,
        check_user_data,
        host_sources,
        store_outputs,
    )
    from components.aws.network import (
        choose_subnet,
        deployed_weights_volume,
        existing_volume_zone,
        volume_modified_at,
    )

    if settings.fleet is not None:
        return _build_fleet(settings, env, models, facts)
    instance = lookup(settings.aws_instance_type)
    sealed = settings.egress == "none"
    image = host_image(instance, sealed=sealed)
    if sealed and image.install_docker:
        raise ConfigError(
            f"localai configuration is invalid:\n  - localai:egress = 'none': "
            f"{instance.name} is {instance.arch}, and the only AMI this package knows that "
            "ships Docker and the aws CLI (a sealed host cannot install them) is the x86_64 "
            "NVIDIA DLAMI; use an x86_64 instance type (e.g. c7a.xlarge)"
        )
    ami = resolve_host_ami(image, settings.ami_id)
    root_gb = root_volume_size_gb(instance, settings.root_volume_size_gb, gpu_ami=image.gpu_ami)
    check_root_volume(root_gb, ami, explicit=settings.root_volume_size_gb is not None)
    gpu_capable = instance.gpu_count > 0 and settings.accelerator != "cpu"
    host = HostResources.from_instance_type(instance)
    sizing = _plan(settings, host, models, facts, use_gpu=gpu_capable)
    _warn(sizing)
    prefix = f"{env.project}-{env.stack}"
    check_names(prefix)
    if settings.weights_volume_id is not None:
        deployed = None
        zone: str | None = existing_volume_zone(settings.weights_volume_id, settings.subnet_id)
    else:
        # The host stays in the zone of the volume it has: another zone would replace it.
        deployed = deployed_weights_volume(prefix)
        zone = deployed.availability_zone if deployed is not None else None
    placement = choose_subnet(
        instance_type=instance.name,
        public=settings.public,
        subnet_id=settings.subnet_id,
        vpc_id=settings.vpc_id,
        zone=zone,
        sealed=sealed,
        allow_route_out=settings.allow_route_out,
    )
    volume_gb = _weights_volume_size(settings, facts, deployed)
    modified_at = volume_modified_at(
        deployed, volume_gb, settings.volume_throughput, now=network.utc_now()
    )
    if settings.weights_volume_id is not None:
        ignored = {"volumeSizeGb", "volumeThroughput"} & settings.model_fields_set_aliases()
        for key in sorted(ignored):
            pulumi.log.warn(f"localai:{key} has no effect with localai:weightsVolumeId")
    wait = settings.wait_for_ready if settings.wait_for_ready is not None else settings.public
    manifest = weights_manifest(models, dict(facts))
    stores = None
    vpc_cidr = ""
    if sealed:
        from components.aws.egress import check_ssh_inside_vpc
        from components.aws.stores import find_mirrored

        vpc_cidr = network.vpc_cidr(placement.vpc_id)
        check_ssh_inside_vpc(settings.ssh_cidrs, vpc_cidr)

        if settings.vpc_endpoints:
            pulumi.log.warn("localai:vpcEndpoints has no effect with localai:egress none")
        stores = find_mirrored(
            prefix,
            stack=env.stack,
            cpu_image=settings.cpu_image,
            gpu_image=settings.cuda_image if gpu_capable else None,
            manifest=manifest,
        )
    cpu_image, gpu_image, host_manifest = host_sources(
        stores, cpu_image=settings.cpu_image, gpu_image=settings.cuda_image, manifest=manifest
    )
    host_args = AwsHostArgs(
        serving=_serving(settings, sizing, wait_for_ready=wait),
        instance=instance,
        image=image,
        ami=ami,
        cpu_image=cpu_image,
        gpu_image=gpu_image,
        gpu_capable=gpu_capable,
        cpu_model_files=_render(
            settings, models, threads=sizing.threads, gpu_layers={m.name: 0 for m in models}
        ),
        gpu_model_files=(
            _render(settings, models, threads=sizing.threads, gpu_layers=sizing.gpu_layers)
            if gpu_capable
            else {}
        ),
        public=settings.public,
        allowed_cidrs=settings.allowed_cidrs,
        volume_size_gb=volume_gb,
        volume_throughput=settings.volume_throughput,
        root_volume_size_gb=root_gb,
        log_retention_days=settings.log_retention_days,
        resource_prefix=prefix,
        ssh_key_name=settings.ssh_key_name,
        ssh_cidrs=settings.ssh_cidrs,
        existing_volume_id=settings.weights_volume_id,
        placement=placement,
        weights_manifest=host_manifest,
        create_vpc_endpoints=settings.vpc_endpoints,
        tags=settings.tags,
        volume_modified_at=modified_at,
        sealed=stores,
        vpc_cidr=vpc_cidr,
        schedule=settings.schedule,
        alarm_email=settings.alarm_email,
        host_metrics=settings.host_metrics,
    )
    check_user_data(host_args)
    target = AwsHost(STACK_RESOURCE_NAME, host_args)
    return {
        **_contract(settings, target.base_url, target.api_key),
        "healthUrl": target.health_url,
        "instanceId": target.instance_id,
        "instanceType": instance.name,
        "amiId": target.ami_id,
        "amiParameter": image.ami_parameter,
        "weightsVolumeId": target.volume_id,
        "privateIp": target.private_ip,
        "logGroup": target.log_group_name,
        "region": target.region,
        **_dashboard(target.region, prefix, target.dashboard_name),
        # Stack outputs must be single shell words: `export $(pulumi stack output
        # --shell)` splits on whitespace. The script prints and runs the full command.
        "ssmPortForwardCommand": "scripts/port-forward.sh",
        **store_outputs(stores),
        **_estimates(sizing),
        **_costs(
            settings,
            {instance.name: sizing},
            {instance.name: instance.hourly_usd},
            host_hours_per_month=_running_hours(settings),
        ),
        **_coldstart(
            settings,
            sizing,
            facts,
            gpu=gpu_capable,
            install_docker=image.install_docker,
            volume_gib=volume_gb,
        ),
    }


def _build_fleet(
    settings: Settings,
    env: Environment,
    models: list[ModelConfig],
    facts: list[tuple[str, ModelFacts | None]],
) -> dict[str, Any]:
    from components.aws.fleet_program import build_fleet

    return build_fleet(
        settings,
        prefix=f"{env.project}-{env.stack}",
        stack=env.stack,
        models=models,
        facts=facts,
        plan=_plan,
        render=lambda ms, **kw: _render(settings, ms, **kw),
        serving=lambda sizing: _serving(
            settings, sizing, wait_for_ready=settings.wait_for_ready is not False
        ),
        # A fleet's instances are new volumes every time: no deployed volume to respect.
        volume_size=lambda: _weights_volume_size(settings, facts, None),
        contract=lambda base_url, api_key: _contract(settings, base_url, api_key),
        speed_estimates=_speed_estimates,
        costs=lambda plans, hourly, **kw: _costs(settings, plans, hourly, **kw),
        dashboard=_dashboard,
    )
