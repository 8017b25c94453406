"""What LocalAI serves, on both targets: chat and nothing else (issue 10, part 3).

With API keys set, any key holder could use LocalAI's gallery routes (/models/apply
downloads from any URL into the weights volume) and its web UI; extraEnv could exempt GET
routes from the key, turn on P2P or make the entrypoint rebuild; a configured key with a
comma became two keys (LocalAI splits API_KEY on commas)."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
import yaml

from components.aws.bootstrap.cloud_init import EXTRA_ENV_PATH, decode_write_file
from components.errors import ConfigError
from components.settings import load_settings
from tests.support.program_run import run_program
from tests.support.pulumi_mocks import RecordingMocks

CATALOG = {"phi-3.5-mini-instruct", "llama-3.1-8b-instruct", "qwen2.5-0.5b-instruct"}
AWS = {"target": "aws", "allowedCidrs": '["203.0.113.0/24"]'}
LOCKED = {
    "LOCALAI_DISABLE_GALLERY_ENDPOINT=true",
    "LOCALAI_SUBTLE_KEY_COMPARISON=true",
    "LOCALAI_DISABLE_WEBUI=true",
}


def docker_env(mocks: RecordingMocks) -> set[str]:
    envs = mocks.one("docker:index/container:Container").inputs["envs"]
    if isinstance(envs, dict):  # a secret: the key is in it
        envs = envs["value"]
    return set(envs)


def ec2_env_file(mocks: RecordingMocks) -> set[str]:
    raw = base64.b64decode(mocks.one("aws:ec2/instance:Instance").inputs["userDataBase64"])
    document = yaml.safe_load(gzip.decompress(raw).decode())
    files = {e["path"]: decode_write_file(e) for e in document["write_files"]}
    return {line for line in files[EXTRA_ENV_PATH].splitlines() if not line.startswith("#")}


def test_the_local_container_serves_only(pulumi_mocks: RecordingMocks) -> None:
    run_program({})
    assert docker_env(pulumi_mocks) >= LOCKED


def test_the_ec2_container_serves_only(pulumi_mocks: RecordingMocks) -> None:
    run_program(AWS)
    assert ec2_env_file(pulumi_mocks) >= LOCKED


def test_the_web_ui_is_on_only_when_asked(pulumi_mocks: RecordingMocks) -> None:
    run_program({"webUi": "true"})
    env = docker_env(pulumi_mocks)
    assert "LOCALAI_DISABLE_WEBUI=true" not in env
    assert {"LOCALAI_DISABLE_GALLERY_ENDPOINT=true", "LOCALAI_SUBTLE_KEY_COMPARISON=true"} <= env


def load(raw: dict[str, str], secret_keys: tuple[str, ...] = ()):
    return load_settings(raw, catalog=CATALOG, secret_keys=secret_keys)


# Written out here, not read from the code: each must be refused with its reason.
REFUSED = {
    "LOCALAI_DISABLE_API_KEY_REQUIREMENT_FOR_HTTP_GET": "exempts routes from the API key",
    "DISABLE_API_KEY_REQUIREMENT_FOR_HTTP_GET": "exempts routes from the API key",
    "LOCALAI_HTTP_GET_EXEMPTED_ENDPOINTS": "exempts routes from the API key",
    "HTTP_GET_EXEMPTED_ENDPOINTS": "exempts routes from the API key",
    "LOCALAI_DISABLE_GALLERY_ENDPOINT": "is set by the package",
    "DISABLE_GALLERY_ENDPOINT": "is set by the package",
    "LOCALAI_SUBTLE_KEY_COMPARISON": "is set by the package",
    "SUBTLE_KEY_COMPARISON": "is set by the package",
    "LOCALAI_DISABLE_WEBUI": "is set with localai:webUi",
    "DISABLE_WEBUI": "is set with localai:webUi",
    "LOCALAI_P2P": "P2P/federation",
    "P2P": "P2P/federation",
    "LOCALAI_FEDERATED": "P2P/federation",
    "FEDERATED": "P2P/federation",
    "LOCALAI_P2P_TOKEN": "P2P/federation",
    "TOKEN": "P2P/federation",
    "LOCALAI_P2P_NETWORK_ID": "P2P/federation",
    "LOCALAI_P2P_DISABLE_DHT": "P2P/federation",
    "REBUILD": "rebuild LocalAI",
    "EXTRA_BACKENDS": "rebuild LocalAI",
    "BUILD_TYPE": "rebuild LocalAI",
    "GO_TAGS": "rebuild LocalAI",
    "LOCALAI_GALLERIES": "galleries",
    "GALLERIES": "galleries",
    "LOCALAI_AUTOLOAD_GALLERIES": "galleries",
    "AUTOLOAD_GALLERIES": "galleries",
    "LOCALAI_PRELOAD_MODELS": "galleries",
    "PRELOAD_MODELS": "galleries",
    "LOCALAI_PRELOAD_MODELS_CONFIG": "galleries",
    "PRELOAD_MODELS_CONFIG": "galleries",
    "LOCALAI_MODELS": "galleries",
    "MODELS": "galleries",
    "LOCALAI_LOAD_TO_MEMORY": "galleries",
    "LOAD_TO_MEMORY": "galleries",
    "LOCALAI_MODELS_CONFIG_FILE": "galleries",
    "CONFIG_FILE": "galleries",
    "LOCALAI_BACKEND_ASSETS_PATH": "backend binaries",
    "BACKEND_ASSETS_PATH": "backend binaries",
    "LOCALAI_EXTERNAL_GRPC_BACKENDS": "backend binaries",
    "EXTERNAL_GRPC_BACKENDS": "backend binaries",
    "LOCALAI_CONFIG_DIR": "api_keys.json",
    "CONFIG_DIR": "api_keys.json",
}
RESERVED = [
    "THREADS", "LOCALAI_THREADS", "PARALLEL_REQUESTS", "LOCALAI_PARALLEL_REQUESTS",
    "LLAMACPP_PARALLEL", "MODELS_PATH", "LOCALAI_MODELS_PATH", "ADDRESS", "LOCALAI_ADDRESS",
    "SINGLE_ACTIVE_BACKEND", "LOCALAI_SINGLE_ACTIVE_BACKEND",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_extra_env_that_weakens_auth_or_changes_what_runs_is_refused(name: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"localai:extraEnv = .*refused: {name} .*{REFUSED[name]}"
    ):
        load({"extraEnv": json.dumps({name: "1"})})


@pytest.mark.parametrize("name", RESERVED)
def test_extra_env_the_package_sets_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"are set by the package itself"):
        load({"extraEnv": json.dumps({name: "1"})})


def test_harmless_extra_env_is_kept() -> None:
    assert load({"extraEnv": '{"LOCALAI_LOG_LEVEL": "debug"}', "logPrompts": "true"}).extra_env == {
        "LOCALAI_LOG_LEVEL": "debug"
    }


def test_a_secret_extra_env_is_refused_so_it_never_lands_in_plain_text() -> None:
    with pytest.raises(
        ConfigError,
        match=r"localai:extraEnv is a secret: its values would be written into the EC2 user data",
    ):
        load({"extraEnv": '{"HF_TOKEN": "hf_x"}'}, secret_keys=("extraEnv",))


@pytest.mark.parametrize("key", ["sk-localai-abcdefgh,weak", "sk-localai-abcdefghijkl,"])
def test_a_configured_key_with_a_comma_is_refused(key: str) -> None:
    with pytest.raises(
        ConfigError, match=r"localai:apiKey = '\[secret\]': .*LocalAI splits API_KEY on commas"
    ):
        load({"apiKey": key}, secret_keys=("apiKey",))


def test_generated_keys_use_no_separator(pulumi_mocks: RecordingMocks) -> None:
    run_program({})
    password = pulumi_mocks.one("random:index/randomPassword:RandomPassword").inputs
    assert password["special"] is False and password["length"] >= 32


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
    ],
)
def test_a_non_loopback_bind_needs_an_explicit_opt_in(address: str, ok: bool) -> None:
    if ok:
        assert load({"bindAddress": address}).bind_address == address
        return
    with pytest.raises(
        ConfigError,
        match=rf"localai:bindAddress = '{address}': {address} publishes the endpoint beyond this machine, and Docker's published ports bypass host firewalls",
    ):
        load({"bindAddress": address})
    assert load({"bindAddress": address, "allowNetworkBind": "true"}).bind_address == address


def test_a_plain_text_hf_token_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"localai:hfToken is stored in plain text"):
        load({"hfToken": "hf_x0123456789"})
    assert load({"hfToken": "hf_x0123456789"}, secret_keys=("hfToken",)).hf_token is not None


def test_the_local_container_gets_the_token_in_its_secret_env(pulumi_mocks: RecordingMocks) -> None:
    run_program({"hfToken": "hf_local_token"}, secret_keys=("hfToken",))
    envs = pulumi_mocks.one("docker:index/container:Container").inputs["envs"]
    assert isinstance(envs, dict), "the env list is a secret"
    assert "HF_TOKEN=hf_local_token" in envs["value"]


def test_hf_token_cannot_be_set_through_extra_env() -> None:
    with pytest.raises(ConfigError, match=r"are set by the package itself"):
        load({"extraEnv": '{"HF_TOKEN": "x"}'})
