"""Our scripts on a real Docker Engine, with the LocalAI stand-in image as the only double
(issue 10, part 5): the EC2 run script (limits, env files, mounts, replacing the
container, CPU fallback when ``--gpus all`` fails), the fetcher feeding it from an HTTPS
server on 127.0.0.1, the warm-up, a restart that must not download again, and the local
target's container start (config sync, fetch, a fetch error the readiness wait reports).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from components.aws.bootstrap.cloud_init import compact_script, read_file
from components.docker.target import (
    _ENTRYPOINT_SCRIPT,
    CONFIG_STAGING_DIR,
    FETCH_WEIGHTS,
    MODELS_DIR,
    SYNC_CONFIGS,
    WEIGHTS_MANIFEST,
)
from components.readiness.waiter import EndpointNotReady, wait_until_ready
from components.serving import LOCKDOWN_ENV, WEBUI_OFF_ENV
from components.weights.manifest import CONFIG_SYNC, FETCHER
from tests.components.aws.bootstrap.cloud_init_support import DEFAULT_MODEL, SENTINEL_KEY
from tests.components.aws.bootstrap.test_scripts import Host
from tests.docker.conftest import docker
from tests.support.ports import free_port

pytestmark = pytest.mark.slow
WEIGHTS = "tiny-test.gguf"


def model_yaml(url: str, sha: str) -> str:
    return yaml.safe_dump(
        {
            "name": DEFAULT_MODEL,
            "backend": "llama-cpp",
            "context_size": 256,
            "parameters": {"model": WEIGHTS},
            "download_files": [{"filename": WEIGHTS, "sha256": sha, "uri": url}],
        }
    )


@pytest.fixture
def weights(tiny_gguf: Path, file_server) -> tuple[str, str, str]:
    """The tiny GGUF served over HTTPS: (url, sha256, manifest)."""
    body = tiny_gguf.read_bytes()
    file_server.files[f"/{WEIGHTS}"] = body
    sha = hashlib.sha256(body).hexdigest()
    url = f"{file_server.base_url}/{WEIGHTS}"
    return url, sha, f"{WEIGHTS}\t{sha}\t{len(body)}\t{url}\n"


def remove_container(name: str) -> None:
    docker("rm", "-f", name, check=False)


# --- the EC2 run script, for real -----------------------------------------------------------


@pytest.fixture
def ec2_host(tmp_path: Path, standin_image: str, weights, tls_certificate):
    url, sha, manifest = weights
    port = free_port()
    host = Host(
        tmp_path,
        {
            "gpu": True,  # nvidia-smi (stub) says yes; the real --gpus all probe says no
            "cpu_image": standin_image,
            "gpu_image": standin_image,
            "log_group": "",
            "port": port,
            "cpu_models": {f"{DEFAULT_MODEL}.yaml": model_yaml(url, sha)},
            "gpu_models": {f"{DEFAULT_MODEL}.yaml": model_yaml(url, sha)},
            "weights_manifest": manifest,
            "threads": 1,
            "cpu_limit": 1.5,
            "memory_limit_mb": 1024,
            "extra_env": {**LOCKDOWN_ENV, **WEBUI_OFF_ENV},
        },
    )
    (host.stubs / "docker").unlink()  # the real Docker CLI and Engine from here on
    (host.stubs / "curl").unlink()  # the real curl (the instance id comes from its file)
    (host.mount / "models" / "tiny.Q4_K_M.gguf").unlink()
    remove_container("localai")
    yield host, port
    remove_container("localai")


def start(host: Host, tls_certificate) -> subprocess.Popen:
    env = {
        "PATH": f"{host.stubs}:{host.root}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LOCALAI_CONF": str(host.conf),
        "LOCALAI_INSTANCE_ID_FILE": str(host.instance_id_file),
        "STUB_LOG": str(host.log),
        "STUB_AWS_KEY": SENTINEL_KEY,
        "STUB_MOUNTED": "1",
        "STUB_NVIDIA_SMI": "ok",
        "CURL_CA_BUNDLE": str(tls_certificate[0]),
        "FETCH_RETRY_DELAY_S": "0",
        "LOCALAI_DOCKER_CONFIG": str(host.root / "etc/docker/daemon.json"),  # not the machine's
        **({"DOCKER_HOST": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ else {}),
    }
    return subprocess.Popen(
        ["bash", str(host.path("/usr/local/sbin/localai-run"))],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    return err


RECORDING_AWS = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def complete_lifecycle_hook(host: Host, service_result: str) -> list[list[str]]:
    """Run the fleet's localai-lifecycle as the warm-up's ExecStopPost would."""
    conf = host.conf.with_name("fleet.conf")
    conf.write_text(
        host.conf.read_text()
        + "LOCALAI_AUTOSCALING_GROUP=localai-prod\nLOCALAI_LIFECYCLE_HOOK=localai-prod-model-ready\n"
    )
    stubs = host.root.parent / "hook-stubs"
    stubs.mkdir(exist_ok=True)
    (stubs / "aws").write_text(RECORDING_AWS)
    (stubs / "aws").chmod(0o755)
    log = stubs / "calls.jsonl"
    script = compact_script(read_file("localai-lifecycle.sh"))  # as a fleet host gets it
    done = subprocess.run(
        ["bash", "-c", script, "localai-lifecycle", "complete"],
        env={"PATH": f"{stubs}:{os.environ['PATH']}", "LOCALAI_CONF": str(conf),
             "LOCALAI_INSTANCE_ID_FILE": str(host.instance_id_file), "HOOK_LOG": str(log),
             "SERVICE_RESULT": service_result},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_ec2_run_script_serves_on_a_real_engine_and_restarts_without_downloading(
    ec2_host, tls_certificate, file_server
) -> None:
    host, port = ec2_host
    base = f"http://127.0.0.1:{port}/v1"
    first = start(host, tls_certificate)
    try:
        wait_until_ready(base, SENTINEL_KEY, DEFAULT_MODEL, timeout_s=240, initial_delay_s=0.5)
    finally:
        if first.poll() is not None:
            pytest.fail(f"localai-run exited early:\n{first.stderr.read()}")
    inspect = json.loads(docker("inspect", "localai").stdout)[0]
    config, hostcfg = inspect["Config"], inspect["HostConfig"]
    assert hostcfg["NanoCpus"] == 1_500_000_000
    assert hostcfg["Memory"] == 1024 * 1024 * 1024
    assert hostcfg["CpuShares"] == 512
    assert hostcfg["Init"] is True
    assert hostcfg["SecurityOpt"] == ["no-new-privileges"]
    assert hostcfg["Binds"] == [f"{host.mount}/models:/build/models"]
    assert hostcfg["DeviceRequests"] in (None, []), "the --gpus all probe failed: CPU"
    env = set(config["Env"])
    assert f"LOCALAI_API_KEY={SENTINEL_KEY}" in env and "THREADS=1" in env
    assert {"LOCALAI_DISABLE_GALLERY_ENDPOINT=true", "LOCALAI_DISABLE_WEBUI=true"} <= env
    logs = docker("logs", "localai").stderr
    assert "standin: downloading" not in logs, "LocalAI found the weights present"
    assert [p for p, _r, _a in file_server.requests] == [f"/{WEIGHTS}"], "fetched once"
    err = stop(first)
    assert "WARNING: GPU not usable (a --gpus all container cannot use the GPU)" in err
    assert f"{WEIGHTS}: downloaded and verified" in err

    # Warm-up and restart: the same volume, the container replaced, nothing downloaded.
    file_server.requests.clear()
    second = start(host, tls_certificate)
    try:
        wait_until_ready(base, SENTINEL_KEY, DEFAULT_MODEL, timeout_s=240, initial_delay_s=0.5)
        warm = subprocess.run(
            ["bash", str(host.path("/usr/local/sbin/localai-warmup"))],
            env={"PATH": os.environ["PATH"], "LOCALAI_CONF": str(host.conf),
                 "LOCALAI_WARMUP_WAIT_S": "60"},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert warm.returncode == 0, warm.stderr
        assert "standin: downloading" not in docker("logs", "localai").stderr
        # A fleet host then completes its launch lifecycle hook (ExecStopPost of the
        # warm-up, with systemd's $SERVICE_RESULT): CONTINUE, against a recording `aws`.
        calls = complete_lifecycle_hook(host, "success" if warm.returncode == 0 else "exit-code")
        assert calls == [
            ["autoscaling", "complete-lifecycle-action", "--lifecycle-action-result",
             "CONTINUE", "--region", "eu-west-1", "--auto-scaling-group-name", "localai-prod",
             "--lifecycle-hook-name", "localai-prod-model-ready", "--instance-id",
             host.instance_id_file.read_text().strip()],
        ]  # fmt: skip
    finally:
        err = stop(second)
    assert f"{WEIGHTS}: present and verified" in err
    assert file_server.requests == []


# --- the local target's container start, for real ------------------------------------------


def local_container(
    name: str,
    image: str,
    files: dict[str, tuple[str, bool]],
    port: int,
    *env: str,
    network: str = "host",
) -> None:
    """Like pulumi-docker's Container: create with the target's entrypoint, upload, start."""
    remove_container(name)
    docker(
        "create", "--name", name, "--network", network, "-v", f"{name}-models:{MODELS_DIR}",
        "-e", f"API_KEY={SENTINEL_KEY}", "-e", f"ADDRESS=127.0.0.1:{port}",
        "-e", "CURL_CA_BUNDLE=/etc/localai/ca.pem", "-e", "FETCH_RETRY_DELAY_S=0",
        *[arg for pair in env for arg in ("-e", pair)],
        "--entrypoint", "/bin/bash", image, "-c", _ENTRYPOINT_SCRIPT, "localai-entrypoint",
    )  # fmt: skip
    staging = Path(f"/tmp/{name}-upload")
    for path, (content, executable) in files.items():
        local = staging / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content)
        local.chmod(0o755 if executable else 0o644)
    docker("cp", f"{staging}/.", f"{name}:/")
    docker("start", name)


@pytest.fixture
def local_files(weights, tls_certificate):
    url, sha, manifest = weights

    def files(manifest_text: str = manifest) -> dict[str, tuple[str, bool]]:
        return {
            f"{CONFIG_STAGING_DIR}/{DEFAULT_MODEL}.yaml": (model_yaml(url, sha), False),
            WEIGHTS_MANIFEST: (manifest_text, False),
            SYNC_CONFIGS: (CONFIG_SYNC.read_text(), True),
            FETCH_WEIGHTS: (FETCHER.read_text(), True),
            "/etc/localai/ca.pem": (tls_certificate[0].read_text(), False),
        }

    return files


def test_the_local_container_start_fetches_then_serves_and_restarts_without_downloading(
    standin_image, local_files, file_server
) -> None:
    name, port = "localai-engine-test", free_port()
    docker("volume", "rm", "-f", f"{name}-models", check=False)
    try:
        local_container(name, standin_image, local_files(), port)
        base = f"http://127.0.0.1:{port}/v1"
        wait_until_ready(base, SENTINEL_KEY, DEFAULT_MODEL, timeout_s=240, initial_delay_s=0.5,
                         docker_container=name)  # fmt: skip
        logs = docker("logs", name).stderr
        assert f"{WEIGHTS}: downloaded and verified" in logs
        assert "standin: downloading" not in logs
        docker("restart", name)
        file_server.requests.clear()
        wait_until_ready(base, SENTINEL_KEY, DEFAULT_MODEL, timeout_s=240, initial_delay_s=0.5)
        assert file_server.requests == [], "a restart downloads nothing"
        listed = docker("exec", name, "ls", "-A", MODELS_DIR).stdout.split()
        assert sorted(listed) == sorted([".localai", f"{DEFAULT_MODEL}.yaml", WEIGHTS])
    finally:
        remove_container(name)
        docker("volume", "rm", "-f", f"{name}-models", check=False)


def test_a_bad_download_stops_the_local_start_and_the_wait_says_why_in_seconds(
    standin_image, local_files, weights
) -> None:
    url, _sha, _manifest = weights
    name, port = "localai-engine-bad", free_port()
    docker("volume", "rm", "-f", f"{name}-models", check=False)
    wrong = f"{WEIGHTS}\t{'ab' * 32}\t0\t{url}\n"
    try:
        local_container(name, standin_image, local_files(wrong), port)
        started = time.monotonic()
        with pytest.raises(EndpointNotReady) as caught:
            wait_until_ready(f"http://127.0.0.1:{port}/v1", SENTINEL_KEY, DEFAULT_MODEL,
                             timeout_s=600, initial_delay_s=0.5, docker_container=name)  # fmt: skip
        assert time.monotonic() - started < 60
        assert f"localai-fetch: error: sha256 mismatch for {WEIGHTS}" in str(caught.value)
        listed = docker("run", "--rm", "-v", f"{name}-models:/m", "--entrypoint", "ls",
                        standin_image, "-A", "/m").stdout.split()  # fmt: skip
        assert WEIGHTS not in listed, "an unverified file is never in place"
    finally:
        remove_container(name)
        docker("volume", "rm", "-f", f"{name}-models", check=False)


def test_the_token_reaches_the_fetcher_and_not_localai(
    standin_image, local_files, file_server
) -> None:
    """LocalAI's templates can render its environment (sprig's env): the local target gave
    it HF_TOKEN (issue 18, item 25)."""
    name, port = "localai-engine-token", free_port()
    token = "hf_sentinel0123456789abcdef"
    docker("volume", "rm", "-f", f"{name}-models", check=False)
    try:
        local_container(name, standin_image, local_files(), port, f"HF_TOKEN={token}",
                        f"HF_ENDPOINT={file_server.base_url}")  # fmt: skip
        base = f"http://127.0.0.1:{port}/v1"
        wait_until_ready(base, SENTINEL_KEY, DEFAULT_MODEL, timeout_s=240, initial_delay_s=0.5,
                         docker_container=name)  # fmt: skip
        assert any(auth == f"Bearer {token}" for _path, _range, auth in file_server.requests)
        served = docker("exec", name, "cat", "/proc/1/environ").stdout
        assert "HF_TOKEN" not in served and token not in served
        assert f"API_KEY={SENTINEL_KEY}" in served, "the environment read is LocalAI's"
    finally:
        remove_container(name)
        docker("volume", "rm", "-f", f"{name}-models", check=False)


def test_with_its_image_and_weights_present_the_local_container_starts_with_no_network(
    standin_image, local_files, file_server
) -> None:
    """Issue 20, part 4: once the image and the weights are on this machine, the local
    target's container starts and serves with no network at all (``--network none``: a
    loopback and no route). The fetcher finds its verified files and asks for nothing;
    Docker creates the container from the present image without a pull (as pulumi-docker's
    RemoteImage does: kreuzwerker/terraform-provider-docker, resource_docker_image_funcs.go,
    findImage returns a local image before it would pull)."""
    name, port = "localai-engine-offline", free_port()
    docker("volume", "rm", "-f", f"{name}-models", check=False)
    try:
        local_container(name, standin_image, local_files(), port)  # online, once: the fetch
        wait_until_ready(f"http://127.0.0.1:{port}/v1", SENTINEL_KEY, DEFAULT_MODEL,
                         timeout_s=240, initial_delay_s=0.5, docker_container=name)  # fmt: skip
        file_server.requests.clear()
        local_container(name, standin_image, local_files(), port, network="none")
        routes = docker("exec", name, "cat", "/proc/net/route").stdout.splitlines()
        assert routes[1:] == [], "no route at all: nothing outside the container is reachable"
        deadline = time.monotonic() + 240
        while True:
            ready = docker("exec", name, "curl", "-fsS", "--max-time", "5",
                           f"http://127.0.0.1:{port}/readyz", check=False)  # fmt: skip
            if ready.returncode == 0:
                break
            assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true", (
                docker("logs", name).stderr[-3000:]
            )
            assert time.monotonic() < deadline, docker("logs", name).stderr[-3000:]
            time.sleep(1)
        request = json.dumps(
            {
                "model": DEFAULT_MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4,
            }
        )
        answer = docker("exec", name, "curl", "-fsS", "--max-time", "120",
                        "-H", f"Authorization: Bearer {SENTINEL_KEY}",
                        "-H", "Content-Type: application/json", "-d", request,
                        f"http://127.0.0.1:{port}/v1/chat/completions")  # fmt: skip
        assert json.loads(answer.stdout)["choices"][0]["message"]["role"] == "assistant"
        logs = docker("logs", name).stderr
        assert f"localai-fetch: {WEIGHTS}: present and verified" in logs
        assert "downloading" not in logs
        assert file_server.requests == [], "nothing was asked of the weights server"
    finally:
        remove_container(name)
        docker("volume", "rm", "-f", f"{name}-models", check=False)
