"""Stack configuration (namespace ``localai:``), validated once, before any resource.

The flow is one-way: stack config -> :class:`Settings` -> Args of one target component.
Every default lives here (Pulumi.yaml ``config:`` defaults are not applied under test
mocks). A bad value stops the program with ONE message naming the key, the value and
what is allowed; see :func:`load_settings`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components.aws_limits import (
    ASG_MAX_INSTANCE_TYPES,
    CLOUDWATCH_RETENTION_DAYS,
    GP3_BASELINE_THROUGHPUT_MIBS,
    GP3_MAX_SIZE_GIB,
    GP3_MAX_THROUGHPUT_MIBS,
    GP3_MIN_SIZE_GIB,
    tag_problems,
)
from components.errors import ConfigError
from components.sizing.cost import DEFAULT_UTILISATION, RequestShape

NAMESPACE = "localai"
DEFAULT_MODEL = "phi-3.5-mini-instruct"
DEFAULT_EMBEDDING_MODEL = "nomic-embed-text-v1.5"
DEFAULT_LOCALAI_VERSION = "v2.24.0"
DEFAULT_CPU_INSTANCE_TYPE = "c7a.xlarge"  # README "Choosing the default CPU type"
DEFAULT_GPU_INSTANCE_TYPE = "g6.xlarge"
CPU_IMAGE_TEMPLATE = "localai/localai:{version}-ffmpeg-core"
GPU_IMAGE_TEMPLATE = "localai/localai:{version}-cublas-cuda12-core"
"""LocalAI's core CUDA 12 image: the same CUDA llama.cpp backend as the brief's
``-cublas-cuda12``, which LocalAI builds as its extras image (Python backends for
transformers, diffusers and more) (v2.24.0:.github/workflows/image.yml, tag-suffix and
image-type of the matrix entries; docs/content/docs/getting-started/container-images.md:
"Core Images - Smaller images without predownload python dependencies", and the docs run
LLMs with ``--gpus all localai/localai:<version>-cublas-cuda12-core``). Its size could not
be checked from here (no registry). ``localai:gpuImage`` still takes any tag."""
# Keys whose stack-config value is JSON (Pulumi stores lists and objects as JSON text).
_JSON_KEYS = frozenset(
    {"models", "allowedCidrs", "sshCidrs", "fleet", "extraEnv", "tags", "compareWith", "schedule"}
)
# Keys set for the other target are ignored with a warning (``fleet`` is not one of them:
# on the docker target it is refused, since a fleet is never local).
_AWS_ONLY_KEYS = (
    "hostMetrics",
    "compareWith",
    "expectedUtilisation",
    "schedule",
    "alarmEmail",
    "instanceType",
    "volumeSizeGb",
    "volumeThroughput",
    "allowedCidrs",
    "allowAnywhere",
    "public",
    "sshKeyName",
    "sshCidrs",
    "vpcId",
    "subnetId",
    "logRetentionDays",
    "rootVolumeSizeGb",
    "weightsVolumeId",
    "amiId",
    "vpcEndpoints",
    "egress",
    "allowRouteOut",
)
_DOCKER_ONLY_KEYS = ("bindAddress", "allowNetworkBind")
_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$", re.IGNORECASE)
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{8,1024}")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _check_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a CIDR block; write it like '203.0.113.7/32' or '10.0.0.0/16'"
            ) from None
        raise ValueError(f"{value!r} has host bits set; did you mean '{loose}'?") from None
    if "/" not in value:
        raise ValueError(f"{value!r} needs a prefix length, for example '{network}'")
    return str(network)


def _check_image(value: str) -> str:
    if not _IMAGE_REF.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a container image reference, for example "
            "'localai/localai:v2.24.0-ffmpeg-core'"
        )
    return value


# IANA IPv4 Special-Purpose Address Registry (RFC 6890 and successors): blocks that are not
# globally reachable, plus multicast and reserved space. Callers from them are private.
_NON_GLOBAL_IPV4 = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip
BROAD_PUBLIC_ADDRESSES = 2**24
"""More public IPv4 addresses than a /8 holds (1/256 of the internet) counts as "open to
the internet": ``allowedCidrs`` then needs ``allowAnywhere``; ``sshCidrs`` is refused."""


def public_ipv4_addresses(cidrs: Iterable[str]) -> int:
    """How many globally reachable IPv4 addresses ``cidrs`` admit together (overlaps
    counted once; private, shared, documentation and reserved blocks not at all)."""
    networks = [ipaddress.ip_network(c) for c in cidrs]
    v4 = ipaddress.collapse_addresses(n for n in networks if n.version == 4)
    total = 0
    for network in v4:
        total += network.num_addresses
        for block in _NON_GLOBAL_IPV4:  # the blocks are disjoint
            if network.subnet_of(block):
                total -= network.num_addresses
                break
            if block.subnet_of(network):
                total -= block.num_addresses
    return total


