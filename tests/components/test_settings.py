"""components/settings.py: defaults, and one clear message per bad value (no Pulumi needed)."""

from __future__ import annotations

import json
import re

import pytest

from components.errors import ConfigError
from components.settings import Settings, load_settings, public_ipv4_addresses

CATALOG = {"phi-3.5-mini-instruct", "llama-3.1-8b-instruct", "qwen2.5-0.5b-instruct",
           "nomic-embed-text-v1.5"}  # fmt: skip
AWS_OK = {"target": "aws", "allowedCidrs": '["203.0.113.0/24"]'}


def load(raw: dict[str, str], secret_keys: tuple[str, ...] = ()) -> Settings:
    return load_settings(raw, catalog=CATALOG, secret_keys=secret_keys)


def test_empty_config_gives_the_documented_defaults() -> None:
    settings = load({})
    assert settings.target == "docker"
    assert settings.accelerator == "auto"
    assert settings.models == ["phi-3.5-mini-instruct"]
    assert settings.default_model == "phi-3.5-mini-instruct"
    assert settings.port == 8080
    assert settings.bind_address == "127.0.0.1"
    assert settings.cpu_image == "localai/localai:v2.24.0-ffmpeg-core"
    assert settings.cuda_image == "localai/localai:v2.24.0-cublas-cuda12-core"
    assert settings.api_key is None
    assert settings.keep_volume_on_destroy is True
    assert settings.aws_instance_type == "c7a.xlarge"


def test_version_drives_both_images_and_overrides_win() -> None:
    settings = load({"localaiVersion": "v2.24.2", "gpuImage": "registry.example/la:cuda"})
    assert settings.cpu_image == "localai/localai:v2.24.2-ffmpeg-core"
    assert settings.cuda_image == "registry.example/la:cuda"


def test_values_arrive_as_strings_and_are_coerced() -> None:
    settings = load(
        {
            "port": "9000",
            "threads": "6",
            "public": "false",
            "models": '["llama-3.1-8b-instruct"]',
            "cpuLimit": "3.5",
            "target": "aws",
        }
    )
    assert (settings.port, settings.threads, settings.public) == (9000, 6, False)
    assert settings.cpu_limit == 3.5
    assert settings.default_model == "llama-3.1-8b-instruct"


def test_a_plain_string_models_value_is_a_one_item_list() -> None:
    assert load({"models": "qwen2.5-0.5b-instruct"}).models == ["qwen2.5-0.5b-instruct"]


def test_gpu_accelerator_defaults_to_a_gpu_instance_type() -> None:
    assert load({"accelerator": "gpu"}).aws_instance_type == "g6.xlarge"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"target": "kubernetes"},
            r"localai:target = 'kubernetes': Input should be 'docker' or 'aws'",
        ),
        (
            {"accelerator": "tpu"},
            r"localai:accelerator = 'tpu': Input should be 'auto', 'cpu' or 'gpu'",
        ),
        (
            {"models": '["gpt-5"]'},
            r"localai:models = \['gpt-5'\]: \['gpt-5'\] not in model_configs/; available: \[",
        ),
        ({"models": "[]"}, r"localai:models = \[\]: List should have at least 1 item"),
        ({"models": '["phi-3.5-mini-instruct", "phi-3.5-mini-instruct"]'}, r"more than once"),
        ({"port": "0"}, r"localai:port = '0': Input should be greater than or equal to 1"),
        ({"port": "70000"}, r"localai:port = '70000': Input should be less than or equal to 65535"),
        ({"port": "http"}, r"localai:port = 'http': Input should be a valid integer"),
        ({"threads": "-2"}, r"localai:threads = '-2': Input should be greater than 0"),
        ({"cpuLimit": "0"}, r"localai:cpuLimit = '0': Input should be greater than 0"),
        (
            {"memoryLimitMb": "-1"},
            r"localai:memoryLimitMb = '-1': Input should be greater than or equal to 512",
        ),
        ({"contextSize": "0"}, r"localai:contextSize"),
        ({"localaiVersion": "latest"}, r"localai:localaiVersion = 'latest': must be a release tag"),
        ({"bindAddress": "localhost"}, r"localai:bindAddress = 'localhost': must be an IP address"),
        (
            {"image": "not an image"},
            r"localai:image = 'not an image': 'not an image' is not a container image",
        ),
        (
            {**AWS_OK, "allowedCidrs": '["10.0.0.1/8"]'},
            r"has host bits set; did you mean '10.0.0.0/8'",
        ),
        ({**AWS_OK, "allowedCidrs": '["my-office"]'}, r"'my-office' is not a CIDR block"),
        (
            {**AWS_OK, "allowedCidrs": '["203.0.113.7"]'},
            r"needs a prefix length, for example '203.0.113.7/32'",
        ),
        ({"logRetentionDays": "10"}, r"localai:logRetentionDays = '10': must be one of CloudWatch"),
        ({"tragetx": "aws"}, r"localai:tragetx: unknown key; the keys are: .*target"),
        (
            {"fleet": '{"instanceTypes": ["c7a.xlarge"], "minSize": 3, "maxSize": 1}'},
            r"minSize \(3\) must not exceed maxSize \(1\)",
        ),
        ({"extraEnv": '{"API_KEY": "x"}'}, r"the API key is set with 'localai:apiKey'"),
        ({"allowedCidrs": "{not json"}, r"localai:allowedCidrs"),
        ({"fleet": "{not json"}, r"localai:fleet = '\{not json': is not valid JSON"),
        ({"instanceType": "x9z.large"}, r"localai:instanceType = 'x9z.large'"),
        ({"vpcId": "my-vpc"}, r"localai:vpcId = 'my-vpc': String should match pattern"),
    ],
)
def test_bad_value_is_named_with_what_is_allowed(raw: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        load(raw)
    assert str(caught.value).startswith("localai configuration is invalid:")
    assert "Traceback" not in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"target": "k8s", "port": "0", "accelerator": "tpu"})
    message = str(caught.value)
    assert all(key in message for key in ("localai:target", "localai:port", "localai:accelerator"))


def test_public_aws_without_allowed_cidrs_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"localai:allowedCidrs = \(not set\): a public AWS endpoint needs"
    ):
        load({"target": "aws"})


def test_private_aws_needs_no_cidrs() -> None:
    assert load({"target": "aws", "public": "false"}).allowed_cidrs == []


@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/0"],
        ["0.0.0.0/1", "128.0.0.0/1"],  # the whole internet in two halves
        ["11.0.0.0/8", "12.0.0.1/32"],  # one address more than a /8
        ["8.0.0.0/7"],
    ],
)
def test_a_broad_allowed_list_needs_an_explicit_opt_in(cidrs: list[str]) -> None:
    raw = {"target": "aws", "allowedCidrs": json.dumps(cidrs)}
    with pytest.raises(
        ConfigError,
        match=r"localai:allowedCidrs = .*public IPv4 addresses, more than a /8 \(16,777,216\)",
    ):
        load(raw)
    assert load({**raw, "allowAnywhere": "true"}).allowed_cidrs == cidrs


@pytest.mark.parametrize(
    "cidrs",
    [
        ["11.0.0.0/8"],  # exactly a /8 of public space
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "11.0.0.0/8"],  # private: not counted
        ["11.0.0.0/8", "11.1.0.0/16"],  # overlaps counted once
    ],
)
def test_lists_up_to_a_slash_8_of_public_space_need_no_opt_in(cidrs: list[str]) -> None:
    assert load({"target": "aws", "allowedCidrs": json.dumps(cidrs)}).allowed_cidrs == cidrs


@pytest.mark.parametrize(
    ("cidrs", "count"),
    [
        (["0.0.0.0/0"], 3_702_258_688),
        (["0.0.0.0/1", "128.0.0.0/1"], 3_702_258_688),
        (["10.0.0.0/8", "203.0.113.0/24", "100.64.0.0/10"], 0),
        (["8.8.8.0/24", "8.8.8.8/32"], 256),
        (["2001:db8::/32"], 0),
    ],
)
def test_public_address_count(cidrs: list[str], count: int) -> None:
    assert public_ipv4_addresses(cidrs) == count


def test_ssh_open_to_the_internet_is_refused_even_with_allow_anywhere() -> None:
    raw = {**AWS_OK, "sshKeyName": "ops", "sshCidrs": '["0.0.0.0/0"]', "allowAnywhere": "true"}
    with pytest.raises(
        ConfigError, match=r"localai:sshCidrs = .*port 22 would be open to the internet"
    ):
        load(raw)
    assert load({**raw, "sshCidrs": '["198.51.100.7/32"]'}).ssh_cidrs == ["198.51.100.7/32"]


