"""The CloudWatch agent's configuration, checked against the agent's own schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from components.aws.bootstrap.metrics_agent import (
    DISK_METRIC,
    ROLLUP_DIMENSIONS,
    agent_config,
    agent_config_json,
    published_metrics,
)

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "data" / "cloudwatch-agent-schema.json"
# The agent names a metric <input plugin>_<field>; the JSON's "nvidia_gpu" is telegraf's
# nvidia_smi input (translator/tocwconfig/sampleConfig/advanced_config_linux.conf).
PLUGIN_PREFIX = {"nvidia_gpu": "nvidia_smi"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    return jsonschema.Draft4Validator(schema)


def config(gpu: bool) -> dict:
    return agent_config(
        namespace="LocalAI/localai-dev", region="us-east-1", mount_point="/opt/localai", gpu=gpu
    )


def errors(validator: jsonschema.Draft4Validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("gpu", [False, True])
def test_the_configuration_is_valid_for_the_agents_schema(validator, gpu: bool) -> None:
    assert errors(validator, config(gpu)) == []
    # The schema's top level allows unknown keys: a misspelt section would be ignored.
    assert set(config(gpu)) <= set(validator.schema["properties"])


def test_the_schema_check_is_live(validator) -> None:
    """A misspelt section, a measurement given as a string and a bad interval are errors."""
    broken = config(gpu=True)
    broken["metrics"]["metrics_collected"]["mem"]["measurement"] = "used_percent"
    broken["agent"]["metrics_collection_interval"] = "60"
    broken["metric"] = {}
    found = errors(validator, broken)
    assert any(e.startswith("metrics/metrics_collected/mem/measurement") for e in found), found
    assert any(e.startswith("agent/metrics_collection_interval") for e in found), found
    assert "metric" not in validator.schema["properties"]


@pytest.mark.parametrize("gpu", [False, True])
def test_published_metric_names_follow_from_the_configuration(gpu: bool) -> None:
    collected = config(gpu)["metrics"]["metrics_collected"]
    derived = [
        f"{PLUGIN_PREFIX.get(plugin, plugin)}_{field}"
        for plugin, section in collected.items()
        for field in section["measurement"]
    ]
    assert sorted(derived) == sorted(published_metrics(gpu))
    assert any(name.startswith("nvidia_smi_") for name in derived) is gpu


def test_only_the_weights_volume_is_watched_and_every_metric_has_a_stack_wide_series() -> None:
    document = config(gpu=False)
    metrics = document["metrics"]
    assert metrics["metrics_collected"]["disk"]["resources"] == ["/opt/localai"]
    assert metrics["metrics_collected"]["disk"]["drop_device"] is True
    assert metrics["namespace"] == "LocalAI/localai-dev"
    # InstanceId only: the agent reads it from IMDS; an instance tag (AutoScalingGroupName)
    # would need ec2:DescribeTags, which a sealed host has no endpoint for.
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    assert metrics["aggregation_dimensions"] == ROLLUP_DIMENSIONS == [[]]
    assert DISK_METRIC == "disk_used_percent"
    assert document["agent"] == {
        "metrics_collection_interval": 60,
        "region": "us-east-1",
        "usage_data": False,
    }


def test_the_json_is_deterministic_and_parses_back() -> None:
    kwargs = {"namespace": "LocalAI/x", "region": "eu-west-1", "mount_point": "/w", "gpu": True}
    text = agent_config_json(**kwargs)
    assert text == agent_config_json(**kwargs)
    assert text.endswith("\n")
    assert json.loads(text) == agent_config(**kwargs)