Cidr = Annotated[str, AfterValidator(_check_cidr)]
ImageRef = Annotated[str, AfterValidator(_check_image)]


def _is_embedder(catalog: object, name: str) -> bool:
    """Whether the catalog's ``name`` serves embeddings (the catalog as model configs; a
    bare list of names, as some callers pass, knows no kinds)."""
    config = catalog.get(name) if isinstance(catalog, Mapping) else None
    return bool(getattr(config, "embeddings", False))


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        hide_input_in_errors=False,
    )


_CERTIFICATE_ARN = r"^arn:aws[a-z-]*:acm:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate/[0-9a-f-]{36}$"
_HOSTNAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
DOMAIN_NAME_MAX_CHARS = 253  # RFC 1035 section 2.3.4 (less the root's dot)
SINGLE_VM_ONLY_KEYS = (
    "instanceType", "subnetId", "weightsVolumeId", "public", "vpcEndpoints", "schedule",
    "hostMetrics",
)  # fmt: skip
"""Keys of the single VM that a fleet has no use for: ``fleet.instanceTypes`` replaces
``instanceType``, ``fleet.subnetIds`` replaces ``subnetId``, every instance has its own
weights volume, and ``fleet.internal`` says who reaches the load balancer."""


class SpotSettings(_Section):
    """``fleet.spot``: Spot capacity above an on-demand base (price-capacity-optimized)."""

    on_demand_base_capacity: int = Field(default=1, ge=0, le=100)
    """Instances that are always on-demand: the floor that a Spot reclaim cannot take."""
    on_demand_percentage_above_base: int = Field(default=0, ge=0, le=100)


class WarmPoolSettings(_Section):
    """``fleet.warmPool``: stopped, fully prepared instances that a scale-out starts."""

    min_size: int = Field(default=1, ge=0, le=100)
    max_prepared_capacity: int | None = Field(default=None, ge=0, le=100)
    """At most this many instances in the pool and the group together; default maxSize."""
    reuse_on_scale_in: bool = True


def _check_timezone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA time zone, e.g. 'Europe/Berlin' or 'UTC'"
        ) from None
    return value


def _check_eventbridge_cron(value: str) -> str:
    from components.schedule.cron import parse_eventbridge

    parse_eventbridge(value)
    return value


def _check_unix_cron(value: str) -> str:
    from components.schedule.cron import parse_unix

    parse_unix(value)
    return value


TimeZone = Annotated[str, AfterValidator(_check_timezone)]
MAX_FLEET_SCHEDULE_ENTRIES = 50


class ScheduleSettings(_Section):
    """``localai:schedule``: EventBridge Scheduler stops and starts the single VM."""

    stop: Annotated[str, AfterValidator(_check_eventbridge_cron)]
    start: Annotated[str, AfterValidator(_check_eventbridge_cron)]
    timezone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _stop_is_not_start(self) -> ScheduleSettings:
        if " ".join(self.stop.split()) == " ".join(self.start.split()):
            raise ValueError("stop and start are the same expression: the host would never stop")
        return self


class FleetScheduleEntry(_Section):
    """One ``fleet.schedule`` entry: an Auto Scaling scheduled action."""

    recurrence: Annotated[str, AfterValidator(_check_unix_cron)]
    min_size: int | None = Field(default=None, ge=0, le=100)
    max_size: int | None = Field(default=None, ge=0, le=100)
    desired_size: int | None = Field(default=None, ge=0, le=100)
    timezone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _changes_something(self) -> FleetScheduleEntry:
        sizes = (self.min_size, self.max_size, self.desired_size)
        if all(v is None for v in sizes):
            raise ValueError("a schedule entry needs minSize, maxSize or desiredSize")
        low, high, want = sizes
        if low is not None and high is not None and low > high:
            raise ValueError(f"minSize ({low}) must not exceed maxSize ({high})")
        if want is not None and (
            (low is not None and want < low) or (high is not None and want > high)
        ):
            raise ValueError(f"desiredSize ({want}) must lie between this entry's sizes")
        return self