@pytest.mark.parametrize("key", ["allowedCidrs", "sshCidrs"])
def test_ipv6_cidrs_are_refused_because_the_host_has_no_ipv6_address(key: str) -> None:
    raw = {**AWS_OK, "sshKeyName": "ops", "sshCidrs": '["198.51.100.7/32"]'}
    raw[key] = '["2001:db8::/48"]'
    with pytest.raises(
        ConfigError, match=rf"localai:{key} = .*are IPv6, but the host has no IPv6 address"
    ):
        load(raw)


def test_ssh_needs_both_a_key_and_cidrs() -> None:
    with pytest.raises(ConfigError, match=r"localai:sshKeyName = 'ops': SSH needs both"):
        load({**AWS_OK, "sshKeyName": "ops"})
    ok = load({**AWS_OK, "sshKeyName": "ops", "sshCidrs": '["198.51.100.0/24"]'})
    assert ok.ssh_cidrs == ["198.51.100.0/24"]


def test_gpu_accelerator_on_a_cpu_only_type_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"'gpu' needs a GPU instance type, but c7i.xlarge has no GPU"
    ):
        load({**AWS_OK, "accelerator": "gpu", "instanceType": "c7i.xlarge"})


def test_unknown_instance_family_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match=r"c7i.*g6"):
        load({**AWS_OK, "instanceType": "p5.48xlarge"})


def test_api_key_must_be_a_secret() -> None:
    with pytest.raises(
        ConfigError, match=r"stored in plain text; set it with `pulumi config set --secret"
    ):
        load({"apiKey": "sk-0123456789abcdef0123"})
    settings = load({"apiKey": "sk-0123456789abcdef0123"}, secret_keys=("apiKey",))
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-0123456789abcdef0123"


def test_a_bad_api_key_is_reported_without_its_value() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"apiKey": "short key"}, secret_keys=("apiKey",))
    assert "localai:apiKey = '[secret]'" in str(caught.value)
    assert "short key" not in str(caught.value)


def test_keys_for_the_other_target_are_reported_as_ignored() -> None:
    assert load({"instanceType": "c7i.xlarge"}).ignored_keys() == ["instanceType"]
    assert load({**AWS_OK, "bindAddress": "0.0.0.0"}).ignored_keys() == ["bindAddress"]
    assert load({}).ignored_keys() == []


def test_env_vars_the_package_sets_itself_are_refused_in_extra_env() -> None:
    with pytest.raises(ConfigError, match=r"\['THREADS'\] are set by the package itself"):
        load({"extraEnv": '{"THREADS": "4"}'})
    assert load({"extraEnv": '{"LOCALAI_LOG_LEVEL": "debug"}', "logPrompts": "true"}).extra_env == {
        "LOCALAI_LOG_LEVEL": "debug"
    }


def test_stack_config_is_read_the_way_the_pulumi_cli_passes_it(monkeypatch) -> None:
    """The CLI hands the program PULUMI_CONFIG (JSON) and PULUMI_CONFIG_SECRET_KEYS."""
    import json

    import pulumi

    from components.settings import read_stack_config

    pulumi.runtime.set_all_config({}, secret_keys=[])
    monkeypatch.setenv(
        "PULUMI_CONFIG",
        json.dumps(
            {
                "localai:target": "aws",
                "localai:models": '["qwen2.5-0.5b-instruct"]',
                "localai:apiKey": "sk-0123456789abcdef0123",
                "aws:region": "eu-west-1",
            }
        ),
    )
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["localai:apiKey"]))
    raw, secrets = read_stack_config()
    assert raw == {
        "target": "aws",
        "models": '["qwen2.5-0.5b-instruct"]',
        "apiKey": "sk-0123456789abcdef0123",
    }
    assert secrets == {"apiKey"}


def test_weights_volume_id_must_be_a_volume_id() -> None:
    with pytest.raises(
        ConfigError, match=r"localai:weightsVolumeId = 'my-disk': String should match"
    ):
        load({**AWS_OK, "weightsVolumeId": "my-disk"})
    assert load({**AWS_OK, "weightsVolumeId": "vol-0123456789abcdef0"}).weights_volume_id


@pytest.mark.parametrize(
    ("value", "ok"), [("125", True), ("124", False), ("1000", True), ("1001", False)]
)
def test_volume_throughput_bounds_are_gp3s(value: str, ok: bool) -> None:
    if ok:
        assert load({**AWS_OK, "volumeThroughput": value}).volume_throughput == int(value)
    else:
        with pytest.raises(ConfigError, match=rf"localai:volumeThroughput = '{value}'"):
            load({**AWS_OK, "volumeThroughput": value})


def test_tags_aws_would_refuse_are_refused_with_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"localai:tags = .*'aws:owner': the 'aws:' prefix is reserved"
    ):
        load({**AWS_OK, "tags": '{"aws:owner": "me"}'})
    assert load({**AWS_OK, "tags": '{"team": "ml"}'}).tags == {"team": "ml"}


@pytest.mark.parametrize(
    ("days", "ok"), [("1", True), ("2", False), ("3653", True), ("3654", False)]
)
def test_log_retention_accepts_exactly_cloudwatchs_values(days: str, ok: bool) -> None:
    if ok:
        assert load({**AWS_OK, "logRetentionDays": days}).log_retention_days == int(days)
    else:
        with pytest.raises(ConfigError, match=rf"localai:logRetentionDays = '{days}'"):
            load({**AWS_OK, "logRetentionDays": days})


def test_the_default_log_retention_is_valid_for_cloudwatch() -> None:
    from components.aws_limits import CLOUDWATCH_RETENTION_DAYS

    assert load(AWS_OK).log_retention_days in CLOUDWATCH_RETENTION_DAYS


# == Behaviour pinned at every limit (issue 13) ===========================================
# Numbers here are written out, never imported from the code: a changed bound, default or
# list entry in components/settings.py must fail a test (scripts/mutation.sh checks it).

from pydantic import ValidationError  # noqa: E402

from components.settings import (  # noqa: E402
    CompareWithSettings,
    FleetSettings,
    SpotSettings,
    WarmPoolSettings,
    _describe,
    _format_errors,
)
from components.sizing.instance_types import CATALOG as INSTANCE_CATALOG  # noqa: E402

FLEET_OK = {"instanceTypes": ["g6.xlarge"]}
COMPARE_OK = {"inputUsdPer1M": 0.15, "outputUsdPer1M": 0.6}


def accepts(model, values: dict) -> bool:
    try:
        model.model_validate(values, context={"catalog": CATALOG})
    except ValidationError:
        return False
    return True


# (model, key, lowest allowed, highest allowed, step that leaves the range, other keys)
LIMITS = [
    (Settings, "port", 1, 65535, 1, {}),
    (Settings, "threads", 1, 512, 1, {}),
    (Settings, "contextSize", 256, 1_048_576, 1, {}),
    (Settings, "parallelRequests", 1, 64, 1, {}),
    (Settings, "cpuLimit", 0.01, 512, 0.01, {}),
    (Settings, "memoryLimitMb", 512, 4_194_304, 1, {}),
    (Settings, "readyTimeoutSeconds", 30, 21_600, 1, {}),
    (Settings, "volumeSizeGb", 1, 16_384, 1, {}),
    (Settings, "volumeThroughput", 125, 1000, 1, {}),
    (Settings, "rootVolumeSizeGb", 8, 16_384, 1, {}),
    (SpotSettings, "onDemandBaseCapacity", 0, 100, 1, {}),
    (SpotSettings, "onDemandPercentageAboveBase", 0, 100, 1, {}),
    (WarmPoolSettings, "minSize", 0, 100, 1, {}),
    (WarmPoolSettings, "maxPreparedCapacity", 0, 100, 1, {}),
    (FleetSettings, "minSize", 1, 100, 1, {**FLEET_OK, "maxSize": 100}),
    (FleetSettings, "maxSize", 1, 100, 1, {**FLEET_OK, "minSize": 1}),
    (FleetSettings, "desiredSize", 1, 100, 1, {**FLEET_OK, "minSize": 1, "maxSize": 100}),
    (FleetSettings, "targetRequestsPerMinute", 1, 1_000_000, 1, FLEET_OK),
    (FleetSettings, "minHealthyPercentage", 0, 100, 1, FLEET_OK),
    (Settings, "expectedUtilisation", 0.0001, 1, 0.0001, {}),
    (CompareWithSettings, "inputUsdPer1M", 0, 10_000, 0.01, COMPARE_OK),
    (CompareWithSettings, "outputUsdPer1M", 0, 10_000, 0.01, COMPARE_OK),
    (CompareWithSettings, "inputTokensPerRequest", 1, 1_048_576, 1, COMPARE_OK),
    (CompareWithSettings, "outputTokensPerRequest", 1, 1_048_576, 1, COMPARE_OK),
]


