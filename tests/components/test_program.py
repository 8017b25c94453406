"""The whole program under Pulumi mocks: every stack builds and honours the output contract."""

from __future__ import annotations

import json
import re

import pulumi
import pytest
import yaml

from components.errors import ConfigError, LocalAIError
from components.program import build_from_stack_config, default_max_tokens
from components.settings import DEFAULT_MODEL
from tests.support.program_run import localai_keys, run_program
from tests.support.pulumi_mocks import RecordingMocks, stack_config, stack_names

CONTRACT = {"OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"}
# `export $(pulumi stack output --shell --show-secrets)` word-splits the output and keeps
# quote characters, so every value must be one plain word (go-shellquote leaves these
# characters unquoted).
SHELL_WORD = re.compile(r"^[A-Za-z0-9_./:,=+@%^-]+$")


def test_the_stacks_directory_has_the_documented_stacks() -> None:
    assert {"local", "dev", "gpu", "prod"} <= set(stack_names())


@pytest.mark.parametrize("stack", stack_names())
def test_every_stack_builds_and_exports_the_contract(
    stack: str, pulumi_mocks: RecordingMocks
) -> None:
    config = localai_keys(stack_config(stack))
    result = run_program(config, stack=stack)
    outputs = result.outputs
    assert set(outputs) >= CONTRACT, f"{stack}: missing {CONTRACT - set(outputs)}"
    assert outputs["OPENAI_BASE_URL"].endswith("/v1")
    # The fleet with a certificate speaks HTTPS; everything else plain HTTP.
    scheme = "https://" if stack == "prod" else "http://"
    assert outputs["OPENAI_BASE_URL"].startswith(scheme)
    expected_model = json.loads(config["models"])[0] if "models" in config else DEFAULT_MODEL
    assert outputs["OPENAI_MODEL"] == expected_model
    assert "OPENAI_API_KEY" in result.secret_outputs, "the key must be a Pulumi secret"
    assert outputs["OPENAI_API_KEY"].startswith("sk-localai-")
    # Every shipped stack serves embeddings and says how long a request may be.
    assert outputs["OPENAI_EMBEDDING_MODEL"] == "nomic-embed-text-v1.5"
    assert outputs["contextPerRequest"] >= 1024
    for name, value in outputs.items():
        assert re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name), f"{name} is not an env var name"
        assert SHELL_WORD.match(str(value)), (
            f"{stack}: output {name}={value!r} would break `export $(pulumi stack output --shell)`"
        )