class FleetSettings(_Section):
    """``localai:fleet``: an Auto Scaling group behind an Application Load Balancer."""

    instance_types: list[str] = Field(min_length=1, max_length=ASG_MAX_INSTANCE_TYPES)
    """In order of preference (on-demand ``prioritized``)."""
    min_size: int = Field(default=1, ge=0, le=100)
    max_size: int = Field(default=2, ge=1, le=100)
    desired_size: int | None = Field(default=None, ge=0, le=100)
    spot: SpotSettings | None = None
    warm_pool: WarmPoolSettings | None = None
    certificate_arn: str | None = Field(default=None, pattern=_CERTIFICATE_ARN)
    domain_name: str | None = Field(
        default=None, pattern=_HOSTNAME, max_length=DOMAIN_NAME_MAX_CHARS
    )
    hosted_zone_id: str | None = Field(default=None, pattern=r"^Z[A-Z0-9]{1,31}$")
    internal: bool = False
    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] | None = None
    """Subnets for the instances (and the load balancer unless loadBalancerSubnetIds)."""
    load_balancer_subnet_ids: (
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] | None
    ) = None
    weights_snapshot_id: str | None = Field(default=None, pattern=r"^snap-[0-9a-f]{8,17}$")
    """Each new instance's weights volume starts from this snapshot (weights already there)."""
    target_requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    min_healthy_percentage: int = Field(default=100, ge=0, le=100)
    """Instance refresh keeps this share of the group in service (new before old at 100)."""
    schedule: list[FleetScheduleEntry] = Field(
        default_factory=list, max_length=MAX_FLEET_SCHEDULE_ENTRIES
    )
    """Scheduled actions (Unix cron); once set, they own the group's sizes."""

    @model_validator(mode="after")
    def _schedule_comes_back(self) -> FleetSettings:
        to_zero = [e for e in self.schedule if e.min_size == 0 or e.max_size == 0]
        back = [e for e in self.schedule if e.min_size is not None and e.min_size >= 1]
        if to_zero and not back:
            raise ValueError(
                f"schedule takes the group to 0 ({to_zero[0].recurrence!r}) and no entry sets "
                "minSize 1 or more again: the group scales on requests per instance, and with "
                "none it counts no request, so it would stay at 0; add an entry that brings "
                "it back"
            )
        return self

    @field_validator("instance_types")
    @classmethod
    def _types_are_known(cls, value: list[str]) -> list[str]:
        from components.sizing.instance_types import lookup  # static catalog, no I/O

        for name in value:
            lookup(name)  # raises ValueError naming the supported families/sizes
        duplicates = sorted({n for n in value if value.count(n) > 1})
        if duplicates:
            raise ValueError(f"instanceTypes lists {', '.join(duplicates)} more than once")
        return value

    @model_validator(mode="after")
    def _sizes_are_ordered(self) -> FleetSettings:
        if self.min_size == 0:
            # ALBRequestCountPerTarget counts requests per registered target: with none
            # there is no datapoint, and target tracking never scales out from zero (the
            # load balancer answers 503 without counting a request).
            raise ValueError(
                "minSize 0 cannot scale out again: the group scales on requests per "
                "instance, and with no instance the load balancer counts none (it answers "
                "503). Use minSize 1 or more"
            )
        if self.min_size > self.max_size:
            raise ValueError(f"minSize ({self.min_size}) must not exceed maxSize ({self.max_size})")
        desired = self.desired_size
        if desired is not None and not self.min_size <= desired <= self.max_size:
            raise ValueError(
                f"desiredSize ({desired}) must lie between minSize ({self.min_size}) and "
                f"maxSize ({self.max_size})"
            )
        return self

    @model_validator(mode="after")
    def _tls_is_complete(self) -> FleetSettings:
        if self.hosted_zone_id is not None and self.domain_name is None:
            raise ValueError("hostedZoneId needs domainName: the name to create in that zone")
        if self.certificate_arn is not None and self.domain_name is None:
            raise ValueError(
                "certificateArn needs domainName: the name the certificate is for, which "
                "OPENAI_BASE_URL then uses (the load balancer's own DNS name cannot match it)"
            )
        if (
            self.domain_name is not None
            and self.hosted_zone_id is None
            and self.certificate_arn is None
        ):
            raise ValueError(
                f"domainName {self.domain_name!r} without hostedZoneId: a certificate is "
                "requested from ACM with DNS validation in that Route 53 zone; set "
                "hostedZoneId, or certificateArn for a certificate you already have"
            )
        return self

    @model_validator(mode="after")
    def _warm_pool_fits_aws(self) -> FleetSettings:
        if self.warm_pool is None:
            return self
        # PutWarmPool: "This operation cannot be called on an Auto Scaling group that has
        # a mixed instances policy or a launch template or launch configuration that
        # requests Spot Instances" (EC2 Auto Scaling API Reference, PutWarmPool).
        if self.spot is not None:
            raise ValueError(
                "warmPool cannot be combined with spot: AWS refuses a warm pool on a group "
                "that requests Spot Instances"
            )
        if len(self.instance_types) > 1:
            raise ValueError(
                f"warmPool needs exactly one instance type (got {len(self.instance_types)}): "
                "AWS refuses a warm pool on a group with a mixed instances policy, which "
                "several types need"
            )
        return self

    @property
    def tls(self) -> bool:
        return self.certificate_arn is not None or self.hosted_zone_id is not None