@pytest.mark.parametrize(
    ("model", "key", "low", "high", "step", "other"), LIMITS, ids=[f"{m.__name__}.{k}" for m, k, *_ in LIMITS]
)  # fmt: skip
def test_both_sides_of_every_numeric_limit(model, key, low, high, step, other) -> None:
    assert accepts(model, {**other, key: low})
    assert accepts(model, {**other, key: high})
    assert not accepts(model, {**other, key: low - step})
    assert not accepts(model, {**other, key: high + step})


def test_a_cpu_limit_of_zero_is_refused_because_docker_reads_it_as_unlimited() -> None:
    assert not accepts(Settings, {"cpuLimit": 0})
    assert accepts(Settings, {"cpuLimit": 0.5})


# Every default, written out; each must also pass its own model's validation.
DEFAULTS = {
    Settings: {
        "target": "docker", "accelerator": "auto", "models": ["phi-3.5-mini-instruct"],
        "embeddingModel": "nomic-embed-text-v1.5",
        "localaiVersion": "v2.24.0", "image": None, "gpuImage": None, "apiKey": None,
        "hfToken": None, "port": 8080, "threads": None, "contextSize": None,
        "parallelRequests": 1, "cpuLimit": None, "memoryLimitMb": None, "extraEnv": {},
        "waitForReady": None, "readyTimeoutSeconds": 3600, "keepVolumeOnDestroy": True,
        "keepRemovedWeights": False,
        "webUi": False, "logPrompts": False, "bindAddress": "127.0.0.1", "allowNetworkBind": False,
        "instanceType": None, "volumeSizeGb": None, "volumeThroughput": 250,
        "rootVolumeSizeGb": None, "allowedCidrs": [], "allowAnywhere": False, "public": True,
        "fleet": None, "sshKeyName": None, "sshCidrs": [], "vpcId": None, "subnetId": None,
        "weightsVolumeId": None, "amiId": None, "vpcEndpoints": False, "egress": "internet",
        "allowRouteOut": False, "logRetentionDays": 30,
        "tags": {}, "compareWith": None, "expectedUtilisation": 0.25, "schedule": None,
        "alarmEmail": None, "hostMetrics": True,
    },
    CompareWithSettings: {"inputTokensPerRequest": 64, "outputTokensPerRequest": 256},
    SpotSettings: {"onDemandBaseCapacity": 1, "onDemandPercentageAboveBase": 0},
    WarmPoolSettings: {"minSize": 1, "maxPreparedCapacity": None, "reuseOnScaleIn": True},
    FleetSettings: {
        "minSize": 1, "maxSize": 2, "desiredSize": None, "spot": None, "warmPool": None,
        "certificateArn": None, "domainName": None, "hostedZoneId": None, "internal": False,
        "subnetIds": None, "loadBalancerSubnetIds": None, "weightsSnapshotId": None,
        "targetRequestsPerMinute": None, "minHealthyPercentage": 100, "schedule": [],
    },
}  # fmt: skip
REQUIRED = {FleetSettings: FLEET_OK, CompareWithSettings: COMPARE_OK}


@pytest.mark.parametrize("model", list(DEFAULTS), ids=lambda m: m.__name__)
def test_every_default_is_the_documented_one_and_passes_its_own_validation(model) -> None:
    built = model.model_validate(REQUIRED.get(model, {}))
    dumped = built.model_dump(by_alias=True)
    expected = DEFAULTS[model]
    assert {k: v for k, v in dumped.items() if k not in REQUIRED.get(model, {})} == expected
    for key, value in expected.items():
        # validate_default is off in pydantic: give each default back explicitly.
        assert accepts(model, {**REQUIRED.get(model, {}), key: value}), key


def test_sections_are_frozen_and_take_field_names_too() -> None:
    settings = Settings.model_validate({"parallel_requests": 3, "ready_timeout_seconds": 60})
    assert (settings.parallel_requests, settings.ready_timeout_seconds) == (3, 60)
    with pytest.raises(ValidationError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
    fleet = FleetSettings.model_validate(
        {"instance_types": ["g6.xlarge"], "min_size": 2, "max_size": 2}
    )
    assert fleet.min_size == 2
    with pytest.raises(ValidationError, match="frozen"):
        fleet.max_size = 3  # type: ignore[misc]


def test_a_refused_value_is_quoted_in_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        load({"port": "70000"})
    assert "localai:port = '70000':" in str(info.value)


# -- guard lists: every entry, written out here -------------------------------------------

RESERVED = [
    "ADDRESS", "HF_TOKEN", "LLAMACPP_PARALLEL", "LOCALAI_ADDRESS", "LOCALAI_MODELS_PATH",
    "LOCALAI_PARALLEL_REQUESTS", "LOCALAI_SINGLE_ACTIVE_BACKEND", "LOCALAI_THREADS",
    "MODELS_PATH", "PARALLEL_REQUESTS", "SINGLE_ACTIVE_BACKEND", "THREADS",
]  # fmt: skip
REFUSED = [
    "AUTOLOAD_GALLERIES", "BACKEND_ASSETS_PATH", "BUILD_TYPE", "CONFIG_DIR", "CONFIG_FILE",
    "DISABLE_API_KEY_REQUIREMENT_FOR_HTTP_GET", "DISABLE_GALLERY_ENDPOINT", "DISABLE_WEBUI",
    "EXTERNAL_GRPC_BACKENDS", "EXTRA_BACKENDS", "FEDERATED", "GALLERIES", "GO_TAGS",
    "HTTP_GET_EXEMPTED_ENDPOINTS", "LOAD_TO_MEMORY", "LOCALAI_AUTOLOAD_GALLERIES",
    "LOCALAI_BACKEND_ASSETS_PATH", "LOCALAI_CONFIG_DIR",
    "LOCALAI_DISABLE_API_KEY_REQUIREMENT_FOR_HTTP_GET", "LOCALAI_DISABLE_GALLERY_ENDPOINT",
    "LOCALAI_DISABLE_WEBUI", "LOCALAI_EXTERNAL_GRPC_BACKENDS", "LOCALAI_FEDERATED",
    "LOCALAI_GALLERIES", "LOCALAI_HTTP_GET_EXEMPTED_ENDPOINTS", "LOCALAI_LOAD_TO_MEMORY",
    "LOCALAI_MODELS", "LOCALAI_MODELS_CONFIG_FILE", "LOCALAI_P2P", "LOCALAI_P2P_DISABLE_DHT",
    "LOCALAI_P2P_NETWORK_ID", "LOCALAI_P2P_TOKEN", "LOCALAI_PRELOAD_MODELS",
    "LOCALAI_PRELOAD_MODELS_CONFIG", "LOCALAI_SUBTLE_KEY_COMPARISON", "MODELS", "P2P",
    "PRELOAD_MODELS", "PRELOAD_MODELS_CONFIG", "REBUILD", "SUBTLE_KEY_COMPARISON", "TOKEN",
]  # fmt: skip


def extra_env_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load({"extraEnv": json.dumps(env)})
    return str(info.value)


@pytest.mark.parametrize("name", ["API_KEY", "LOCALAI_API_KEY"])
def test_the_api_key_is_never_set_through_extra_env(name: str) -> None:
    assert "the API key is set with 'localai:apiKey' (a secret), not here" in extra_env_error(
        {name: "x" * 20}
    )


@pytest.mark.parametrize("name", RESERVED)
def test_each_variable_the_package_sets_is_refused_in_extra_env(name: str) -> None:
    assert f"['{name}'] are set by the package itself" in extra_env_error({name: "1"})


@pytest.mark.parametrize("name", REFUSED)
def test_each_dangerous_variable_is_refused_in_extra_env(name: str) -> None:
    message = extra_env_error({name: "1"})
    assert f"refused: {name} " in message


def test_every_refused_variable_is_named_in_one_message() -> None:
    message = extra_env_error({"P2P": "1", "REBUILD": "true"})
    assert "refused: P2P turns on P2P/federation" in message
    assert "; REBUILD makes the image's entrypoint rebuild LocalAI" in message


@pytest.mark.parametrize(
    "name", ["lower", "Mixed_Case", "1LEADING_DIGIT", "WITH-DASH", "WITH SPACE", ""]
)
def test_extra_env_names_must_be_upper_snake_case(name: str) -> None:
    assert "environment variable names must be UPPER_SNAKE_CASE" in extra_env_error({name: "1"})


def test_allowed_extra_env_passes_unchanged() -> None:
    env = {"LOCALAI_LOG_LEVEL": "info", "_UNDERSCORE_FIRST": "1", "GGML_CUDA_NO_PINNED": "1"}
    assert load({"extraEnv": json.dumps(env)}).extra_env == env


@pytest.mark.parametrize("bad", [" ", "\t", "\n", "'", '"', "\\", "$", "`", ","])
def test_each_character_the_api_key_may_not_hold_is_refused(bad: str) -> None:
    key = "a" * 10 + bad + "b" * 10
    assert not accepts(Settings, {"apiKey": key})
    assert accepts(Settings, {"apiKey": "a" * 10 + "-_.:~" + "b" * 10})


def test_the_api_key_is_at_least_16_characters() -> None:
    assert accepts(Settings, {"apiKey": "k" * 16})
    assert not accepts(Settings, {"apiKey": "k" * 15})
    assert Settings.model_validate({"apiKey": "k" * 16}).api_key.get_secret_value() == "k" * 16


@pytest.mark.parametrize(
    ("version", "ok"),
    [("v2.24.0", True), ("v10.0.12", True), ("2.24.0", False), ("v2.24", False),
     ("v2.24.0-rc1", False), ("v2.24.0\n", False), ("latest", False)],
)  # fmt: skip
def test_the_localai_version_is_a_release_tag(version: str, ok: bool) -> None:
    assert accepts(Settings, {"localaiVersion": version}) is ok


@pytest.mark.parametrize("days", [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                                  1096, 1827, 2192, 2557, 2922, 3288, 3653])  # fmt: skip
def test_each_cloudwatch_retention_is_accepted(days: int) -> None:
    assert accepts(Settings, {"logRetentionDays": days})


@pytest.mark.parametrize("days", [0, 2, 4, 29, 31, 366, 3654])
def test_retentions_cloudwatch_lacks_are_refused(days: int) -> None:
    assert not accepts(Settings, {"logRetentionDays": days})


def test_models_are_checked_against_the_catalog_only_when_one_is_given() -> None:
    assert Settings.model_validate({"models": ["not-in-catalog"]}).models == ["not-in-catalog"]
    assert not accepts(Settings, {"models": ["not-in-catalog"]})
    with pytest.raises(ConfigError, match=r"\['a', 'b'\] more than once"):
        load({"models": '["b", "a", "b", "a", "qwen2.5-0.5b-instruct"]'})
    assert not accepts(Settings, {"models": []})


@pytest.mark.parametrize(
    ("bind", "ok"), [("127.0.0.1", True), ("::1", True), ("localhost", False), ("", False)]
)
def test_the_bind_address_is_an_ip_address(bind: str, ok: bool) -> None:
    assert accepts(Settings, {"bindAddress": bind}) is ok


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.5", "::"])
def test_a_non_loopback_bind_needs_the_opt_in(bind: str) -> None:
    assert not accepts(Settings, {"bindAddress": bind})
    assert accepts(Settings, {"bindAddress": bind, "allowNetworkBind": True})


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "::1"])
def test_a_loopback_bind_needs_no_opt_in(bind: str) -> None:
    assert accepts(Settings, {"bindAddress": bind})


