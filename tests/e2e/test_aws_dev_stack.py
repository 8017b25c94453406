"""Day two on real AWS, end to end (Terratest style, with Pulumi's Automation API).

Run with ``LOCALAI_E2E_AWS=1 .venv/bin/python -m pytest tests/e2e -s`` after ``aws
configure`` (or any AWS credentials) with the Pulumi CLI and the AWS CLI on PATH. It
deploys the dev stack with the smallest model (qwen2.5-0.5b-instruct, 0.4 GB) into a stack
of its own on a local state backend, and checks, in order:

1. ``pulumi up`` returns with the endpoint answering; the Python example streams a reply;
   the benchmark reports a time to first token.
2. A bigger instance type (c7i.xlarge -> c7i.2xlarge) replaces the host but keeps the
   weights volume, and the new host downloads nothing (its LocalAI log has no download).
3. A rotated key: the same ``pulumi up`` makes the host load it; the old key gets 401.
4. ``pulumi destroy`` keeps the weights volume (then this test deletes it, unless
   LOCALAI_E2E_KEEP_VOLUME=1).

Cost: about 40 minutes of c7i.xlarge/c7i.2xlarge (~$0.20), a 20 GB gp3 volume for the same
time, an Elastic IP, CloudWatch logs: well under $1 in us-east-1.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parents[2]
MODEL = "qwen2.5-0.5b-instruct"
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _my_cidr() -> str:
    with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as response:
        return response.read().decode().strip() + "/32"


def _aws(*args: str) -> dict:
    done = subprocess.run(
        ["aws", "--region", REGION, "--output", "json", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout or "{}")


def _chat_status(base_url: str, key: str) -> int:
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=json.dumps(
            {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
        ).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("pulumi-state")
    name = f"e2e-{secrets.token_hex(3)}"
    workspace = auto.LocalWorkspaceOptions(
        env_vars={
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE": secrets.token_hex(16),
        }
    )
    created = auto.create_stack(name, work_dir=str(ROOT), opts=workspace)
    created.set_all_config(
        {
            "aws:region": auto.ConfigValue(REGION),
            "localai:target": auto.ConfigValue("aws"),
            "localai:instanceType": auto.ConfigValue("c7i.xlarge"),
            "localai:models": auto.ConfigValue(json.dumps([MODEL])),
            "localai:allowedCidrs": auto.ConfigValue(json.dumps([_my_cidr()])),
            "localai:apiKey": auto.ConfigValue("sk-e2e-" + secrets.token_hex(16), secret=True),
        }
    )
    yield created
    created.destroy(on_output=print)
    created.workspace.remove_stack(name)


def _up(stack: auto.Stack) -> dict[str, object]:
    result = stack.up(on_output=print)
    return {key: value.value for key, value in result.outputs.items()}


def test_day_two_on_real_aws(stack: auto.Stack) -> None:
    # 1. First deploy: answers, streams, measures.
    first = _up(stack)
    env = {
        **os.environ,
        "OPENAI_BASE_URL": first["OPENAI_BASE_URL"],
        "OPENAI_API_KEY": first["OPENAI_API_KEY"],
        "OPENAI_MODEL": first["OPENAI_MODEL"],
    }
    chat = subprocess.run(
        [sys.executable, "examples/python/chat.py", "Say hello"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    bench = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_endpoint", "--requests", "3", "--json",
         "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    assert "ttft" in bench.stdout.lower()

    # 2. A bigger type in the family: a new host, the same volume, no download.
    stack.set_config("localai:instanceType", auto.ConfigValue("c7i.2xlarge"))
    second = _up(stack)
    assert second["weightsVolumeId"] == first["weightsVolumeId"]
    events = _aws(
        "logs", "filter-log-events", "--log-group-name", str(second["logGroup"]),
        "--log-stream-names", str(second["instanceId"]), "--filter-pattern", "Downloading",
    )  # fmt: skip
    assert events.get("events", []) == [], "the new host downloaded weights again"

    # 3. Rotate the key: the same `pulumi up` proves the new one; the old one is refused.
    old_key = str(second["OPENAI_API_KEY"])
    stack.set_config(
        "localai:apiKey", auto.ConfigValue("sk-e2e-" + secrets.token_hex(16), secret=True)
    )
    third = _up(stack)
    assert third["instanceId"] == second["instanceId"], "no replacement for a new key"
    assert _chat_status(str(third["OPENAI_BASE_URL"]), str(third["OPENAI_API_KEY"])) == 200
    assert _chat_status(str(third["OPENAI_BASE_URL"]), old_key) == 401

    # 4. Destroy keeps the weights volume.
    volume_id = str(third["weightsVolumeId"])
    stack.destroy(on_output=print)
    (volume,) = _aws("ec2", "describe-volumes", "--volume-ids", volume_id)["Volumes"]
    assert volume["State"] == "available"
    if os.environ.get("LOCALAI_E2E_KEEP_VOLUME") != "1":
        _aws("ec2", "delete-volume", "--volume-id", volume_id)