class CompareWithSettings(_Section):
    """``localai:compareWith``: a hosted model's list price, to find the break-even.

    No price is built in: hosted prices change, and only the team knows which model it
    would otherwise call. The request shape is the workload both sides are priced on."""

    input_usd_per_1m: float = Field(ge=0, le=10_000, alias="inputUsdPer1M")
    output_usd_per_1m: float = Field(ge=0, le=10_000, alias="outputUsdPer1M")
    input_tokens_per_request: int = Field(default=RequestShape().prompt_tokens, ge=1, le=1_048_576)
    output_tokens_per_request: int = Field(default=RequestShape().output_tokens, ge=1, le=1_048_576)

    @model_validator(mode="after")
    def _not_free(self) -> CompareWithSettings:
        if self.input_usd_per_1m == 0 and self.output_usd_per_1m == 0:
            raise ValueError(
                "inputUsdPer1M and outputUsdPer1M are both 0: a free hosted model never "
                "breaks even; give its list prices"
            )
        return self


HOST_SERVICE_PORTS = frozenset({22, 53, 111, 2375, 2376, 2377, 4789, 7946})
"""Ports an EC2 host's own services listen on (sshd, systemd-resolved, rpcbind, the Docker
API and swarm), refused as the API port on AWS: the API's ingress rule would admit them."""