def test_the_bind_rule_is_the_docker_targets_only() -> None:
    assert accepts(Settings, {"target": "aws", "public": False, "bindAddress": "0.0.0.0"})


def test_the_instance_type_must_be_in_the_catalog() -> None:
    assert accepts(Settings, {"instanceType": "c7i.xlarge"})
    assert not accepts(Settings, {"instanceType": "c7i.huge"})
    assert not accepts(Settings, {"instanceType": "x9z.large"})


# -- cross-key rules, both sides ----------------------------------------------------------

AWS = {"target": "aws", "allowedCidrs": ["203.0.113.0/24"]}


def test_gpu_on_a_gpu_type_is_accepted_and_on_a_cpu_type_refused() -> None:
    assert accepts(Settings, {**AWS, "accelerator": "gpu", "instanceType": "g6.xlarge"})
    assert accepts(Settings, {**AWS, "accelerator": "gpu"})
    assert accepts(Settings, {**AWS, "accelerator": "cpu", "instanceType": "g6.xlarge"})
    assert not accepts(Settings, {**AWS, "accelerator": "gpu", "instanceType": "c7i.xlarge"})


def test_ssh_with_both_a_key_and_cidrs_is_accepted() -> None:
    assert accepts(Settings, {**AWS, "sshKeyName": "me", "sshCidrs": ["203.0.113.7/32"]})
    assert not accepts(Settings, {**AWS, "sshKeyName": "me"})
    assert not accepts(Settings, {**AWS, "sshCidrs": ["203.0.113.7/32"]})


def test_exactly_a_slash_8_of_public_space_is_the_limit() -> None:
    slash_8 = ["1.0.0.0/8"]
    assert public_ipv4_addresses(slash_8) == 2**24
    assert accepts(Settings, {**AWS, "allowedCidrs": slash_8})
    assert accepts(
        Settings, {**AWS, "allowedCidrs": slash_8, "sshKeyName": "k", "sshCidrs": slash_8}
    )
    one_more = [*slash_8, "2.0.0.1/32"]
    assert public_ipv4_addresses(one_more) == 2**24 + 1
    assert not accepts(Settings, {**AWS, "allowedCidrs": one_more})
    assert accepts(Settings, {**AWS, "allowedCidrs": one_more, "allowAnywhere": True})
    assert not accepts(
        Settings, {**AWS, "sshKeyName": "k", "sshCidrs": one_more, "allowAnywhere": True}
    )


def test_public_addresses_count_each_special_block_out_exactly() -> None:
    special = (
        3 * 2**24  # 0.0.0.0/8, 10.0.0.0/8, 127.0.0.0/8
        + 2**22  # 100.64.0.0/10
        + 2 * 2**16  # 169.254.0.0/16, 192.168.0.0/16
        + 2**20  # 172.16.0.0/12
        + 4 * 256  # 192.0.0.0/24, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24
        + 2**17  # 198.18.0.0/15
        + 2 * 2**28  # 224.0.0.0/4, 240.0.0.0/4
    )
    assert public_ipv4_addresses(["0.0.0.0/0"]) == 2**32 - special
    assert public_ipv4_addresses(["10.1.0.0/16"]) == 0  # inside a private block
    assert public_ipv4_addresses(["192.0.0.0/16"]) == 2**16 - 256 - 256  # holds 2 /24s
    assert public_ipv4_addresses(["8.8.8.0/24", "8.8.8.0/25"]) == 256  # overlap once
    assert public_ipv4_addresses(["2001:db8::/32"]) == 0


def test_a_fleet_needs_the_aws_target() -> None:
    assert not accepts(Settings, {"fleet": FLEET_OK})
    assert accepts(Settings, {**AWS, "fleet": FLEET_OK})


@pytest.mark.parametrize(
    ("key", "value"),
    [("instanceType", "g6.xlarge"), ("subnetId", "subnet-0123456789abcdef0"),
     ("weightsVolumeId", "vol-0123456789abcdef0"), ("public", False), ("vpcEndpoints", True),
     ("hostMetrics", False)],
)  # fmt: skip
def test_each_single_vm_key_is_refused_with_a_fleet(key: str, value) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**AWS, "allowedCidrs": '["203.0.113.0/24"]', "fleet": json.dumps(FLEET_OK), key: value}, catalog=CATALOG)  # fmt: skip
    assert f"localai:{key} = " in str(info.value)
    assert "the single VM's, meaningless with localai:fleet" in str(info.value)


def test_an_internet_facing_fleet_needs_callers_and_an_internal_one_does_not() -> None:
    assert not accepts(Settings, {"target": "aws", "fleet": FLEET_OK})
    assert accepts(Settings, {"target": "aws", "fleet": {**FLEET_OK, "internal": True}})


def test_a_gpu_fleet_refuses_cpu_types_by_name() -> None:
    fleet = {"instanceTypes": ["g6.xlarge", "c7i.xlarge", "m7i.large"]}
    with pytest.raises(ConfigError) as info:
        load_settings({"target": "aws", "allowedCidrs": '["203.0.113.0/24"]', "accelerator": "gpu", "fleet": json.dumps(fleet)}, catalog=CATALOG)  # fmt: skip
    assert "'gpu' needs GPU instance types, but c7i.xlarge, m7i.large have no GPU" in str(
        info.value
    )
    assert accepts(
        Settings,
        {**AWS, "accelerator": "gpu", "fleet": {"instanceTypes": ["g6.xlarge", "g5.xlarge"]}},
    )
    assert accepts(Settings, {**AWS, "accelerator": "cpu", "fleet": fleet})


