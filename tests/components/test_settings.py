"""components/settings.py: defaults, and one clear message per bad value (no Pulumi needed)."""

from __future__ import annotations

import json

import pytest

from components.errors import ConfigError
from components.settings import Settings, load_settings, public_ipv4_addresses

CATALOG = {"phi-3.5-mini-instruct", "llama-3.1-8b-instruct", "qwen2.5-0.5b-instruct"}
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
    assert load({"extraEnv": '{"LOCALAI_LOG_LEVEL": "debug"}'}).extra_env == {
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
    from components.aws.limits import CLOUDWATCH_RETENTION_DAYS

    assert load(AWS_OK).log_retention_days in CLOUDWATCH_RETENTION_DAYS