class Settings(_Section):
    """Everything a stack can configure, with defaults. Keys are the camelCase names."""

    target: Literal["docker", "aws"] = "docker"
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    models: list[str] = Field(default_factory=lambda: [DEFAULT_MODEL], min_length=1)
    # Served on /v1/embeddings beside the chat models (OPENAI_EMBEDDING_MODEL); "none": no
    # embeddings model.
    embedding_model: str | None = DEFAULT_EMBEDDING_MODEL
    localai_version: str = DEFAULT_LOCALAI_VERSION
    image: ImageRef | None = None
    gpu_image: ImageRef | None = None
    api_key: SecretStr | None = None
    hf_token: SecretStr | None = None
    port: int = Field(default=8080, ge=1, le=65535)
    threads: int | None = Field(default=None, gt=0, le=512)
    context_size: int | None = Field(default=None, ge=256, le=1_048_576)
    parallel_requests: int = Field(default=1, gt=0, le=64)
    cpu_limit: float | None = Field(default=None, gt=0, le=512)
    memory_limit_mb: int | None = Field(default=None, ge=512, le=4_194_304)
    extra_env: dict[str, str] = Field(default_factory=dict)
    # Readiness: `pulumi up` returns when the default model answers.
    wait_for_ready: bool | None = None
    ready_timeout_seconds: int = Field(default=3600, ge=30, le=6 * 3600)
    keep_volume_on_destroy: bool = True
    keep_removed_weights: bool = False
    """Weights of a model removed from the stack are moved out of LocalAI's models directory
    (kept on the volume) instead of deleted."""
    web_ui: bool = False
    log_prompts: bool = False
    """Allows LocalAI's debug logging in extraEnv, which writes prompts to the logs."""
    # docker target
    bind_address: str = "127.0.0.1"
    allow_network_bind: bool = False
    # aws target
    instance_type: str | None = None
    volume_size_gb: int | None = Field(default=None, ge=GP3_MIN_SIZE_GIB, le=GP3_MAX_SIZE_GIB)
    volume_throughput: int = Field(
        default=250, ge=GP3_BASELINE_THROUGHPUT_MIBS, le=GP3_MAX_THROUGHPUT_MIBS
    )
    root_volume_size_gb: int | None = Field(default=None, ge=8, le=16_384)
    allowed_cidrs: list[Cidr] = Field(default_factory=list)
    allow_anywhere: bool = False
    public: bool = True
    fleet: FleetSettings | None = None
    ssh_key_name: str | None = None
    ssh_cidrs: list[Cidr] = Field(default_factory=list)
    vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    subnet_id: str | None = Field(default=None, pattern=r"^subnet-[0-9a-f]{8,17}$")
    weights_volume_id: str | None = Field(default=None, pattern=r"^vol-[0-9a-f]{8,17}$")
    ami_id: str | None = Field(default=None, pattern=r"^ami-[0-9a-f]{8,17}$")
    vpc_endpoints: bool = False
    egress: Literal["internet", "none"] = "internet"
    """``none``: the host reaches only the VPC endpoints and the stack's S3 bucket (README
    "Zero egress"); image and weights come from the stack's own ECR repository and bucket."""
    allow_route_out: bool = False
    """With egress none: accept a subnet whose 0.0.0.0/0 route leads to an internet or NAT
    gateway (the security group still blocks it)."""
    log_retention_days: int = 30
    compare_with: CompareWithSettings | None = None
    expected_utilisation: float = Field(default=DEFAULT_UTILISATION, gt=0, le=1)
    alarm_email: str | None = Field(
        default=None, pattern=r"^[^@\s,;'\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$", max_length=254
    )
    """Subscribed to the stack's alarm topic (AWS sends a confirmation mail first)."""
    host_metrics: bool = True
    """The single VM runs Amazon's CloudWatch agent (CPU, memory, weights disk, GPU) and
    alarms when the weights volume is over 90% full. ``false`` leaves the agent out: about
    1.2 KB of EC2's 16 KiB of user data, for a host with many models. (A fleet's hosts
    always run it: their files travel in a bundle, with no such limit.)"""
    schedule: ScheduleSettings | None = None
    """Stop and start the single VM (EventBridge Scheduler); ``fleet.schedule`` for a fleet."""
    """The share of its running hours a host serves: the cost per million tokens is
    stated at full use and at this share."""
    tags: dict[str, str] = Field(default_factory=dict)

    # -- single-key checks ---------------------------------------------------------------

    @field_validator("models")
    @classmethod
    def _models_exist(cls, value: list[str], info: ValidationInfo) -> list[str]:
        duplicates = sorted({m for m in value if value.count(m) > 1})
        if duplicates:
            raise ValueError(f"lists {duplicates} more than once")
        catalog = (info.context or {}).get("catalog")
        if catalog is not None:
            unknown = [m for m in value if m not in catalog]
            if unknown:
                raise ValueError(
                    f"{unknown} not in model_configs/; available: {sorted(catalog)} "
                    "(add a model by dropping <name>.yaml into model_configs/)"
                )
            embedders = [m for m in value if _is_embedder(catalog, m)]
            if embedders:
                raise ValueError(
                    f"{embedders} serve embeddings, not chat (embeddings: true in their "
                    "files): set localai:embeddingModel instead"
                )
        return value

    @field_validator("embedding_model", mode="before")
    @classmethod
    def _embedding_model_exists(cls, value: object, info: ValidationInfo) -> object:
        if value == "none":
            return None
        catalog = (info.context or {}).get("catalog")
        if isinstance(value, str) and catalog is not None:
            if value not in catalog:
                embedders = sorted(m for m in catalog if _is_embedder(catalog, m))
                raise ValueError(
                    f"{value!r} not in model_configs/; embeddings models there: {embedders}, "
                    "or 'none'"
                )
            if isinstance(catalog, Mapping) and not _is_embedder(catalog, value):
                raise ValueError(
                    f"{value!r} is a chat model (its file has no embeddings: true, which "
                    "LocalAI needs to serve /v1/embeddings with it): name an embeddings "
                    "model, or 'none'"
                )
        return value

    @field_validator("localai_version")
    @classmethod
    def _version_is_a_tag(cls, value: str) -> str:
        if not _VERSION.fullmatch(value):
            raise ValueError(f"must be a release tag like 'v2.24.0' (got {value!r})")
        return value

    @field_validator("api_key")
    @classmethod
    def _key_is_usable(cls, value: SecretStr | None) -> SecretStr | None:
        raw = value.get_secret_value() if value is not None else None
        if raw is not None and (len(raw) < 16 or any(c.isspace() or c in "'\"\\$`," for c in raw)):
            raise ValueError(
                "must be at least 16 characters without spaces, quotes or commas (LocalAI "
                "splits API_KEY on commas: a comma would add a second, weaker key; leave it "
                "unset to have one generated)"
            )
        return value

    @field_validator("bind_address")
    @classmethod
    def _bind_is_an_ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"must be an IP address such as '127.0.0.1' (got {value!r})") from None
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_allowed(cls, value: int) -> int:
        if value not in CLOUDWATCH_RETENTION_DAYS:
            raise ValueError(
                f"must be one of CloudWatch's retention periods {CLOUDWATCH_RETENTION_DAYS}"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tags_fit_aws(cls, value: dict[str, str]) -> dict[str, str]:
        problems = tag_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("extra_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _ENV_NAME.fullmatch(k)]
        if bad:
            raise ValueError(f"environment variable names must be UPPER_SNAKE_CASE: {bad}")
        if {"API_KEY", "LOCALAI_API_KEY"} & set(value):
            raise ValueError("the API key is set with 'localai:apiKey' (a secret), not here")
        from components.serving import REFUSED_ENV, RESERVED_ENV

        reserved = sorted(set(value) & RESERVED_ENV)
        if reserved:
            raise ValueError(
                f"{reserved} are set by the package itself (threads, parallel requests, "
                "single-active backend, models path and address come from their own keys)"
            )
        refused = [f"{name} {REFUSED_ENV[name]}" for name in sorted(set(value) & set(REFUSED_ENV))]
        if refused:
            raise ValueError("refused: " + "; ".join(refused))
        return value

    @field_validator("hf_token")
    @classmethod
    def _token_is_a_bearer_token(cls, value: SecretStr | None) -> SecretStr | None:
        # RFC 6750 b64token: anything else could end the quoted header in curl's config
        # (a '"' and a newline added a directive of its own).
        if value is not None and not _BEARER_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError(
                "must be a bearer token: 8 to 1024 letters, digits and -._~+/= (a Hugging "
                "Face token looks like hf_ followed by letters and digits)"
            )
        return value

    @model_validator(mode="after")
    def _debug_logging_is_opted_into(self) -> Settings:
        from components.serving import debug_logging_env

        found = debug_logging_env(self.extra_env)
        if found and not self.log_prompts:
            raise ValueError(
                f"[extraEnv] {', '.join(found)} turns on LocalAI's debug logging, which logs "
                "every prompt and answer (to CloudWatch on AWS). Set 'localai:logPrompts "
                "true' as well if that is intended"
            )
        return self

    @field_validator("instance_type")
    @classmethod
    def _instance_type_is_supported(cls, value: str | None) -> str | None:
        from components.sizing.instance_types import lookup  # static catalog, no I/O

        if value is not None:
            lookup(value)  # raises ValueError naming the supported families/sizes
        return value

    # -- cross-key checks -----------------------------------------------------------------

    @model_validator(mode="after")
    def _local_port_stays_local(self) -> Settings:
        if self.target != "docker" or ipaddress.ip_address(self.bind_address).is_loopback:
            return self
        if not self.allow_network_bind:
            raise ValueError(
                f"[bindAddress] {self.bind_address} publishes the endpoint beyond this "
                "machine, and Docker's published ports bypass host firewalls such as ufw; "
                "set 'localai:allowNetworkBind true' as well if that is intended"
            )
        return self

    @model_validator(mode="after")
    def _port_is_not_a_host_service(self) -> Settings:
        if self.target != "aws":
            return self
        if self.port in HOST_SERVICE_PORTS or (self.port < 1024 and self.port not in (80, 443)):
            raise ValueError(
                f"[port] {self.port} is a port the host's own services use or may use (SSH "
                "22, DNS 53, Docker 2375-2377, any system port below 1024 but 80 and 443): "
                "the security group rule for the API would open that service too. Use the "
                "default 8080 or another port from 1024 up"
            )
        return self

    @model_validator(mode="after")
    def _aws_is_secure_by_default(self) -> Settings:
        if self.target != "aws":
            if self.fleet is not None:
                raise ValueError(
                    "[fleet] an autoscaled fleet runs on EC2: set 'localai:target aws', or "
                    "remove 'localai:fleet' for the local Docker target"
                )
            return self
        self._egress_is_sealed()
        if self.fleet is not None:
            self._fleet_fits(self.fleet)
        elif self.public and not self.allowed_cidrs:
            raise ValueError(
                "[allowedCidrs] a public AWS endpoint needs 'allowedCidrs': the networks "
                "that may call it, for example '[\"203.0.113.7/32\"]'. Or set "
                "'localai:public false' and reach it through an SSM port forward"
            )
        for key, cidrs in (("allowedCidrs", self.allowed_cidrs), ("sshCidrs", self.ssh_cidrs)):
            v6 = [c for c in cidrs if ipaddress.ip_network(c).version == 6]
            if v6:
                raise ValueError(
                    f"[{key}] {v6} are IPv6, but the host has no IPv6 address (its subnet "
                    "and instance are IPv4 only): list the IPv4 networks of the callers"
                )
        broad = public_ipv4_addresses(self.allowed_cidrs)
        if broad > BROAD_PUBLIC_ADDRESSES and not self.allow_anywhere:
            raise ValueError(
                f"[allowedCidrs] admits {broad:,} public IPv4 addresses, more than a /8 "
                f"({BROAD_PUBLIC_ADDRESSES:,}): that is open to the internet; list the "
                "callers' networks, or set 'localai:allowAnywhere true' if it is intended"
            )
        ssh_broad = public_ipv4_addresses(self.ssh_cidrs)
        if ssh_broad > BROAD_PUBLIC_ADDRESSES:
            raise ValueError(
                f"[sshCidrs] admits {ssh_broad:,} public IPv4 addresses, more than a /8 "
                f"({BROAD_PUBLIC_ADDRESSES:,}): port 22 would be open to the internet. "
                "List your own networks, or use SSM Session Manager (no port 22 needed)"
            )
        if bool(self.ssh_key_name) != bool(self.ssh_cidrs):
            raise ValueError(
                "[sshKeyName] SSH needs both 'sshKeyName' and 'sshCidrs' (access is by SSM "
                "Session Manager otherwise, with no port 22 open)"
            )
        if self.accelerator == "gpu" and self.instance_type is not None:
            from components.sizing.instance_types import lookup

            if lookup(self.instance_type).gpu_count == 0:
                raise ValueError(
                    f"[accelerator] 'gpu' needs a GPU instance type, but "
                    f"{self.instance_type} has no GPU; use e.g. '{DEFAULT_GPU_INSTANCE_TYPE}' "
                    "or set accelerator to 'auto' or 'cpu'"
                )
        return self

    def _egress_is_sealed(self) -> None:
        if self.egress != "none":
            if self.allow_route_out:
                raise ValueError(
                    "[allowRouteOut] accepts a route out for a host with 'localai:egress none' "
                    "only; with the default egress the host uses that route"
                )
            return
        if self.public and self.fleet is None:
            raise ValueError(
                "[public] a host with 'localai:egress none' has no public address and is "
                "reached through an SSM port forward: set 'localai:public false'"
            )
        outside = public_ipv4_addresses(self.ssh_cidrs)
        if outside:
            raise ValueError(
                f"[sshCidrs] admit {outside:,} public IPv4 addresses, but a host with "
                "'localai:egress none' answers nothing outside the VPC: list private "
                "networks (a bastion's), or use SSM Session Manager"
            )

    def _fleet_fits(self, fleet: FleetSettings) -> None:
        single = [k for k in SINGLE_VM_ONLY_KEYS if k in self.model_fields_set_aliases()]
        if single:
            raise ValueError(
                f"[{single[0]}] {', '.join(single)}: the single VM's, meaningless with "
                "localai:fleet; use fleet.instanceTypes for the types, fleet.subnetIds for "
                "the subnets, fleet.internal for a load balancer reachable inside the VPC "
                "only (each instance has its own weights volume) and fleet.schedule for "
                "scheduled sizes"
            )
        if not fleet.internal and not self.allowed_cidrs:
            raise ValueError(
                "[allowedCidrs] an internet-facing load balancer needs 'allowedCidrs': the "
                "networks that may call it. Or set 'fleet.internal true' for one reachable "
                "inside the VPC only"
            )
        if self.accelerator == "gpu":
            from components.sizing.instance_types import lookup

            cpu_only = [t for t in fleet.instance_types if lookup(t).gpu_count == 0]
            if cpu_only:
                raise ValueError(
                    f"[accelerator] 'gpu' needs GPU instance types, but "
                    f"{', '.join(cpu_only)} have no GPU"
                )

    # -- derived values -------------------------------------------------------------------

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def served_models(self) -> list[str]:
        """Every model on the host: the chat models, then the embeddings model."""
        return [*self.models, *([self.embedding_model] if self.embedding_model else [])]

    @property
    def cpu_image(self) -> str:
        return self.image or CPU_IMAGE_TEMPLATE.format(version=self.localai_version)

    @property
    def cuda_image(self) -> str:
        return self.gpu_image or GPU_IMAGE_TEMPLATE.format(version=self.localai_version)

    @property
    def aws_instance_type(self) -> str:
        if self.instance_type:
            return self.instance_type
        if self.accelerator == "gpu":
            return DEFAULT_GPU_INSTANCE_TYPE
        return DEFAULT_CPU_INSTANCE_TYPE

    def ignored_keys(self) -> list[str]:
        """Keys that were set but mean nothing for the chosen target (for a warning)."""
        other = _AWS_ONLY_KEYS if self.target == "docker" else _DOCKER_ONLY_KEYS
        return [key for key in other if key in self.model_fields_set_aliases()]

    def model_fields_set_aliases(self) -> set[str]:
        return {to_camel(name) for name in self.model_fields_set}


def _describe(value: Any) -> str:
    if value is None:
        return "(not set)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_errors(
    error: ValidationError, raw: Mapping[str, Any], secret_keys: Iterable[str] = ()
) -> str:
    """One line per problem. A value is shown to help, except a secret's (apiKey, hfToken,
    any key set with --secret) and an unknown key's (a misspelt secret is still one)."""
    hidden = {"apiKey", "hfToken", *secret_keys}
    lines = [f"{NAMESPACE} configuration is invalid:"]
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(to_camel(f) for f in Settings.model_fields))
            nested = len(loc) > 1
            lines.append(
                f"  - {NAMESPACE}:{'.'.join(loc)}: unknown key"
                + ("" if nested else f"; the keys are: {allowed}")
            )
            continue
        match = re.match(r"^\[(\w+)\] (.*)$", message, re.DOTALL)
        if match:  # a cross-key rule names its key itself
            key, message = match.group(1), match.group(2)
            shown = "'[secret]'" if key in hidden else _describe(raw.get(key))
            lines.append(f"  - {NAMESPACE}:{key} = {shown}: {message}")
            continue
        where = ".".join(loc) or "?"
        value = item.get("input") if loc else None
        if loc and loc[0] in hidden:
            value = "[secret]"
        lines.append(f"  - {NAMESPACE}:{where} = {_describe(value)}: {message}")
    return "\n".join(lines)