@pytest.mark.parametrize(
    ("sizes", "ok"),
    [({"minSize": 3, "maxSize": 3}, True), ({"minSize": 4, "maxSize": 3}, False),
     ({"minSize": 1, "maxSize": 3, "desiredSize": 1}, True),
     ({"minSize": 1, "maxSize": 3, "desiredSize": 3}, True),
     ({"minSize": 1, "maxSize": 3, "desiredSize": 0}, False),
     ({"minSize": 1, "maxSize": 3, "desiredSize": 4}, False),
     ({"minSize": 2, "maxSize": 2, "desiredSize": 2}, True),
     ({"minSize": 0, "maxSize": 3}, False)],
)  # fmt: skip
def test_fleet_sizes_are_ordered(sizes: dict, ok: bool) -> None:
    assert accepts(FleetSettings, {**FLEET_OK, **sizes}) is ok


def test_the_desired_size_message_names_all_three() -> None:
    with pytest.raises(
        ValidationError, match=r"desiredSize \(4\) must lie between minSize \(1\) and maxSize \(3\)"
    ):
        FleetSettings.model_validate({**FLEET_OK, "minSize": 1, "maxSize": 3, "desiredSize": 4})


def test_instance_types_are_known_distinct_and_at_most_40() -> None:
    assert not accepts(FleetSettings, {"instanceTypes": []})
    assert not accepts(FleetSettings, {"instanceTypes": ["g6.xlarge", "nope.large"]})
    with pytest.raises(ValidationError, match=r"instanceTypes lists g6\.xlarge more than once"):
        FleetSettings.model_validate({"instanceTypes": ["g6.xlarge", "g5.xlarge", "g6.xlarge"]})
    forty = list(INSTANCE_CATALOG)[:40]
    assert accepts(FleetSettings, {"instanceTypes": forty})
    assert not accepts(FleetSettings, {"instanceTypes": list(INSTANCE_CATALOG)[:41]})


ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0123abcd-0123-4567-89ab-0123456789ab"


@pytest.mark.parametrize(
    ("tls", "ok", "uses_tls"),
    [({}, True, False),
     ({"domainName": "llm.example.com", "hostedZoneId": "Z0123ABC"}, True, True),
     ({"domainName": "llm.example.com", "certificateArn": ARN}, True, True),
     ({"domainName": "llm.example.com", "certificateArn": ARN, "hostedZoneId": "Z0123ABC"}, True, True),
     ({"hostedZoneId": "Z0123ABC"}, False, None),
     ({"certificateArn": ARN}, False, None),
     ({"domainName": "llm.example.com"}, False, None)],
)  # fmt: skip
def test_tls_settings_are_complete(tls: dict, ok: bool, uses_tls) -> None:
    assert accepts(FleetSettings, {**FLEET_OK, **tls}) is ok
    if ok:
        assert FleetSettings.model_validate({**FLEET_OK, **tls}).tls is uses_tls


def test_a_domain_name_is_at_most_253_characters() -> None:
    name_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 63 x 3 + 61 + 3 dots
    name_254 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])
    assert (len(name_253), len(name_254)) == (253, 254)
    zone = {**FLEET_OK, "hostedZoneId": "Z0123ABC"}
    assert accepts(FleetSettings, {**zone, "domainName": name_253})
    assert not accepts(FleetSettings, {**zone, "domainName": name_254})


@pytest.mark.parametrize(
    ("pool", "types", "spot", "ok"),
    [(None, ["g6.xlarge", "g5.xlarge"], {}, True),
     ({}, ["g6.xlarge"], None, True),
     ({}, ["g6.xlarge", "g5.xlarge"], None, False),
     ({}, ["g6.xlarge"], {}, False)],
)  # fmt: skip
def test_a_warm_pool_takes_one_on_demand_type(pool, types, spot, ok: bool) -> None:
    values: dict = {"instanceTypes": types}
    if pool is not None:
        values["warmPool"] = pool
    if spot is not None:
        values["spot"] = spot
    assert accepts(FleetSettings, values) is ok


# -- derived values and messages ----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "instance_type"),
    [({}, "c7a.xlarge"), ({"accelerator": "cpu"}, "c7a.xlarge"),
     ({"accelerator": "gpu"}, "g6.xlarge"), ({"instanceType": "m7i.large"}, "m7i.large")],
)  # fmt: skip
def test_the_aws_instance_type(values: dict, instance_type: str) -> None:
    assert Settings.model_validate(values).aws_instance_type == instance_type


def test_ignored_keys_are_exactly_the_other_targets() -> None:
    docker = Settings.model_validate(
        {"instanceType": "c7i.xlarge", "vpcEndpoints": True, "port": 9000}
    )
    assert docker.ignored_keys() == ["instanceType", "vpcEndpoints"]
    aws = Settings.model_validate({**AWS, "allowNetworkBind": True, "bindAddress": "127.0.0.1"})
    assert aws.ignored_keys() == ["bindAddress", "allowNetworkBind"]
    assert Settings.model_validate(AWS).ignored_keys() == []


def test_described_values_are_cut_at_80_characters() -> None:
    assert _describe(None) == "(not set)"
    assert _describe("a" * 78) == repr("a" * 78)  # 80 with the quotes
    assert _describe("a" * 79) == repr("a" * 79)[:77] + "..."
    assert len(_describe("a" * 500)) == 80


def test_unknown_keys_are_listed_at_the_top_and_named_when_nested() -> None:
    with pytest.raises(ConfigError) as info:
        load({"prot": "8080", "fleet": '{"instanceTypes": ["g6.xlarge"], "minsize": 1}', "target": "aws", "allowedCidrs": '["203.0.113.0/24"]'})  # fmt: skip
    message = str(info.value).splitlines()
    assert message[0] == "localai configuration is invalid:"
    top = next(line for line in message if "localai:prot" in line)
    assert top.startswith(
        "  - localai:prot: unknown key; the keys are: accelerator, alarmEmail, allowAnywhere,"
    )
    assert "8080" not in top, "an unknown key may be a misspelt secret: its value is not shown"
    nested = next(line for line in message if "minsize" in line)
    assert nested == "  - localai:fleet.minsize: unknown key"


def test_a_nested_value_error_names_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        load({**AWS_OK, "fleet": '{"instanceTypes": ["g6.xlarge"], "minSize": 200}'})
    assert "  - localai:fleet.minSize = 200: Input should be less than or equal to 100" in str(
        info.value
    )


def test_secrets_are_never_quoted_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load({"hfToken": ["not", "a", "string"]}, secret_keys=("hfToken",))  # type: ignore[dict-item]
    assert "localai:hfToken = '[secret]'" in str(info.value)
    assert "not" not in str(info.value).split("=", 1)[1].split(":", 1)[0]


def test_errors_without_a_location_are_reported_under_a_question_mark() -> None:
    with pytest.raises(ValidationError) as info:
        Settings.model_validate("not a mapping")
    assert _format_errors(info.value, {}).splitlines()[1].startswith("  - localai:? = ")


def test_list_keys_take_a_comma_separated_string_and_bad_json_is_named() -> None:
    assert load({"models": " qwen2.5-0.5b-instruct , phi-3.5-mini-instruct,"}).models == [
        "qwen2.5-0.5b-instruct", "phi-3.5-mini-instruct"
    ]  # fmt: skip
    assert load({**AWS_OK, "sshCidrs": "203.0.113.7/32", "sshKeyName": "k"}).ssh_cidrs == [
        "203.0.113.7/32"
    ]
    for key in ("fleet", "extraEnv", "tags"):
        with pytest.raises(ConfigError) as info:
            load({key: "{not json"})
        assert f"localai:{key} = '{{not json': is not valid JSON" in str(info.value)
    with pytest.raises(ConfigError, match="localai:models = ' ': is not valid JSON"):
        load({"models": " "})
    assert load({"port": 9000}).port == 9000  # a value that is not a string passes as is


def test_secret_rules_for_each_secret_key() -> None:
    with pytest.raises(ConfigError, match="localai:extraEnv is a secret"):
        load({"extraEnv": "{}"}, secret_keys=("extraEnv",))
    with pytest.raises(ConfigError, match="localai:hfToken is stored in plain text"):
        load({"hfToken": "hf_x0123456789"})
    assert load({"hfToken": "hf_x0123456789"}, secret_keys=("hfToken",)).hf_token is not None
    with pytest.raises(ConfigError, match="localai:apiKey is stored in plain text"):
        load({"apiKey": "k" * 20})
    assert load({"apiKey": "k" * 20}, secret_keys=("apiKey",)).api_key is not None


@pytest.mark.parametrize(
    ("key", "value"),
    [("localaiVersion", "v2.24.0\n"), ("image", "localai/localai:v2.24.0\n"),
     ("gpuImage", "localai/localai:cuda\n")],
)  # fmt: skip
def test_a_trailing_newline_is_not_a_valid_value(key: str, value: str) -> None:
    """re.match's '$' also matches before a final newline: the checks use fullmatch."""
    assert not accepts(Settings, {key: value})
    assert accepts(Settings, {key: value.rstrip("\n")})


