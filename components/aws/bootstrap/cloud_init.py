"""The EC2 bootstrap: one ``#cloud-config`` document that turns a fresh VM into a LocalAI host.

Pure Python (no Pulumi import): :func:`render_user_data` takes a :class:`BootstrapSpec` of
plain values and returns the user data. The single host (``components/aws/host.py``) and a
later autoscaled fleet (launch template) render the same document.

What the document does on the instance (the real scripts and units are in files/ beside
this module):

- ``write_files``: the settings file ``/etc/localai/localai.conf`` (non-secret ``KEY=value``
  lines the scripts source and the units read), non-secret extra container env vars, the
  scripts (``/usr/local/sbin/localai-*``), the systemd units and timers, and both model
  YAML sets (``/etc/localai/models/{cpu,gpu}``).
- ``packages`` (plain Ubuntu only): ``docker.io`` and ``curl``. The NVIDIA DLAMI already
  ships Docker and the NVIDIA container toolkit.
- ``runcmd``: prepare the weights volume (wait, format only when blank, mount, fstab by
  UUID), ``systemctl daemon-reload``, then enable and start (without blocking cloud-init)
  ``localai.service``, ``localai-warmup.service`` and the key-watch and GPU-retry timers.
  The service prepares the volume and checks Docker again before every start (idempotent),
  and declares no Requires= (systemd never retries a dependency failure), so a slow EBS
  attachment or a failed Docker install heals on its own.

The API key never appears here: only the name of the SSM SecureString parameter, which
``localai-run`` reads at every start. cloud-init's ``fs_setup``/``disk_setup``/``mounts`` are
deliberately not used for the weights volume (``partition: none`` always reformats).

EC2 limits user data to 16 KiB. :func:`render_user_data` embeds the units verbatim and the
scripts without their full-line comments (:func:`compact_script`);
:func:`render_user_data_base64` gzips that document for ``user_data_base64`` and launch
templates (cloud-init unpacks gzip itself); the tests hold the largest shipped variants
to the limit. Both are deterministic (gzip mtime 0): same spec, same
bytes, so ``user_data_replace_on_change`` never replaces an instance for nothing.
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
import zopfli.gzip

from components.aws.bootstrap.bundle import fetch_step, pack
from components.aws.bootstrap.metrics_agent import agent_config_json
from components.aws_limits import USER_DATA_LIMIT_BYTES
from components.serving import CONTAINER_ENV
from components.weights.manifest import CONFIG_SYNC
from components.weights.manifest import FETCHER as WEIGHTS_FETCHER

FILES_DIR = Path(__file__).resolve().parent / "files"
HEADER = "#cloud-config\n"

CONF_PATH = "/etc/localai/localai.conf"
EXTRA_ENV_PATH = "/etc/localai/extra.env"
MODEL_SRC_DIR = "/etc/localai/models"
RUN_DIR = "/run/localai"
SBIN_DIR = "/usr/local/sbin"
UNIT_DIR = "/etc/systemd/system"
PREPARE_VOLUME = f"{SBIN_DIR}/localai-prepare-volume"

# Installed path -> source file in components/aws/bootstrap/files/ (scripts 0755, units 0644).
SCRIPTS: dict[str, str] = {
    PREPARE_VOLUME: "localai-prepare-volume.sh",
    f"{SBIN_DIR}/localai-run": "localai-run.sh",
    f"{SBIN_DIR}/localai-warmup": "localai-warmup.sh",
    f"{SBIN_DIR}/localai-timeline": "localai-timeline.sh",
}
# Scripts both targets run (components/weights/): installed path -> source.
SHARED_SCRIPTS: dict[str, Path] = {
    f"{SBIN_DIR}/localai-fetch-weights": WEIGHTS_FETCHER,
    f"{SBIN_DIR}/localai-sync-configs": CONFIG_SYNC,
}
S3_FETCHER = WEIGHTS_FETCHER.with_name("localai-fetch-s3.sh")
S3_GET_PATH = f"{SBIN_DIR}/s3_get"
"""The fetcher's ``s3://`` path (components/weights/localai-fetch-s3.sh), on PATH as
``s3_get``; only hosts whose manifest names an ``s3://`` URL carry it."""
WEIGHTS_MANIFEST_PATH = "/etc/localai/weights.tsv"
KEY_RESTART_SPREAD_S = 120
"""Fleet hosts restart LocalAI for a rotated key after a random 0-120 s delay, so the whole
fleet is not restarting (and failing health checks) within the same timer tick."""
FLEET_DIR = "/etc/localai/fleet"
"""Fleet hosts only: ``base.conf`` plus one ``<instance type>.conf`` per fleet type, which
``localai-host-profile`` joins into CONF_PATH at first boot for the type EC2 gave."""
HOST_PROFILE = f"{SBIN_DIR}/localai-host-profile"
LIFECYCLE = f"{SBIN_DIR}/localai-lifecycle"
FLEET_SCRIPTS: dict[str, str] = {
    HOST_PROFILE: "localai-host-profile.sh",
    LIFECYCLE: "localai-lifecycle.sh",
}
FLEET_UNITS: dict[str, str] = {
    f"{UNIT_DIR}/localai-warmup.service.d/20-lifecycle.conf": "localai-warmup-lifecycle.conf",
    f"{UNIT_DIR}/localai-lifecycle-heartbeat.service": "localai-lifecycle-heartbeat.service",
    f"{UNIT_DIR}/localai-lifecycle-heartbeat.timer": "localai-lifecycle-heartbeat.timer",
}
FLEET_SERVICES = ("localai-lifecycle-heartbeat.timer",)
PROFILE_KEYS = (
    "LOCALAI_CPUS",
    "LOCALAI_MEMORY_MB",
    "LOCALAI_THREADS",
    "LOCALAI_GPU_CAPABLE",
    "LOCALAI_GPU_IMAGE",
    "LOCALAI_MODEL_SRC_DIR",
)
"""What differs between instance types: in ``<type>.conf``, never in ``base.conf``."""
DISCOVERED_KEYS = ("LOCALAI_VOLUME_DEVICE", "LOCALAI_INSTANCE_TYPE")
"""What ``localai-host-profile`` finds on the instance and writes itself."""
DOCKER_DROPIN_PATH = f"{UNIT_DIR}/docker.service.d/10-localai-weights-volume.conf"
"""Docker keeps its images on the weights volume, so it must not start before it is
mounted (a Condition, not a dependency: localai.service starts Docker once it is)."""
UNITS: dict[str, str] = {
    f"{UNIT_DIR}/{name}": name
    for name in (
        "localai.service",
        "localai-warmup.service",
        "localai-key-watch.service",
        "localai-key-watch.timer",
        "localai-gpu-retry.service",
        "localai-gpu-retry.timer",
    )
}
SERVICES = (
    "localai.service",
    "localai-warmup.service",
    "localai-key-watch.timer",
    "localai-gpu-retry.timer",
)
METRICS_AGENT = f"{SBIN_DIR}/localai-metrics-agent"
METRICS_AGENT_UNIT = "localai-metrics-agent.service"
METRICS_AGENT_SCRIPTS: dict[str, str] = {METRICS_AGENT: "localai-metrics-agent.sh"}
METRICS_AGENT_UNITS: dict[str, str] = {f"{UNIT_DIR}/{METRICS_AGENT_UNIT}": METRICS_AGENT_UNIT}
"""Hosts with a ``metrics_namespace`` only (every EC2 host the stack deploys)."""
METRICS_AGENT_CONFIG = "/etc/localai/cloudwatch-agent.json"
METRICS_AGENT_GPU_CONFIG = "/etc/localai/cloudwatch-agent-gpu.json"
"""The CloudWatch agent's configuration (metrics_agent.py) without and with the GPU;
``localai-metrics-agent`` takes the GPU one on a GPU-capable host."""
DOCKER_PACKAGES = ("docker.io", "curl")
DEFAULT_PERMISSIONS = "0644"