def load_settings(
    raw: Mapping[str, Any],
    *,
    catalog: Iterable[str],
    secret_keys: Iterable[str] = (),
) -> Settings:
    """Validate the namespace's raw values (strings as Pulumi stores them).

    ``raw`` maps keys without the namespace prefix (``"port"``) to values. Raises
    :class:`ConfigError` with one message covering every problem.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    secrets = set(secret_keys)
    fields = {to_camel(f) for f in Settings.model_fields}
    for key in sorted(raw):
        camel = to_camel(key)
        if camel != key and camel in fields:
            # The model also takes field names (api_key), and the secret checks below go by
            # the config key: one spelling only, and no value is printed.
            problems.append(
                f"  - {NAMESPACE}:{key}: configuration keys are camelCase; use {NAMESPACE}:{camel}"
            )
    raw = {k: v for k, v in raw.items() if to_camel(k) == k or to_camel(k) not in fields}
    for key, value in raw.items():
        if key in _JSON_KEYS and isinstance(value, str):
            try:
                values[key] = json.loads(value)
            except json.JSONDecodeError:
                if key in ("models", "allowedCidrs", "sshCidrs") and value.strip():
                    # `pulumi config set localai:models phi` stores a bare string.
                    values[key] = [part.strip() for part in value.split(",") if part.strip()]
                else:
                    problems.append(
                        f"  - {NAMESPACE}:{key} = {_describe(value)}: is not valid JSON; "
                        f"set it with `pulumi config set --path` or as a YAML list/map"
                    )
        else:
            values[key] = value
    if "extraEnv" in set(secret_keys):
        problems.append(
            f"  - {NAMESPACE}:extraEnv is a secret: its values would be written into the "
            "EC2 user data, the stack state and the container's env file in plain text. "
            "Secrets go only through keys made for them (localai:apiKey); remove the "
            "secret values from extraEnv"
        )
    if "hfToken" in values and "hfToken" not in set(secret_keys):
        problems.append(
            f"  - {NAMESPACE}:hfToken is stored in plain text; set it with "
            f"`pulumi config set --secret {NAMESPACE}:hfToken <token>`"
        )
    if "apiKey" in values and "apiKey" not in set(secret_keys):
        problems.append(
            f"  - {NAMESPACE}:apiKey is stored in plain text; set it with "
            f"`pulumi config set --secret {NAMESPACE}:apiKey <key>` (or remove it to have "
            "one generated)"
        )
    if problems:
        raise ConfigError("\n".join([f"{NAMESPACE} configuration is invalid:", *problems]))
    try:
        # The model configs themselves when given (their kinds are checked), else the names.
        known = catalog if isinstance(catalog, Mapping) else set(catalog)
        return Settings.model_validate(values, context={"catalog": known})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, values, secrets)) from None


def read_stack_config() -> tuple[dict[str, Any], set[str]]:
    """All ``localai:*`` values of the running stack, and which of them are secrets."""
    from pulumi.runtime import config as runtime_config

    prefix = f"{NAMESPACE}:"
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw = {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}
    env_secrets = set(runtime_config.get_config_secret_keys_env())
    secrets = {
        key
        for key in raw
        if runtime_config.is_config_secret(prefix + key) or prefix + key in env_secrets
    }
    return raw, secrets