def test_an_env_name_with_a_trailing_newline_is_refused() -> None:
    assert "must be UPPER_SNAKE_CASE" in extra_env_error({"LOCALAI_LOG_LEVEL\n": "debug"})


def test_an_error_type_that_sorts_before_extra_forbidden_is_not_an_unknown_key() -> None:
    """'bool_parsing' < 'extra_forbidden': only that exact type is an unknown key."""
    with pytest.raises(ConfigError) as info:
        load({"waitForReady": "maybe", "extraEnv": '{"A": ["list"]}'})
    message = str(info.value)
    assert "  - localai:waitForReady = 'maybe': Input should be a valid boolean" in message
    assert "localai:extraEnv.A = ['list']: Input should be a valid string" in message
    assert "unknown key" not in message


def test_a_cpu_type_with_a_cpu_or_auto_accelerator_is_accepted() -> None:
    for accelerator in ("auto", "cpu"):
        assert accepts(Settings, {**AWS, "accelerator": accelerator, "instanceType": "c7i.xlarge"})


def test_with_several_single_vm_keys_the_message_names_the_first_and_lists_all() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**AWS, "allowedCidrs": '["203.0.113.0/24"]', "fleet": json.dumps(FLEET_OK), "vpcEndpoints": True, "instanceType": "g6.xlarge"}, catalog=CATALOG)  # fmt: skip
    assert (
        "  - localai:instanceType = 'g6.xlarge': instanceType, vpcEndpoints: the single VM's"
        in str(info.value)
    )


def test_the_default_model_is_the_first_listed() -> None:
    settings = load({"models": '["qwen2.5-0.5b-instruct", "phi-3.5-mini-instruct"]'})
    assert settings.default_model == "qwen2.5-0.5b-instruct"


def test_load_settings_takes_the_catalog_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        load_settings({}, CATALOG)  # type: ignore[misc]


# -- issue 18, items 21, 23 and 24: values that still did harm ---------------------------------


@pytest.mark.parametrize(("key", "camel"), [("api_key", "apiKey"), ("hf_token", "hfToken"), ("extra_env", "extraEnv"), ("port", None)])  # fmt: skip
def test_snake_case_spellings_of_keys_are_refused_without_their_value(key, camel) -> None:
    """`localai:api_key` reached the model as api_key and skipped the secret checks, and a
    bad value of it was printed (item 21)."""
    value = "hunter2-not-a-good-key"
    if camel is None:
        assert load({key: "8081"}).port == 8081
        return
    with pytest.raises(ConfigError) as info:
        load({key: value})
    message = str(info.value)
    assert f"  - localai:{key}: configuration keys are camelCase; use localai:{camel}" in message
    assert value not in message


def test_a_value_set_with_secret_is_never_printed_even_for_another_key() -> None:
    with pytest.raises(ConfigError) as info:
        load({"port": "not-a-port-s3cr3t"}, secret_keys=("port",))
    assert "s3cr3t" not in str(info.value)
    assert "localai:port = '[secret]'" in str(info.value)


@pytest.mark.parametrize(
    ("port", "ok"),
    [(22, False), (53, False), (111, False), (2375, False), (2376, False), (2377, False),
     (7946, False), (1023, False), (1, False), (80, True), (443, True), (1024, True),
     (8080, True), (11434, True)],
)  # fmt: skip
def test_an_aws_api_port_that_a_host_service_uses_is_refused(port: int, ok: bool) -> None:
    """`port: 22` with allowAnywhere opened SSH to the internet through the API rule."""
    config = {**AWS_OK, "port": str(port)}
    if ok:
        assert load(config).port == port
        return
    with pytest.raises(ConfigError, match=rf"localai:port = '{port}': {port} is a port the host"):
        load(config)
    assert load({"port": str(port)}).port == port, "the local target binds loopback: any port"


@pytest.mark.parametrize("key", ["localai:stack", "LocalAI:Role", "localai:anything"])
def test_the_packages_tag_keys_are_reserved(key: str) -> None:
    """A user tag localai:stack changed how the stack finds its weights volume (item 24)."""
    with pytest.raises(ConfigError, match=r"the 'localai:' prefix is this package's own"):
        load({**AWS_OK, "tags": json.dumps({key: "other-stack"})})
    assert load({**AWS_OK, "tags": json.dumps({"team": "search"})}).tags == {"team": "search"}


# -- issue 18, items 22 and 30 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "ok"),
    [("hf_abcdefghijklmnopqrstuvwxyz012345", True), ("a.b-c_d~e+f/g=", True),
     ('hf_abc"\ninsecure', False), ("hf_abc def", False), ("hf_abc\n", False),
     ("short", False), ("x" * 1025, False)],
)  # fmt: skip
def test_the_hugging_face_token_is_a_bearer_token(token: str, ok: bool) -> None:
    """A '"' and a newline in hfToken injected 'insecure' into curl's config (item 22)."""
    raw = {"hfToken": token}
    if ok:
        assert load(raw, secret_keys=("hfToken",)).hf_token.get_secret_value() == token
        return
    with pytest.raises(ConfigError, match="must be a bearer token") as info:
        load(raw, secret_keys=("hfToken",))
    assert token not in str(info.value)


@pytest.mark.parametrize(
    "name",
    ["P2P_TOKEN", "LLAMACPP_GRPC_SERVERS", "PRELOAD_BACKEND_ONLY", "LOCALAI_CSRF", "LIBRARY_PATH"],
)
def test_localai_variables_that_leak_or_stop_serving_are_refused(name: str) -> None:
    assert f"refused: {name} " in extra_env_error({name: "x"})


@pytest.mark.parametrize(
    ("env", "debug"),
    [({"DEBUG": "true"}, True), ({"LOCALAI_DEBUG": "1"}, True),
     ({"LOCALAI_LOG_LEVEL": "debug"}, True), ({"LOCALAI_LOG_LEVEL": "TRACE"}, True),
     ({"LOG_LEVEL": "debug"}, True), ({"LOCALAI_LOG_LEVEL": "info"}, False),
     ({"LOCALAI_LOG_LEVEL": "warn"}, False)],
)  # fmt: skip
def test_debug_logging_needs_the_opt_in_that_names_the_risk(env: dict, debug: bool) -> None:
    """Debug logging writes every prompt to the logs (CloudWatch on AWS) (item 30)."""
    raw = {"extraEnv": json.dumps(env)}
    if not debug:
        assert load(raw).extra_env == env
        return
    with pytest.raises(ConfigError, match=r"logs every prompt and answer.*localai:logPrompts true"):
        load(raw)
    assert load({**raw, "logPrompts": "true"}).extra_env == env


# -- issue 22: what settings decides, each pinned -------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("allowedCidrs", '["203.0.113.0/24"]'), ("allowAnywhere", "true"), ("public", "false"),
     ("rootVolumeSizeGb", "40"), ("amiId", "ami-0123456789abcdef0"), ("hostMetrics", "false")],
)  # fmt: skip
def test_each_aws_key_set_on_the_docker_target_is_named_as_ignored(key: str, value: str) -> None:
    assert load({key: value}).ignored_keys() == [key]


def test_a_bare_string_of_cidrs_is_split_on_commas() -> None:
    """`pulumi config set localai:allowedCidrs 203.0.113.0/24,198.51.100.0/24` stores a bare
    string, not JSON."""
    settings = load({"target": "aws", "allowedCidrs": "203.0.113.0/24, 198.51.100.0/24"})
    assert settings.allowed_cidrs == ["203.0.113.0/24", "198.51.100.0/24"]


def test_a_fleets_missing_allowed_cidrs_is_reported_at_allowed_cidrs() -> None:
    fleet = json.dumps({"instanceTypes": ["g6.xlarge"], "minSize": 1, "maxSize": 2})
    with pytest.raises(ConfigError) as info:
        load({"target": "aws", "fleet": fleet})
    assert "  - localai:allowedCidrs = (not set): an internet-facing load balancer needs" in str(
        info.value
    )


# --- the embeddings model ------------------------------------------------------------------