# Values in localai.conf are written unquoted: both bash (`.`) and systemd
# (EnvironmentFile=) then read exactly the same string.
_CONF_VALUE = re.compile(r"[A-Za-z0-9_./:@%+,=#-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml")
_MODEL_NAME = re.compile(r"[A-Za-z0-9._:/-]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
_ASG_NAME = re.compile(r"[A-Za-z0-9_/-]+")
_NAMESPACE = re.compile(r"[A-Za-z0-9._/#-]{1,255}")  # CloudWatch allows more than LocalAI/<prefix>
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ECR_REGISTRY = re.compile(r"\d{12}\.dkr\.ecr\.[a-z]{2}(-[a-z]+)+-\d+\.amazonaws\.com(\.cn)?")


@dataclass(frozen=True)
class HostProfile:
    """What one instance type of a fleet runs with (the planner's answer for that type)."""

    cpu_limit: float
    memory_limit_mb: int
    threads: int
    gpu_capable: bool
    cpu_models: dict[str, str]
    gpu_models: dict[str, str]


@dataclass(frozen=True)
class FleetBoot:
    """A fleet host: one launch template for several types, a hook to complete."""

    profiles: dict[str, HostProfile]
    """Instance type -> profile, for every type the group may launch."""
    autoscaling_group: str
    lifecycle_hook: str


@dataclass(frozen=True)
class BootstrapSpec:
    """Everything the bootstrap needs, as plain values (no secrets)."""

    volume_device: str
    """Weights volume, e.g. /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123...;
    symlinks are followed."""
    mount_point: str
    """Where the weights volume is mounted; models live in <mount_point>/models."""
    cpu_image: str
    gpu_image: str
    install_docker: bool
    """True on plain Ubuntu (installs docker.io); False on the NVIDIA DLAMI."""
    gpu_capable: bool
    """The instance type has a GPU: detect it at every start, fall back to CPU."""
    port: int
    api_key_parameter: str
    """Name (or ARN) of the SSM SecureString holding the API key; never the key."""
    region: str
    log_group: str
    """CloudWatch log group for the container (awslogs); empty: docker's local driver only."""
    cpu_models: dict[str, str]
    """File name -> model YAML rendered for CPU (gpu_layers 0)."""
    gpu_models: dict[str, str]
    """File name -> model YAML rendered for the GPU (full offload)."""
    default_model: str
    """Model name used by the warm-up request."""
    cpu_limit: float
    memory_limit_mb: int
    threads: int
    parallel_requests: int
    extra_env: dict[str, str] = field(default_factory=dict)
    hf_token_parameter: str = ""
    """SSM SecureString with the Hugging Face token for gated models; empty: none."""
    weights_manifest: str = ""
    """The fetcher's manifest (components/weights/manifest.py): file, sha256, size, URL."""
    never_format: bool = False
    """The weights volume is one the user named (weightsVolumeId): never format it."""
    keep_removed_weights: bool = False
    """Move weights no configured model lists to the volume's state directory (else delete)."""
    """Non-secret LocalAI env vars for the container."""
    volume_wait_s: int = 300
    """How long to wait for the weights volume to be attached."""
    ecr_registry: str = ""
    """``egress none``: the stack's private registry (``<account>.dkr.ecr.<region>.
    amazonaws.com``), logged into with the role's token before a pull; the images are
    ``<registry>/<repository>@sha256:...``. Empty: images come from their public registry."""
    metrics_namespace: str = ""
    """The CloudWatch namespace of the host's agent metrics (``LocalAI/<prefix>``); empty:
    no agent (the unit, script and configuration are left out)."""
    bundle_bucket: str = ""
    """Ship every file but Docker's drop-in in a bundle (components/aws/bootstrap/bundle.py)
    at ``bootstrap/<sha256>.tar.gz`` in this bucket, fetched by the first runcmd step: a
    sealed fleet's files exceed EC2's 16 KiB. Empty: every file in the user data."""
    fleet: FleetBoot | None = None
    """An Auto Scaling group's host: the weights volume (``volume_device`` empty) and the
    profile are found at boot, and the warm-up completes the launch lifecycle hook."""


def render_user_data(spec: BootstrapSpec) -> str:
    """The ``#cloud-config`` document for ``spec``, every file embedded verbatim.

    Raises ValueError for a bad spec. EC2 gets it gzipped: :func:`render_user_data_base64`.
    """
    _validate(spec)
    files = _files(spec)
    if not spec.bundle_bucket:
        return _dump(_cloud_config(spec, files))
    bundle = pack(_bundled(files))
    first = fetch_step(spec.bundle_bucket, spec.region, bundle, install_aws_cli=spec.install_docker)
    kept = {DOCKER_DROPIN_PATH: files[DOCKER_DROPIN_PATH]}
    return _dump(_cloud_config(spec, kept, first_line=first))


def render_bundle(spec: BootstrapSpec) -> bytes:
    """The bundle ``spec``'s user data fetches (the same bytes for the same spec)."""
    _validate(spec)
    return pack(_bundled(_files(spec)))


def _bundled(files: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    # Docker's drop-in stays in write_files: it must be there before docker.service starts.
    return {path: entry for path, entry in files.items() if path != DOCKER_DROPIN_PATH}


def render_user_data_base64(spec: BootstrapSpec) -> str:
    """:func:`render_user_data`, gzipped and base64 encoded; at most 16 KiB of gzip.

    For ``aws.ec2.Instance(user_data_base64=...)`` and ``aws.ec2.LaunchTemplate(user_data=...)``:
    cloud-init decompresses gzipped user data, and EC2's 16 KiB limit applies to the gzip
    bytes. Deterministic (gzip mtime 0): same spec, same bytes.
    """
    packed = _gzip(render_user_data(spec))
    if len(packed) > USER_DATA_LIMIT_BYTES:
        raise ValueError(
            f"the gzipped cloud-init user data is {len(packed)} bytes; EC2 allows "
            f"{USER_DATA_LIMIT_BYTES}. Deploy fewer models on this host"
            + (
                ", or leave out the CloudWatch agent (localai:hostMetrics false)."
                if spec.metrics_namespace
                else "."
            )
        )
    return base64.b64encode(packed).decode("ascii")


def read_file(name: str) -> str:
    """A file from components/aws/bootstrap/files/, as embedded in the user data."""
    return (FILES_DIR / name).read_text(encoding="utf-8")


# `<<` and `<<-` start a here-document; `<<<` is a here-string, which does not.
_HEREDOC = re.compile(r"(?<!<)<<(?!<)-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
_COMMENT_LINE = re.compile(r"\s*#(?!!)(?!\s*shellcheck )")


def compact_script(text: str) -> str:
    """``text`` without its full-line comments and its indentation (the shebang,
    ``# shellcheck`` directives and here-documents stay verbatim): what every host gets,
    because EC2 allows 16 KiB of (gzipped) user data and the comments took a quarter of it.
    The files in files/ stay the documented source; the code is the same line for line.
    (A quoted string that spans lines loses its indentation too: the scripts have only
    ``sh -c`` bodies there, where it does not count, and their tests run the compacted
    scripts.)"""
    kept: list[str] = []
    terminator: str | None = None
    for number, line in enumerate(text.split("\n")):
        if terminator is not None:
            kept.append(line)
            if line.strip() == terminator:
                terminator = None
            continue
        if number > 0 and _COMMENT_LINE.match(line):
            continue
        kept.append(line.lstrip(" \t"))
        heredoc = _HEREDOC.search(line)
        if heredoc:
            terminator = heredoc.group(1)
    return "\n".join(kept)


def compact_unit(text: str) -> str:
    """A systemd unit without its comment lines (systemd.syntax(7): lines beginning with
    '#' or ';'), for the same reason as :func:`compact_script`."""
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(("#", ";")))


def decode_write_file(entry: dict[str, object]) -> str:
    """The content a ``write_files`` entry writes (we write every file as plain text)."""
    encoding = entry.get("encoding", "text/plain")
    if encoding != "text/plain":
        raise ValueError(f"unexpected write_files encoding {encoding!r}")
    return str(entry.get("content", ""))


# ---------------------------------------------------------------------------------------
# Document


def _files(spec: BootstrapSpec) -> dict[str, tuple[str, str]]:
    """Installed path -> (content, permissions), in write order."""
    files: dict[str, tuple[str, str]] = {CONF_PATH: (_conf(spec), "0644")}
    if spec.extra_env:
        files[EXTRA_ENV_PATH] = (_extra_env(spec.extra_env), "0644")
    for path, name in SCRIPTS.items():
        files[path] = (read_file(name), "0755")
    for path, source in SHARED_SCRIPTS.items():
        files[path] = (source.read_text(encoding="utf-8"), "0755")
    if "\ts3://" in spec.weights_manifest:
        files[S3_GET_PATH] = (S3_FETCHER.read_text(encoding="utf-8"), "0755")
    files[WEIGHTS_MANIFEST_PATH] = (spec.weights_manifest, "0644")
    files[DOCKER_DROPIN_PATH] = (_docker_dropin(spec.mount_point), "0644")
    for path, name in UNITS.items():
        files[path] = (compact_unit(read_file(name)), "0644")
    files.update(_metrics_agent_files(spec))
    for path, (content, permissions) in files.items():
        if permissions == "0755":
            files[path] = (compact_script(content), permissions)
    if spec.fleet is None:
        files.update(
            _model_files(MODEL_SRC_DIR, spec.cpu_models, spec.gpu_models, spec.gpu_capable)
        )
        return files
    del files[CONF_PATH]
    files = {
        f"{FLEET_DIR}/base.conf": (_conf(spec), "0644"),
        **{
            f"{FLEET_DIR}/{instance_type}.conf": (_profile_conf(spec, instance_type), "0644")
            for instance_type in sorted(spec.fleet.profiles)
        },
        **files,
    }
    for path, name in FLEET_SCRIPTS.items():
        files[path] = (compact_script(read_file(name)), "0755")
    for path, name in FLEET_UNITS.items():
        files[path] = (compact_unit(read_file(name)), "0644")
    for instance_type, profile in sorted(spec.fleet.profiles.items()):
        files.update(
            _model_files(
                f"{MODEL_SRC_DIR}/{instance_type}",
                profile.cpu_models,
                profile.gpu_models,
                profile.gpu_capable,
            )
        )
    return files


def _metrics_agent_files(spec: BootstrapSpec) -> dict[str, tuple[str, str]]:
    if not spec.metrics_namespace:
        return {}
    # A single host has one configuration (with the GPU on a GPU type; while it serves on
    # CPU the agent logs nvidia-smi's errors and sends no GPU figures); a fleet's types may
    # differ, and each host picks its own at boot.
    if spec.fleet is None:
        configs = {METRICS_AGENT_CONFIG: spec.gpu_capable}
    else:
        gpu = any(p.gpu_capable for p in spec.fleet.profiles.values())
        configs = {METRICS_AGENT_CONFIG: False, **({METRICS_AGENT_GPU_CONFIG: True} if gpu else {})}
    return {
        **{path: (read_file(name), "0755") for path, name in METRICS_AGENT_SCRIPTS.items()},
        **{
            path: (compact_unit(read_file(name)), "0644")
            for path, name in METRICS_AGENT_UNITS.items()
        },
        **{
            path: (
                agent_config_json(
                    namespace=spec.metrics_namespace,
                    region=spec.region,
                    mount_point=spec.mount_point,
                    gpu=with_gpu,
                ),
                "0644",
            )
            for path, with_gpu in configs.items()
        },
    }


def _model_files(
    directory: str, cpu_models: dict[str, str], gpu_models: dict[str, str], gpu_capable: bool
) -> dict[str, tuple[str, str]]:
    model_sets = {"cpu": cpu_models}
    if gpu_capable:
        model_sets["gpu"] = gpu_models
    return {
        f"{directory}/{accelerator}/{file_name}": (text, "0644")
        for accelerator, models in model_sets.items()
        for file_name, text in sorted(models.items())
    }


def _cloud_config(
    spec: BootstrapSpec, files: dict[str, tuple[str, str]], *, first_line: str = ""
) -> dict[str, object]:
    config: dict[str, object] = {}
    if spec.install_docker:
        config["package_update"] = True
        config["packages"] = list(DOCKER_PACKAGES)
    config["write_files"] = [
        _write_file(path, content, permissions) for path, (content, permissions) in files.items()
    ]
    prepare = [
        "env",
        f"PREPARE_VOLUME_WAIT_S={spec.volume_wait_s}",
        f"PREPARE_VOLUME_NEVER_FORMAT={1 if spec.never_format else 0}",
        PREPARE_VOLUME,
    ]
    if spec.fleet is None:
        # Also run by localai.service before every start; here so that the fstab entry
        # exists before daemon-reload turns it into a mount unit.
        steps: list[list[str]] = [[*prepare, spec.volume_device, spec.mount_point]]
    else:
        # The profile step writes CONF_PATH (with the volume it found) first; a failure
        # there leaves no conf, so nothing below can format anything.
        steps = [
            [HOST_PROFILE],
            [
                "sh",
                "-c",
                f". {CONF_PATH} && exec {' '.join(prepare)} "
                '"$LOCALAI_VOLUME_DEVICE" "$LOCALAI_MOUNT_POINT"',
            ],
        ]
    steps.append(["systemctl", "daemon-reload"])
    if spec.install_docker:
        steps.append(["systemctl", "enable", "--now", "docker.service"])
    # --no-block: the warm-up is a oneshot that may wait hours for downloads.
    services = [
        *SERVICES,
        *([METRICS_AGENT_UNIT] if spec.metrics_namespace else []),
        *(FLEET_SERVICES if spec.fleet is not None else ()),
    ]
    steps.append(["systemctl", "enable", "--now", "--no-block", *services])
    config["runcmd"] = _runcmd(steps, fleet=spec.fleet is not None, first_line=first_line)
    return config


RUNCMD_FAILED = " || rc=1"


def _runcmd(steps: list[list[str]], *, fleet: bool, first_line: str = "") -> list[str]:
    """cloud-init runs runcmd as one /bin/sh script and reports the stage failed (``cloud-
    init status``: error) only if the script exits non-zero: every step runs (the units
    retry what failed), and a failed step makes the script exit 1. A fleet host whose
    profile step failed abandons its launch at once (the group replaces it). A
    ``first_line`` (the bundle's fetch) runs before them and ends the script on failure."""
    lines = ["rc=0", *([first_line] if first_line else [])]
    for step in steps:
        line = shlex.join(step) + RUNCMD_FAILED
        if fleet and step == [HOST_PROFILE]:
            abandon = f"SERVICE_RESULT=host-profile-failed {LIFECYCLE} complete"
            line = f"{HOST_PROFILE} || {{ rc=1; {abandon}; }}"
        lines.append(line)
    lines.append('exit "$rc"')
    return lines


def _write_file(path: str, content: str, permissions: str) -> dict[str, str]:
    # cloud-init defaults: owner root:root, permissions 0644 (left out: 16 KiB is tight).
    entry = {"path": path}
    if permissions != DEFAULT_PERMISSIONS:
        entry["permissions"] = permissions
    entry["content"] = content
    return entry


def _gzip(content: str) -> bytes:
    """Zopfli's gzip: the same format cloud-init unpacks, about 4% smaller than zlib's
    level 9 (16 KiB is tight: each instance type of a fleet carries its model files).
    Deterministic: zopfli writes mtime 0 and compresses the same input the same way."""
    return zopfli.gzip.compress(content.encode("utf-8"))


def _conf(spec: BootstrapSpec) -> str:
    values = {
        "LOCALAI_VOLUME_DEVICE": spec.volume_device,
        "LOCALAI_MOUNT_POINT": spec.mount_point,
        "PREPARE_VOLUME_WAIT_S": str(spec.volume_wait_s),
        "PREPARE_VOLUME_NEVER_FORMAT": "1" if spec.never_format else "0",
        "LOCALAI_PORT": str(spec.port),
        "LOCALAI_CPU_IMAGE": spec.cpu_image,
        "LOCALAI_GPU_IMAGE": spec.gpu_image if spec.gpu_capable else "",
        "LOCALAI_GPU_CAPABLE": "1" if spec.gpu_capable else "0",
        "LOCALAI_INSTALL_DOCKER": "1" if spec.install_docker else "0",
        "LOCALAI_API_KEY_PARAMETER": spec.api_key_parameter,
        "LOCALAI_REGION": spec.region,
        "LOCALAI_LOG_GROUP": spec.log_group,
        "LOCALAI_DEFAULT_MODEL": spec.default_model,
        "LOCALAI_CPUS": _format_cpus(spec.cpu_limit),
        "LOCALAI_MEMORY_MB": str(spec.memory_limit_mb),
        "LOCALAI_THREADS": str(spec.threads),
        "LOCALAI_PARALLEL_REQUESTS": str(spec.parallel_requests),
        "LOCALAI_MODEL_SRC_DIR": MODEL_SRC_DIR,
        "LOCALAI_RUN_DIR": RUN_DIR,
        "LOCALAI_EXTRA_ENV_FILE": EXTRA_ENV_PATH if spec.extra_env else "",
        "LOCALAI_WEIGHTS_MANIFEST": WEIGHTS_MANIFEST_PATH,
        "LOCALAI_HF_TOKEN_PARAMETER": spec.hf_token_parameter,
        "LOCALAI_KEEP_REMOVED_WEIGHTS": "1" if spec.keep_removed_weights else "0",
    }
    if spec.ecr_registry:  # absent otherwise: an open host's conf (and user data) unchanged
        values["LOCALAI_ECR_REGISTRY"] = spec.ecr_registry
    if spec.fleet is not None:
        for key in (*PROFILE_KEYS, *DISCOVERED_KEYS):
            values.pop(key, None)
        values["LOCALAI_FLEET_DIR"] = FLEET_DIR
        values["LOCALAI_AUTOSCALING_GROUP"] = spec.fleet.autoscaling_group
        values["LOCALAI_LIFECYCLE_HOOK"] = spec.fleet.lifecycle_hook
        values["LOCALAI_KEY_RESTART_SPREAD_S"] = str(KEY_RESTART_SPREAD_S)
    return _conf_text(
        "# LocalAI host settings (non-secret; the key comes from SSM). From cloud-init.",
        values,
    )


def _profile_values(spec: BootstrapSpec, profile: HostProfile, model_dir: str) -> dict[str, str]:
    return {
        "LOCALAI_CPUS": _format_cpus(profile.cpu_limit),
        "LOCALAI_MEMORY_MB": str(profile.memory_limit_mb),
        "LOCALAI_THREADS": str(profile.threads),
        "LOCALAI_GPU_CAPABLE": "1" if profile.gpu_capable else "0",
        "LOCALAI_GPU_IMAGE": spec.gpu_image if profile.gpu_capable else "",
        "LOCALAI_MODEL_SRC_DIR": model_dir,
    }


def _profile_conf(spec: BootstrapSpec, instance_type: str) -> str:
    assert spec.fleet is not None
    profile = spec.fleet.profiles[instance_type]
    return _conf_text(
        f"# {instance_type}: sized by components/sizing/planner.py for this type.",
        _profile_values(spec, profile, f"{MODEL_SRC_DIR}/{instance_type}"),
    )


def _conf_text(comment: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        if not _CONF_VALUE.fullmatch(value):
            raise ValueError(
                f"{key}={value!r} cannot go into {CONF_PATH}: allowed characters are "
                "letters, digits and _ . / : @ % + , = # -"
            )
    lines = [comment, *(f"{key}={value}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def _extra_env(extra_env: dict[str, str]) -> str:
    # docker --env-file format: KEY=VALUE, the value taken literally up to the end of line.
    lines = ["# Non-secret LocalAI env vars (docker --env-file)."]
    lines += [f"{key}={value}" for key, value in sorted(extra_env.items())]
    return "\n".join(lines) + "\n"


def _docker_dropin(mount_point: str) -> str:
    return (
        "# Docker's images live on the LocalAI weights volume (data-root "
        f"{mount_point}/docker):\n# start only once it is mounted; localai.service starts "
        "Docker then.\n[Unit]\n"
        f"ConditionPathIsMountPoint={mount_point}\n"
    )


def _format_cpus(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so scripts stay readable in the user data."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(config: dict[str, object]) -> str:
    body = yaml.dump(
        config,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return HEADER + body


# ---------------------------------------------------------------------------------------
# Validation: a bad spec stops the render with a message naming the field.


def _validate(spec: BootstrapSpec) -> None:
    if spec.fleet is None:
        _check_path("volume_device", spec.volume_device)
    else:
        _validate_fleet(spec, spec.fleet)
    _check_path("mount_point", spec.mount_point)
    segments = spec.mount_point.split("/")[1:]  # '//x', 'x/', '.' and '..' are not normalised
    if any(part in ("", ".", "..") for part in segments):  # '/' gives [''], refused too
        raise ValueError(
            f"mount_point {spec.mount_point!r} must be a normalised absolute path other "
            "than /, e.g. '/var/lib/localai'"
        )
    for name in ("cpu_image", "gpu_image", "api_key_parameter"):
        if not getattr(spec, name):
            raise ValueError(f"{name} must not be empty")
    namespace = spec.metrics_namespace
    if namespace and (not _NAMESPACE.fullmatch(namespace) or namespace.startswith("AWS/")):
        raise ValueError(f"metrics_namespace {spec.metrics_namespace!r} is not a namespace of ours")
    if spec.bundle_bucket and not _BUCKET.fullmatch(spec.bundle_bucket):
        raise ValueError(f"bundle_bucket {spec.bundle_bucket!r} is not an S3 bucket name")
    if spec.ecr_registry:
        if not _ECR_REGISTRY.fullmatch(spec.ecr_registry):
            raise ValueError(
                f"ecr_registry {spec.ecr_registry!r} is not a private ECR registry name like "
                "'123456789012.dkr.ecr.us-east-1.amazonaws.com'"
            )
        if spec.install_docker:
            raise ValueError(
                "install_docker with ecr_registry: a host with egress none cannot install "
                "packages; its AMI must ship Docker"
            )
        for name in ("cpu_image", "gpu_image"):
            image = getattr(spec, name)
            if image and not image.startswith(f"{spec.ecr_registry}/"):
                raise ValueError(f"{name} {image!r} is not in {spec.ecr_registry}")
    if not 1 <= spec.port <= 65535:
        raise ValueError(f"port must be between 1 and 65535, got {spec.port}")
    if not _REGION.fullmatch(spec.region):
        raise ValueError(f"region {spec.region!r} is not an AWS region name like 'us-east-1'")
    if not spec.cpu_limit > 0:
        raise ValueError(f"cpu_limit must be > 0, got {spec.cpu_limit}")
    if spec.memory_limit_mb < 256:
        raise ValueError(f"memory_limit_mb must be at least 256, got {spec.memory_limit_mb}")
    if spec.threads < 1:
        raise ValueError(f"threads must be at least 1, got {spec.threads}")
    if spec.parallel_requests < 1:
        raise ValueError(f"parallel_requests must be at least 1, got {spec.parallel_requests}")
    if spec.volume_wait_s < 1:
        raise ValueError(f"volume_wait_s must be at least 1, got {spec.volume_wait_s}")
    if not _MODEL_NAME.fullmatch(spec.default_model):
        raise ValueError(
            f"default_model {spec.default_model!r} may only contain letters, digits and . _ : / -"
        )
    _check_models("cpu_models", spec.cpu_models, spec.default_model)
    if spec.gpu_capable:
        _check_models("gpu_models", spec.gpu_models, spec.default_model)
    for key, value in spec.extra_env.items():
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"extra_env key {key!r} is not a valid environment variable name")
        if key in CONTAINER_ENV:
            raise ValueError(
                f"extra_env must not set {key}: the bootstrap sets it (the API key comes "
                f"from SSM; threads and parallelism have their own settings). Reserved: "
                f"{', '.join(sorted(CONTAINER_ENV))}"
            )
        if any(c in value for c in "\n\r\0"):
            raise ValueError(f"extra_env value of {key} must be a single line")


def _check_path(name: str, value: str) -> None:
    if not value.startswith("/") or not _CONF_VALUE.fullmatch(value):
        raise ValueError(
            f"{name} {value!r} must be an absolute path of letters, digits and _ . / : @ % + , = -"
        )


def _check_models(name: str, models: dict[str, str], default_model: str) -> None:
    if not models:
        raise ValueError(f"{name} must contain at least one model YAML")
    names = set()
    for file_name, text in models.items():
        if not _MODEL_FILE.fullmatch(file_name):
            raise ValueError(
                f"{name}: file name {file_name!r} must look like 'my-model.yaml' "
                "(letters, digits, . _ -; no directories)"
            )
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{name}[{file_name!r}] is not valid YAML: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError(f"{name}[{file_name!r}] must be a LocalAI model config with a name")
        names.add(data["name"])
    if default_model not in names:
        raise ValueError(
            f"default_model {default_model!r} is not among {name} ({', '.join(sorted(names))})"
        )


def _validate_fleet(spec: BootstrapSpec, fleet: FleetBoot) -> None:
    if spec.volume_device:
        raise ValueError(
            "volume_device must be empty on a fleet host: each instance finds its own "
            "weights volume (localai-host-profile)"
        )
    if spec.never_format:
        raise ValueError("never_format is for a volume the user named; a fleet's are its own")
    if not fleet.profiles:
        raise ValueError("a fleet host needs at least one instance-type profile")
    for name in (fleet.autoscaling_group, fleet.lifecycle_hook):
        if not _ASG_NAME.fullmatch(name):
            raise ValueError(
                f"Auto Scaling name {name!r} may only contain letters, digits and _ / -"
            )
    for instance_type, profile in fleet.profiles.items():
        if not _INSTANCE_TYPE.fullmatch(instance_type):
            raise ValueError(f"{instance_type!r} is not an EC2 instance type name")
        # Each profile must be a host this renderer accepts on its own.
        try:
            _validate(
                replace(
                    spec,
                    fleet=None,
                    volume_device="/dev/placeholder",
                    cpu_limit=profile.cpu_limit,
                    memory_limit_mb=profile.memory_limit_mb,
                    threads=profile.threads,
                    gpu_capable=profile.gpu_capable,
                    cpu_models=profile.cpu_models,
                    gpu_models=profile.gpu_models,
                )
            )
        except ValueError as error:
            raise ValueError(f"profile {instance_type}: {error}") from error
