"""The CloudWatch agent's configuration on a LocalAI host: CPU, memory, the weights volume's
disk use and, on a GPU host, the GPU's utilisation and memory.

Pure (no Pulumi). The bootstrap writes :func:`agent_config` as JSON next to the other
settings and ``localai-metrics-agent`` installs Amazon's agent and starts it with that file
(``amazon-cloudwatch-agent-ctl -a fetch-config -c file:...``). What the agent does with it,
read in aws/amazon-cloudwatch-agent (``translator/``, ``plugins/``):

- Each measurement becomes the metric ``<plugin>_<field>`` (telegraf's naming; the GPU
  plugin is ``nvidia_smi``: ``nvidia_smi_utilization_gpu``), published to ``namespace``.
- ``append_dimensions`` with ``${aws:InstanceId}`` runs the ``ec2tagger`` processor, which
  reads the id from IMDS (no EC2 API call when no instance tag is asked for) and removes
  the ``host`` dimension (``plugins/processors/ec2tagger/ec2tagger.go``, ``attr.Remove``).
- ``aggregation_dimensions`` ``[[]]`` also publishes every metric with no dimension at all
  (``ProcessRollup`` in ``plugins/outputs/cloudwatch/cloudwatch.go``): the same figure from
  every host of the stack in one series. The namespace is the stack's own, and the disk
  plugin watches only the weights volume, so ``disk_used_percent`` without dimensions is
  the weights volume of every host: the alarm's ``Maximum`` is the fullest one, on a
  single VM and a fleet alike, across instance replacements.
"""

from __future__ import annotations

import json

COLLECTION_INTERVAL_S = 60

CPU_METRIC = "cpu_usage_active"
MEMORY_METRIC = "mem_used_percent"
DISK_METRIC = "disk_used_percent"
GPU_UTILISATION_METRIC = "nvidia_smi_utilization_gpu"
GPU_MEMORY_METRIC = "nvidia_smi_utilization_memory"
"""Percent of the last sample period the GPU's memory was being read or written."""
GPU_MEMORY_USED_METRIC = "nvidia_smi_memory_used"
"""MiB of GPU memory in use (the model's weights and KV cache once loaded)."""

ROLLUP_DIMENSIONS: list[list[str]] = [[]]
"""Besides each host's series (``InstanceId`` and the plugin's own tags), one series per
metric without dimensions: what the alarms and the dashboard read."""


def agent_config(*, namespace: str, region: str, mount_point: str, gpu: bool) -> dict[str, object]:
    """The agent's JSON configuration (its schema: ``translator/config/schema.json``)."""
    collected: dict[str, object] = {
        "cpu": {"measurement": ["usage_active"], "totalcpu": True},
        "mem": {"measurement": ["used_percent"]},
        "disk": {
            "measurement": ["used_percent"],
            "resources": [mount_point],
            "drop_device": True,
        },
    }
    if gpu:
        collected["nvidia_gpu"] = {
            "measurement": ["utilization_gpu", "utilization_memory", "memory_used"]
        }
    return {
        "agent": {
            "metrics_collection_interval": COLLECTION_INTERVAL_S,
            "region": region,
            "usage_data": False,
        },
        "metrics": {
            "namespace": namespace,
            "append_dimensions": {"InstanceId": "${aws:InstanceId}"},
            "aggregation_dimensions": ROLLUP_DIMENSIONS,
            "metrics_collected": collected,
        },
    }


def agent_config_json(*, namespace: str, region: str, mount_point: str, gpu: bool) -> str:
    return (
        json.dumps(
            agent_config(namespace=namespace, region=region, mount_point=mount_point, gpu=gpu),
            sort_keys=True,
            separators=(",", ":"),
        )
        + "\n"
    )


def published_metrics(gpu: bool) -> list[str]:
    """The metric names the configuration makes the agent publish."""
    metrics = [CPU_METRIC, MEMORY_METRIC, DISK_METRIC]
    if gpu:
        metrics += [GPU_UTILISATION_METRIC, GPU_MEMORY_METRIC, GPU_MEMORY_USED_METRIC]
    return metrics