def test_the_embeddings_model_is_served_beside_the_chat_models_unless_none() -> None:
    from components.models.catalog import load_catalog

    catalog = load_catalog()
    default = load_settings({}, catalog=catalog)
    assert default.embedding_model == "nomic-embed-text-v1.5"
    assert default.served_models == ["phi-3.5-mini-instruct", "nomic-embed-text-v1.5"]
    assert default.default_model == "phi-3.5-mini-instruct"
    off = load_settings({"embeddingModel": "none"}, catalog=catalog)
    assert off.embedding_model is None and off.served_models == ["phi-3.5-mini-instruct"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"embeddingModel": "text-embedding-3-small"},
         r"localai:embeddingModel = 'text-embedding-3-small': 'text-embedding-3-small' not in "
         r"model_configs/; embeddings "
         r"models there: \['nomic-embed-text-v1\.5'\], or 'none'"),
        ({"embeddingModel": "qwen2.5-0.5b-instruct"},
         r"localai:embeddingModel = 'qwen2\.5-0\.5b-instruct': 'qwen2\.5-0\.5b-instruct' is a "
         r"chat model \(its file has no embeddings: true"),
        ({"models": '["phi-3.5-mini-instruct", "nomic-embed-text-v1.5"]'},
         r"localai:models = .*: \['nomic-embed-text-v1\.5'\] serve embeddings, not chat.*"
         r"set localai:embeddingModel instead"),
    ],
)  # fmt: skip
def test_a_wrong_kind_of_model_is_refused_where_it_is_named(raw: dict, message: str) -> None:
    from components.models.catalog import load_catalog

    with pytest.raises(ConfigError, match=message):
        load_settings(raw, catalog=load_catalog())


# -- issue 22, second operator set: messages, orders, returns and patterns, each pinned ----


def test_every_aws_only_key_set_on_the_docker_target_is_ignored_in_order() -> None:
    values = {
        "instanceType": "c7i.xlarge", "volumeSizeGb": "40", "volumeThroughput": "300",
        "allowedCidrs": '["203.0.113.0/24"]', "allowAnywhere": "true", "public": "false",
        "sshKeyName": "k", "sshCidrs": '["203.0.113.7/32"]', "vpcId": "vpc-0123456789abcdef0",
        "subnetId": "subnet-0123456789abcdef0", "logRetentionDays": "14",
        "rootVolumeSizeGb": "40", "weightsVolumeId": "vol-0123456789abcdef0",
        "amiId": "ami-0123456789abcdef0", "vpcEndpoints": "true",
    }  # fmt: skip
    assert load(values).ignored_keys() == list(values)