def test_local_stack_exports_local_extras(pulumi_mocks: RecordingMocks) -> None:
    outputs = run_program(localai_keys(stack_config("local"))).outputs
    assert outputs["OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1"
    assert outputs["healthUrl"] == "http://127.0.0.1:8080/readyz"
    assert outputs["accelerator"] == "cpu"
    assert outputs["estimatedTokensPerSecond"] > 0
    assert outputs["estimatedTtftMs"] > 0
    # phi-3.5's 4096 tokens of context, one slot (parallelRequests 1).
    assert outputs["contextPerRequest"] == 4096
    assert outputs["OPENAI_EMBEDDING_MODEL"] == "nomic-embed-text-v1.5"


def test_the_embeddings_model_is_served_and_keeps_its_own_context(
    pulumi_mocks: RecordingMocks,
) -> None:
    config = localai_keys(stack_config("local"))
    config.update(contextSize="8192")
    run_program(config)
    uploads = {u["file"].rsplit("/", 1)[-1]: u["content"]
               for u in pulumi_mocks.one("docker:index/container:Container").inputs["uploads"]}  # fmt: skip
    chat = yaml.safe_load(uploads["phi-3.5-mini-instruct.yaml"])
    embedder = yaml.safe_load(uploads["nomic-embed-text-v1.5.yaml"])
    assert chat["context_size"] == 8192
    assert embedder["context_size"] == 2048 and embedder["embeddings"] is True
    assert "max_tokens" not in embedder["parameters"]


def test_without_an_embeddings_model_nothing_of_it_is_deployed(
    pulumi_mocks: RecordingMocks,
) -> None:
    config = localai_keys(stack_config("local"))
    config.update(embeddingModel="none")
    outputs = run_program(config).outputs
    assert "OPENAI_EMBEDDING_MODEL" not in outputs
    uploads = [
        u["file"] for u in pulumi_mocks.one("docker:index/container:Container").inputs["uploads"]
    ]
    assert not any("nomic" in f for f in uploads)


@pytest.mark.parametrize(("context", "parallel", "per_slot"), [(8192, 4, 2048), (4096, 3, 1365)])
def test_each_request_gets_its_slots_context_and_half_of_it_to_answer(
    pulumi_mocks: RecordingMocks, context: int, parallel: int, per_slot: int
) -> None:
    config = localai_keys(stack_config("local"))
    config.update(contextSize=str(context), parallelRequests=str(parallel))
    outputs = run_program(config).outputs
    assert outputs["contextPerRequest"] == per_slot
    container = pulumi_mocks.one("docker:index/container:Container")
    (yaml_text,) = [u["content"] for u in container.inputs["uploads"]
                    if u["file"].endswith("phi-3.5-mini-instruct.yaml")]  # fmt: skip
    assert yaml.safe_load(yaml_text)["parameters"]["max_tokens"] == per_slot // 2
    assert default_max_tokens(context, parallel) == per_slot // 2
    assert default_max_tokens(1, 1) == 1, "never 0: LocalAI reads 0 as no limit"


def test_aws_stack_exports_host_extras(pulumi_mocks: RecordingMocks) -> None:
    outputs = run_program(localai_keys(stack_config("dev"))).outputs
    assert outputs["OPENAI_BASE_URL"] == "http://198.51.100.7:8080/v1"  # the Elastic IP
    assert outputs["instanceId"] == "i-0123456789abcdef0"
    assert outputs["weightsVolumeId"] == "vol-0fedcba9876543210"
    assert outputs["healthUrl"] == "http://198.51.100.7:8080/readyz"
    assert outputs["ssmPortForwardCommand"] == "scripts/port-forward.sh"
    assert outputs["hourlyCostUsd"] > 0
    assert outputs["instanceType"] == "c7a.xlarge"


def test_a_configured_key_is_exported_as_given(pulumi_mocks: RecordingMocks) -> None:
    key = "sk-team-0123456789abcdef"
    result = run_program({"apiKey": key}, secret_keys=("apiKey",))
    assert result.outputs["OPENAI_API_KEY"] == key
    assert "OPENAI_API_KEY" in result.secret_outputs
    assert not pulumi_mocks.of_type("random:index/randomPassword:RandomPassword")


def _run_stack_config(config: dict[str, str]) -> None:
    pulumi.runtime.set_all_config({f"localai:{k}": v for k, v in config.items()}, secret_keys=[])

    @pulumi.runtime.test
    def _build() -> None:
        build_from_stack_config(daemon_query=lambda: None)  # not reached on bad config

    _build()


@pytest.mark.parametrize(
    "config",
    [
        {"target": "kubernetes"},
        {"accelerator": "tpu"},
        {"models": '["not-a-model"]'},
        {"models": "[]"},
        {"port": "0"},
        {"memoryLimitMb": "-5"},
        {"target": "aws"},  # public without allowedCidrs
        {
            "target": "aws",
            "allowedCidrs": '["10.0.0.0/8"]',
            "accelerator": "gpu",
            "instanceType": "c7i.xlarge",
        },
        {"target": "aws", "allowedCidrs": '["10.0.0.0/8"]', "instanceType": "z9.large"},
        {
            "target": "aws",
            "allowedCidrs": '["10.0.0.0/8"]',
            "instanceType": "t3.medium",
            "models": '["llama-3.1-8b-instruct"]',
        },  # does not fit: a sizing error
    ],
)
def test_bad_config_stops_before_any_resource(
    config: dict[str, str], pulumi_mocks: RecordingMocks
) -> None:
    with pytest.raises(LocalAIError) as caught:
        _run_stack_config(config)
    assert isinstance(caught.value, pulumi.RunError), "a clean Pulumi error, no traceback"
    assert pulumi_mocks.resources == [], [r.name for r in pulumi_mocks.resources]


def test_good_config_through_the_same_path_does_register_resources(
    pulumi_mocks: RecordingMocks,
) -> None:
    """Control for the test above: the path really registers resources when valid."""
    pulumi.runtime.set_all_config({"localai:target": "docker"}, secret_keys=[])

    @pulumi.runtime.test
    def _build() -> None:
        from components.docker.daemon import DaemonInfo

        build_from_stack_config(daemon_query=lambda: DaemonInfo(reachable=False))

    _build()
    assert pulumi_mocks.of_type("docker:index/container:Container")


def test_config_errors_are_pulumi_run_errors() -> None:
    assert issubclass(ConfigError, pulumi.RunError)