@pytest.mark.parametrize(
    ("values", "where"),
    [({"certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/not-a-uuid",
       "domainName": "llm.example.com"}, "certificateArn"),
     ({"domainName": "-llm.example.com", "hostedZoneId": "Z0123ABC"}, "domainName"),
     ({"domainName": "llm", "hostedZoneId": "Z0123ABC"}, "domainName"),
     ({"domainName": "llm.example.com", "hostedZoneId": "z0123abc"}, "hostedZoneId"),
     ({"weightsSnapshotId": "vol-0123456789abcdef0"}, "weightsSnapshotId"),
     ({"subnetIds": ["sg-0123456789abcdef0"]}, "subnetIds.0"),
     ({"loadBalancerSubnetIds": ["subnet-XYZ"]}, "loadBalancerSubnetIds.0")],
)  # fmt: skip
def test_each_fleet_id_and_name_must_have_its_form(values: dict, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        FleetSettings.model_validate({**FLEET_OK, **values})
    error = info.value.errors()[0]
    assert (error["type"], ".".join(map(str, error["loc"]))) == ("string_pattern_mismatch", where)


@pytest.mark.parametrize(
    ("key", "value"),
    [("vpcId", "subnet-0123456789abcdef0"), ("subnetId", "vpc-0123456789abcdef0"),
     ("weightsVolumeId", "snap-0123456789abcdef0"), ("amiId", "ami-XYZ")],
)  # fmt: skip
def test_each_single_vm_id_must_have_its_form(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings.model_validate({**AWS, key: value})
    assert [(e["type"], e["loc"]) for e in info.value.errors()] == [
        ("string_pattern_mismatch", (key,))
    ]


@pytest.mark.parametrize(
    ("sizes", "where", "message"),
    [({"minSize": -1}, "minSize", "Input should be greater than or equal to 0"),
     ({"maxSize": 0}, "maxSize", "Input should be greater than or equal to 1"),
     ({"desiredSize": -1}, "desiredSize", "Input should be greater than or equal to 0"),
     ({"maxSize": 100, "desiredSize": 101}, "desiredSize",
      "Input should be less than or equal to 100")],
)  # fmt: skip
def test_fleet_sizes_out_of_range_are_named_by_their_own_bound(
    sizes: dict, where: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        FleetSettings.model_validate({**FLEET_OK, **sizes})
    assert [(e["loc"], e["msg"]) for e in info.value.errors()] == [((where,), message)]


FLEET_MESSAGES = [
    ({"minSize": 0},
     "minSize 0 cannot scale out again: the group scales on requests per instance, and with "
     "no instance the load balancer counts none (it answers 503). Use minSize 1 or more"),
    ({"hostedZoneId": "Z0123ABC"},
     "hostedZoneId needs domainName: the name to create in that zone"),
    ({"certificateArn": ARN},
     "certificateArn needs domainName: the name the certificate is for, which OPENAI_BASE_URL "
     "then uses (the load balancer's own DNS name cannot match it)"),
    ({"domainName": "llm.example.com"},
     "domainName 'llm.example.com' without hostedZoneId: a certificate is requested from ACM "
     "with DNS validation in that Route 53 zone; set hostedZoneId, or certificateArn for a "
     "certificate you already have"),
    ({"warmPool": {}, "spot": {}},
     "warmPool cannot be combined with spot: AWS refuses a warm pool on a group that requests "
     "Spot Instances"),
    ({"warmPool": {}, "instanceTypes": ["g6.xlarge", "g5.xlarge"]},
     "warmPool needs exactly one instance type (got 2): AWS refuses a warm pool on a group "
     "with a mixed instances policy, which several types need"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "message"), FLEET_MESSAGES)
def test_each_fleet_rule_says_why_in_full(values: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        FleetSettings.model_validate({**FLEET_OK, **values})
    assert [e["msg"] for e in info.value.errors()] == [f"Value error, {message}"]


def test_a_fleet_with_a_warm_pool_validates_to_itself() -> None:
    fleet = FleetSettings.model_validate({**FLEET_OK, "warmPool": {"minSize": 2}})
    assert isinstance(fleet, FleetSettings)
    assert fleet.warm_pool is not None and fleet.warm_pool.min_size == 2


def test_duplicates_are_named_in_sorted_order() -> None:
    # Five of each: a set's order would match the sorted one by chance in 1 of 120 runs.
    types = ["g6.xlarge", "g5.xlarge", "g6e.xlarge", "g5.2xlarge", "g6.2xlarge"]
    with pytest.raises(ValidationError, match=r"instanceTypes lists g5\.2xlarge, g5\.xlarge, "
                       r"g6\.2xlarge, g6\.xlarge, g6e\.xlarge more than once"):  # fmt: skip
        FleetSettings.model_validate({"instanceTypes": types + types[::-1]})
    names = ["e", "d", "c", "b", "a"]
    with pytest.raises(ConfigError, match=r"lists \['a', 'b', 'c', 'd', 'e'\] more than once"):
        load({"models": json.dumps(names + names)})


def test_reserved_extra_env_names_are_listed_in_sorted_order() -> None:
    names = ["THREADS", "MODELS_PATH", "LOCALAI_THREADS", "ADDRESS", "HF_TOKEN"]
    message = extra_env_error(dict.fromkeys(names, "1"))
    assert f"{sorted(names)} are set by the package itself" in message


def test_the_embeddings_models_are_offered_in_sorted_order() -> None:
    class Config:
        def __init__(self, embeddings: bool) -> None:
            self.embeddings = embeddings

    catalog = {"z-embed": Config(True), "phi-3.5-mini-instruct": Config(False),
               "m-embed": Config(True), "a-embed": Config(True)}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_settings({"embeddingModel": "nope"}, catalog=catalog)
    assert "embeddings models there: ['a-embed', 'm-embed', 'z-embed'], or 'none'" in str(
        info.value
    )


def test_the_given_api_key_and_instance_type_are_the_ones_kept() -> None:
    key = "k" * 16 + "-0123456789"
    settings = load({**AWS_OK, "apiKey": key, "instanceType": "m7i.large"}, ("apiKey",))
    assert settings.api_key is not None and settings.api_key.get_secret_value() == key
    assert settings.instance_type == "m7i.large"
    assert load({"localaiVersion": "v2.25.1"}).localai_version == "v2.25.1"


def test_the_api_key_rule_says_why() -> None:
    with pytest.raises(ConfigError) as info:
        load({"apiKey": "short"}, ("apiKey",))
    assert str(info.value).splitlines()[1] == (
        "  - localai:apiKey = '[secret]': must be at least 16 characters without spaces, "
        "quotes or commas (LocalAI splits API_KEY on commas: a comma would add a second, "
        "weaker key; leave it unset to have one generated)"
    )


def test_tag_problems_are_joined_with_semicolons() -> None:
    with pytest.raises(ConfigError) as info:
        load({**AWS_OK, "tags": json.dumps({"aws:x": "1", "localai:y": "2"})})
    line = next(li for li in str(info.value).splitlines() if "localai:tags" in li)
    first, second = line.split(": ", 1)[1].split("; ", 1)
    assert "aws:x" in first and "localai:y" in second


def test_the_bind_and_local_fleet_rules_say_why() -> None:
    with pytest.raises(ConfigError) as info:
        load({"bindAddress": "0.0.0.0"})
    assert str(info.value).splitlines()[1] == (
        "  - localai:bindAddress = '0.0.0.0': 0.0.0.0 publishes the endpoint beyond this "
        "machine, and Docker's published ports bypass host firewalls such as ufw; set "
        "'localai:allowNetworkBind true' as well if that is intended"
    )
    with pytest.raises(ConfigError) as info:
        load({"fleet": json.dumps(FLEET_OK)})
    assert str(info.value).splitlines()[1] == (
        "  - localai:fleet = {'instanceTypes': ['g6.xlarge']}: an autoscaled fleet runs on "
        "EC2: set 'localai:target aws', or remove 'localai:fleet' for the local Docker target"
    )


def test_a_cross_key_rule_on_a_key_set_as_secret_shows_it_as_secret() -> None:
    with pytest.raises(ConfigError) as info:
        load({"target": "aws", "allowedCidrs": '["0.0.0.0/0"]'}, ("allowedCidrs",))
    assert (
        str(info.value).splitlines()[1].startswith("  - localai:allowedCidrs = '[secret]': admits ")
    )


def test_format_errors_never_shows_the_api_key_or_hf_token_even_unmarked() -> None:
    for key, value in (("apiKey", "short s3cr3t"), ("hfToken", 'bad"s3cr3t')):
        with pytest.raises(ValidationError) as info:
            Settings.model_validate({key: value})
        text = _format_errors(info.value, {key: value})
        assert "s3cr3t" not in text
        assert f"  - localai:{key} = '[secret]': " in text


def test_each_up_front_problem_is_a_line_of_its_own_in_key_order() -> None:
    with pytest.raises(ConfigError) as info:
        load({"ready_timeout_seconds": "60", "api_key": "x", "extra_env": "{}"})
    assert str(info.value).splitlines() == [
        "localai configuration is invalid:",
        "  - localai:api_key: configuration keys are camelCase; use localai:apiKey",
        "  - localai:extra_env: configuration keys are camelCase; use localai:extraEnv",
        "  - localai:ready_timeout_seconds: configuration keys are camelCase; use "
        "localai:readyTimeoutSeconds",
    ]


def test_refused_extra_env_names_are_listed_in_sorted_order() -> None:
    names = ["P2P", "GALLERIES", "TOKEN", "FEDERATED", "AUTOLOAD_GALLERIES"]
    message = extra_env_error(dict.fromkeys(names, "1"))
    listed = re.findall(r"\b(" + "|".join(names) + r") ", message.split("refused: ", 1)[1])
    assert listed == sorted(names)


@pytest.mark.parametrize("catalog", ["mapping", "names"])
def test_an_embeddings_model_set_explicitly_is_kept(catalog: str) -> None:
    from components.models.catalog import load_catalog

    models = load_catalog()
    given = models if catalog == "mapping" else set(models)
    settings = load_settings({"embeddingModel": "nomic-embed-text-v1.5"}, catalog=given)
    assert settings.embedding_model == "nomic-embed-text-v1.5"
    assert settings.served_models == ["phi-3.5-mini-instruct", "nomic-embed-text-v1.5"]


def test_the_host_service_ports_are_these_and_each_above_1023_is_refused() -> None:
    from components.settings import HOST_SERVICE_PORTS

    assert frozenset({22, 53, 111, 2375, 2376, 2377, 4789, 7946}) == HOST_SERVICE_PORTS
    for port in (4789, 2375):
        with pytest.raises(ConfigError, match=rf"localai:port = '{port}': {port} is a port"):
            load({**AWS_OK, "port": str(port)})


def test_no_embeddings_model_given_as_null_is_none() -> None:
    settings = Settings.model_validate({"embeddingModel": None}, context={"catalog": CATALOG})
    assert settings.embedding_model is None


def test_a_nested_value_of_a_key_set_as_secret_is_never_shown() -> None:
    fleet = json.dumps({"instanceTypes": ["g6.xlarge"], "minSize": "s3cr3t"})
    with pytest.raises(ConfigError) as info:
        load({**AWS_OK, "fleet": fleet}, ("fleet",))
    assert "s3cr3t" not in str(info.value)
    assert "  - localai:fleet.minSize = '[secret]': " in str(info.value)


def test_none_as_the_embeddings_model_is_read_by_value() -> None:
    none = "".join(["no", "ne"])  # a string made at run time, as a config value is
    assert load_settings({"embeddingModel": none}, catalog=CATALOG).embedding_model is None


# -- localai:egress none (issue 20) ------------------------------------------------------

SEALED_OK = {"target": "aws", "public": "false", "egress": "none"}


def test_egress_defaults_to_internet_without_route_out() -> None:
    settings = load({})
    assert (settings.egress, settings.allow_route_out) == ("internet", False)


def test_a_sealed_private_host_is_accepted_with_or_without_route_out() -> None:
    assert load(SEALED_OK).egress == "none"
    assert load({**SEALED_OK, "allowRouteOut": "true"}).allow_route_out is True


def test_egress_takes_internet_or_none_only() -> None:
    with pytest.raises(
        ConfigError, match=r"localai:egress = 'off': Input should be 'internet' or 'none'"
    ):
        load({**SEALED_OK, "egress": "off"})


def test_a_sealed_host_cannot_be_public() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"target": "aws", "egress": "none", "allowedCidrs": '["203.0.113.0/24"]'})
    assert "localai:public = (not set): a host with 'localai:egress none' has no public" in str(
        caught.value
    )


def test_a_sealed_fleet_is_accepted_without_public() -> None:
    fleet = json.dumps({"instanceTypes": ["c7a.xlarge"], "internal": True})
    assert load({"target": "aws", "egress": "none", "fleet": fleet}).egress == "none"


def test_a_sealed_host_refuses_ssh_from_public_networks_only() -> None:
    ssh = {"sshKeyName": "ops"}
    with pytest.raises(ConfigError, match=r"admit 1 public IPv4 addresses.*egress none"):
        load({**SEALED_OK, **ssh, "sshCidrs": '["10.0.0.0/8", "198.51.99.7/32"]'})
    assert load({**SEALED_OK, **ssh, "sshCidrs": '["10.0.0.0/8"]'}).ssh_cidrs == ["10.0.0.0/8"]


def test_allow_route_out_means_nothing_without_egress_none() -> None:
    with pytest.raises(ConfigError, match=r"localai:allowRouteOut = 'true': accepts a route out"):
        load({**AWS_OK, "allowRouteOut": "true"})


def test_egress_keys_are_ignored_on_the_docker_target() -> None:
    settings = load({"egress": "none", "allowRouteOut": "true"})
    assert settings.ignored_keys() == ["egress", "allowRouteOut"]


def test_a_hosted_model_priced_at_nothing_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="both 0: a free hosted model never breaks even"):
        load({**AWS_OK, "compareWith": '{"inputUsdPer1M": 0, "outputUsdPer1M": 0}'})
    assert load({**AWS_OK, "compareWith": '{"inputUsdPer1M": 0, "outputUsdPer1M": 0.01}'})


def test_compare_with_reads_its_json_and_names_a_misspelt_key() -> None:
    loaded = load({**AWS_OK, "compareWith": '{"inputUsdPer1M": 0.15, "outputUsdPer1M": 0.6}'})
    assert loaded.compare_with == CompareWithSettings(inputUsdPer1M=0.15, outputUsdPer1M=0.6)
    with pytest.raises(ConfigError, match=r"compareWith\.inputUsdPer1m: unknown key"):
        load({**AWS_OK, "compareWith": '{"inputUsdPer1m": 0.15, "outputUsdPer1M": 0.6}'})


def test_cost_keys_are_ignored_with_a_warning_on_docker_where_there_is_no_price() -> None:
    loaded = load({"compareWith": '{"inputUsdPer1M": 1, "outputUsdPer1M": 1}',
                   "expectedUtilisation": "0.5"})  # fmt: skip
    assert loaded.ignored_keys() == ["compareWith", "expectedUtilisation"]
