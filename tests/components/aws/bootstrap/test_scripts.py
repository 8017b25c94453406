"""The bootstrap's scripts and units: linted, verified, and really executed.

- every shell script passes shellcheck;
- the units, as rendered into the user data (with the mount drop-in), pass
  ``systemd-analyze verify`` in a throw-away root where every ExecStart= target exists;
- ``localai-run`` and ``localai-warmup``, exactly as cloud-init writes them, run against stub
  ``docker``/``aws``/``nvidia-smi`` (the cloud and the daemon are mocked, our code is not)
  and a real HTTP server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from components.aws.bootstrap.cloud_init import (
    CONF_PATH,
    EXTRA_ENV_PATH,
    METRICS_AGENT_SCRIPTS,
    METRICS_AGENT_UNITS,
    MODEL_SRC_DIR,
    RUN_DIR,
    SCRIPTS,
    SHARED_SCRIPTS,
    WEIGHTS_MANIFEST_PATH,
    render_user_data,
)
from tests.components.aws.bootstrap.cloud_init_support import (
    DEFAULT_MODEL,
    FILES_DIR,
    KEY_PARAMETER,
    REPO_ROOT,
    SENTINEL_KEY,
    TINY_WEIGHTS,
    TINY_WEIGHTS_FILE,
    install,
    make_spec,
    model_set,
    skip_or_fail,
    write_files,
)
from tests.support.pinned_tools import pinned_tool
from tests.support.ports import free_port

SHELL_SCRIPTS = [*sorted(FILES_DIR.glob("*.sh")), REPO_ROOT / "scripts/fetch-cloud-init-schema.sh"]
UNIT_NAMES = (
    "localai.service",
    "localai-warmup.service",
    "localai-key-watch.service",
    "localai-key-watch.timer",
    "localai-gpu-retry.service",
    "localai-gpu-retry.timer",
)
# Binaries the units run that the OS provides (docker.io / the DLAMI, util-linux).
OS_BINARIES = {"/usr/bin/docker", "/usr/bin/mountpoint"}
INSTANCE_ID = "i-0123456789abcdef0"


# --- shellcheck -------------------------------------------------------------------------


def shellcheck_binary() -> str:
    return pinned_tool("shellcheck")


def shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shellcheck_binary(), "-x", "--severity=style", "--shell=bash", str(path)],
        capture_output=True,
        text=True,
        cwd=path.parent,
    )


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script: Path):
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"


def test_shellcheck_catches_a_bad_script(tmp_path: Path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nfor f in $(ls $1); do echo $f; done\n")
    result = shellcheck(bad)
    assert result.returncode != 0
    assert "SC2045" in result.stdout or "SC2086" in result.stdout


# --- systemd-analyze verify ----------------------------------------------------------------


def host_unit_dir() -> Path:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "multi-user.target").exists():
            return candidate
    skip_or_fail("no systemd unit directory with multi-user.target on this machine")
    raise AssertionError("unreachable")


def exec_paths(unit_text: str) -> list[str]:
    """Executables of every Exec*= line (prefixes like '-' stripped)."""
    paths = []
    for line in unit_text.splitlines():
        match = re.match(r"Exec\w+=(\S+)", line)
        if match:
            paths.append(match.group(1).lstrip("-@:+!|"))
    return paths


def build_root(tmp_path: Path) -> Path:
    """A throw-away root: host units, our rendered files, stubs for OS binaries."""
    root = tmp_path / "root"
    shutil.copytree(host_unit_dir(), root / "usr/lib/systemd/system", symlinks=True)
    install(render_user_data(make_spec(gpu=True)), root)
    for binary in OS_BINARIES:
        stub = root / binary.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    # docker.service comes with docker.io (plain Ubuntu) or preinstalled (DLAMI).
    (root / "etc/systemd/system/docker.service").write_text(
        "[Unit]\nDescription=Docker (stub)\n[Service]\nExecStart=/usr/bin/docker\n"
    )
    return root


def verify_problems(root: Path) -> list[str]:
    systemd_analyze = shutil.which("systemd-analyze")
    if not systemd_analyze:
        skip_or_fail("systemd-analyze not found (apt-get install systemd)")
    result = subprocess.run(
        [systemd_analyze, "verify", f"--root={root}", "--man=no", "--generators=no", *UNIT_NAMES],
        capture_output=True,
        text=True,
    )
    # Unknown keys and bad values are only warnings (exit status 0): count every line
    # about our units as a problem, not only the exit status.
    lines = (result.stdout + result.stderr).splitlines()
    problems = [line for line in lines if "localai" in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}: {lines}")
    return problems


def test_units_pass_systemd_analyze_verify(tmp_path: Path):
    assert verify_problems(build_root(tmp_path)) == []


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


UNIT_DIR = "etc/systemd/system"
BREAKAGES = {
    "unknown key": lambda root: edit(
        root / UNIT_DIR / "localai.service", "Restart=always", "Restart=always\nRestartSecs=5"
    ),
    "bad value": lambda root: edit(
        root / UNIT_DIR / "localai.service", "Type=simple", "Type=simplest"
    ),
    "unknown section": lambda root: edit(
        root / UNIT_DIR / "localai-warmup.service", "[Service]", "[Servce]"
    ),
    "bad timer value": lambda root: edit(
        root / UNIT_DIR / "localai-key-watch.timer", "OnUnitActiveSec=30s", "OnUnitActiveSec=soon"
    ),
    "missing ExecStart binary": lambda root: (root / "usr/local/sbin/localai-warmup").unlink(),
    "missing ExecStartPre binary": lambda root: (
        root / "usr/local/sbin/localai-prepare-volume"
    ).unlink(),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_verify_catches_a_broken_unit(tmp_path: Path, breakage: str):
    root = build_root(tmp_path)
    BREAKAGES[breakage](root)
    assert verify_problems(root) != []


def test_every_exec_binary_is_installed_by_the_user_data():
    document = render_user_data(make_spec(gpu=True))
    entries = write_files(document)
    installed = {path for path, entry in entries.items() if entry.get("permissions") == "0755"}
    assert installed == set(SCRIPTS) | set(SHARED_SCRIPTS) | set(METRICS_AGENT_SCRIPTS)
    for unit in [*UNIT_NAMES, *METRICS_AGENT_UNITS.values()]:
        for path in exec_paths((FILES_DIR / unit).read_text()):
            assert path in installed | OS_BINARIES, f"{unit} runs {path}, which nothing installs"
    assert "/usr/local/sbin/localai-run" in exec_paths((FILES_DIR / "localai.service").read_text())


def test_service_unit_guards_the_volume_and_restarts():
    text = (FILES_DIR / "localai.service").read_text()
    assert not re.search(r"^Requires", text, re.M), "dependency failures are never retried"
    assert re.search(r"^After=.*docker\.service", text, re.M)
    assert re.search(r"^StartLimitIntervalSec=0$", text, re.M), "retry forever"
    assert "ExecStartPre=/usr/bin/mountpoint -q ${LOCALAI_MOUNT_POINT}" in text
    assert "Restart=always" in text
    assert "EnvironmentFile=/etc/localai/localai.conf" in text
    warmup = (FILES_DIR / "localai-warmup.service").read_text()
    assert "After=localai.service" in warmup
    assert "Type=oneshot" in warmup
    timeout = re.search(r"^TimeoutStartSec=(\d+)h$", warmup, re.M)
    assert timeout and int(timeout.group(1)) > 2, "warm-up must outlive its 2 h port wait"


# --- localai-run, executed against stubs ---------------------------------------------------

STUB_DOCKER = r"""
import json, os, sys
argv = sys.argv[1:]
record = {"cmd": "docker", "argv": argv}
rc, out = 0, ""
if argv[:1] == ["info"]:
    rc = int(os.environ.get("STUB_DOCKER_INFO_RC", "0"))
    if "{{.DockerRootDir}}" in argv:
        out = os.environ.get("STUB_DOCKER_ROOT", "/var/lib/docker")
    else:
        out = os.environ.get("STUB_DOCKER_RUNTIMES", '{"io.containerd.runc.v2":{},"runc":{}}')
elif argv[:1] == ["pull"]:
    rc = 1 if argv[-1] in os.environ.get("STUB_DOCKER_PULL_FAIL", "").split(",") else 0
elif argv[:1] == ["login"]:
    record["stdin"] = sys.stdin.read()
    rc = 0 if record["stdin"] else 1  # docker login refuses an empty password
elif argv[:2] == ["image", "inspect"]:
    rc = 0 if argv[-1] in os.environ.get("STUB_DOCKER_IMAGES", "").split(",") else 1
elif argv[:1] == ["run"] and "--entrypoint" in argv:
    rc = int(os.environ.get("STUB_DOCKER_GPU_PROBE_RC", "0"))
elif argv[:1] == ["run"]:
    files = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--env-file"]
    record["env_files"] = {
        path: {"mode": os.stat(path).st_mode & 0o777, "content": open(path).read()}
        for path in files
    }
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(record) + "\n")
if out:
    print(out)
sys.exit(rc)
"""

STUB_AWS = r"""
import json, os, sys
argv = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"cmd": "aws", "argv": argv}) + "\n")
if argv[:2] == ["ecr", "get-login-password"] and not os.environ.get("STUB_AWS_ECR_FAIL"):
    print(os.environ.get("STUB_AWS_ECR_TOKEN", "ecr-token-for-the-role"))
    sys.exit(0)
if os.environ.get("STUB_AWS_FAIL") or argv[:2] != ["ssm", "get-parameter"]:
    print("An error occurred (AccessDeniedException)", file=sys.stderr)
    sys.exit(254)
query = argv[argv.index("--query") + 1]
version = os.environ.get("STUB_AWS_VERSION", "1")
if query == "Parameter.Version":
    print(version)
elif query == "Parameter.Value":
    print(os.environ.get("STUB_AWS_TOKEN", "hf_stub_token"))
elif query == "Parameter.[Version,Value]":
    print(f"{version}\t{os.environ['STUB_AWS_KEY']}")
else:
    print(f"unexpected --query {query}", file=sys.stderr)
    sys.exit(252)
"""

STUB_SYSTEMCTL = r"""
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"cmd": "systemctl", "argv": sys.argv[1:]}) + "\n")
"""

STUB_NVIDIA_SMI = r"""
import os, sys
if os.environ.get("STUB_NVIDIA_SMI") == "ok":
    print("GPU 0: NVIDIA L4 (UUID: GPU-5d1e2b9c-0000-0000-0000-000000000000)")
    sys.exit(0)
print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
sys.exit(9)
"""

STUB_MOUNTPOINT = r"""
import os, sys
sys.exit(0 if os.environ.get("STUB_MOUNTED") == "1" else 1)
"""

STUB_CURL_OFFLINE = r"""
import sys
sys.exit(7)  # no instance metadata service here
"""


def write_stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


class Host:
    """A fake instance root with the rendered user data installed and stubbed tools."""

    def __init__(self, tmp_path: Path, spec_kwargs: dict[str, object]):
        self.mount = tmp_path / "weights"
        self.mount.mkdir()
        self.spec = make_spec(mount_point=str(self.mount), **spec_kwargs)
        self.root = tmp_path / "root"
        install(render_user_data(self.spec), self.root)
        self.conf = self.root / CONF_PATH.lstrip("/")
        text = self.conf.read_text()
        for key, path in {
            "LOCALAI_MODEL_SRC_DIR": MODEL_SRC_DIR,
            "LOCALAI_RUN_DIR": RUN_DIR,
            "LOCALAI_EXTRA_ENV_FILE": EXTRA_ENV_PATH,
            "LOCALAI_WEIGHTS_MANIFEST": WEIGHTS_MANIFEST_PATH,
        }.items():
            text = text.replace(f"\n{key}={path}\n", f"\n{key}={self.path(path)}\n")
        self.conf.write_text(text)
        self.run_dir = self.path(RUN_DIR)
        (self.mount / "models").mkdir()
        (self.mount / "models" / TINY_WEIGHTS_FILE).write_bytes(TINY_WEIGHTS)
        self.stubs = tmp_path / "stubs"
        self.stubs.mkdir()
        for name, body in {
            "docker": STUB_DOCKER,
            "aws": STUB_AWS,
            "nvidia-smi": STUB_NVIDIA_SMI,
            "mountpoint": STUB_MOUNTPOINT,
            "curl": STUB_CURL_OFFLINE,
            "systemctl": STUB_SYSTEMCTL,
        }.items():
            write_stub(self.stubs, name, body)
        self.log = tmp_path / "calls.jsonl"
        self.instance_id_file = tmp_path / "instance-id"
        self.instance_id_file.write_text(INSTANCE_ID + "\n")

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        self.log.write_text("")
        environment = {
            "PATH": f"{self.stubs}:{self.root}/usr/local/sbin:/usr/local/sbin:/usr/local/bin:"
            "/usr/sbin:/usr/bin:/sbin:/bin",
            "FETCH_ATTEMPTS": "1",
            "LOCALAI_DOCKER_CONFIG": str(self.root / "etc/docker/daemon.json"),
            "FETCH_RETRY_DELAY_S": "0",
            "LOCALAI_CONF": str(self.conf),
            "LOCALAI_INSTANCE_ID_FILE": str(self.instance_id_file),
            "LOCALAI_SSM_ATTEMPTS": "2",
            "LOCALAI_PULL_ATTEMPTS": "1",
            "STUB_LOG": str(self.log),
            "STUB_AWS_KEY": SENTINEL_KEY,
            "STUB_MOUNTED": "1",
            **env,
        }
        script = self.path("/usr/local/sbin/localai-run")
        return subprocess.run(
            ["bash", str(script), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def calls(self, cmd: str | None = None) -> list[dict]:
        records = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in records if cmd is None or r["cmd"] == cmd]

    def container_run(self) -> dict:
        runs = [
            c
            for c in self.calls("docker")
            if c["argv"][0] == "run" and "--entrypoint" not in c["argv"]
        ]
        assert len(runs) == 1, self.calls()
        return runs[0]


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


GPU_OK = {
    "STUB_NVIDIA_SMI": "ok",
    "STUB_DOCKER_RUNTIMES": '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}',
}


def test_run_on_cpu_host_starts_the_cpu_container(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run()
    assert result.returncode == 0, result.stderr
    argv = host.container_run()["argv"]
    assert argv[:4] == ["run", "--rm", "--name", "localai"]
    assert argv[-1] == host.spec.cpu_image
    assert "--gpus" not in argv
    assert option_values(argv, "-p") == ["8080:8080"]
    assert option_values(argv, "-v") == [f"{host.mount}/models:/build/models"]
    assert option_values(argv, "--cpus") == ["3.5"]
    assert option_values(argv, "--cpu-shares") == ["512"]  # the OS wins under contention
    assert option_values(argv, "--memory") == ["7168m"]
    assert option_values(argv, "-e") == ["THREADS=4"]  # parallel_requests 1: no slots
    assert option_values(argv, "--pull") == ["never"]
    log_opts = option_values(argv, "--log-opt")
    assert option_values(argv, "--log-driver") == ["awslogs"]
    assert {
        "awslogs-region=eu-west-1",
        "awslogs-group=/localai/dev",
        f"awslogs-stream={INSTANCE_ID}",
        "cache-disabled=false",
        "cache-max-size=20m",
        "cache-max-file=5",
    } <= set(log_opts)
    # The image was pulled first, and a stale container removed just before the run.
    docker = [c["argv"] for c in host.calls("docker")]
    assert docker.index(["pull", "--quiet", host.spec.cpu_image]) < docker.index(
        ["rm", "-f", "localai"]
    )
    assert docker.index(["rm", "-f", "localai"]) == len(docker) - 2
    # No GPU detection at all on a CPU instance type.
    assert not any("--entrypoint" in c["argv"] for c in host.calls("docker"))
    models = host.mount / "models"
    assert (models / "phi-3.5-mini-instruct.yaml").read_text() == host.spec.cpu_models[
        "phi-3.5-mini-instruct.yaml"
    ]


def test_run_keeps_the_key_out_of_argv_and_logs(tmp_path: Path):
    host = Host(tmp_path, {"gpu": True})
    result = host.run(**GPU_OK)
    assert result.returncode == 0, result.stderr
    for call in host.calls():
        assert SENTINEL_KEY not in json.dumps(call["argv"]), call
    assert SENTINEL_KEY not in result.stdout + result.stderr
    (aws,) = host.calls("aws")
    assert {"--with-decryption", KEY_PARAMETER, "eu-west-1"} <= set(aws["argv"])
    env_files = host.container_run()["env_files"]
    key_file = str(host.run_dir / "api-key.env")
    assert env_files[key_file] == {"mode": 0o600, "content": f"LOCALAI_API_KEY={SENTINEL_KEY}\n"}
    assert "SINGLE_ACTIVE_BACKEND=true\n" in env_files[str(host.path(EXTRA_ENV_PATH))]["content"]
    assert stat.S_IMODE(host.run_dir.stat().st_mode) == 0o700
    header = host.run_dir / "auth.header"
    assert stat.S_IMODE(header.stat().st_mode) == 0o600
    assert header.read_text() == f"Authorization: Bearer {SENTINEL_KEY}\n"


def test_run_on_working_gpu_uses_cuda_image_and_gpu_models(tmp_path: Path):
    host = Host(tmp_path, {"gpu": True})
    result = host.run(**GPU_OK)
    assert result.returncode == 0, result.stderr
    argv = host.container_run()["argv"]
    assert argv[-1] == host.spec.gpu_image
    assert option_values(argv, "--gpus") == ["all"]
    assert {"PARALLEL_REQUESTS=true", "LLAMACPP_PARALLEL=4"} <= set(option_values(argv, "-e"))
    probe = [c["argv"] for c in host.calls("docker") if "--entrypoint" in c["argv"]]
    assert probe and option_values(probe[0], "--gpus") == ["all"]
    yaml_text = (host.mount / "models" / "phi-3.5-mini-instruct.yaml").read_text()
    assert yaml_text == host.spec.gpu_models["phi-3.5-mini-instruct.yaml"]
    assert "accelerator: gpu" in result.stderr


GPU_FAILURES = {
    "nvidia-smi fails": ({"STUB_NVIDIA_SMI": "fail"}, "nvidia-smi finds no GPU"),
    "probe container fails": ({**GPU_OK, "STUB_DOCKER_GPU_PROBE_RC": "125"}, "cannot use the GPU"),
    "cuda image unavailable": (
        {**GPU_OK, "STUB_DOCKER_PULL_FAIL": "localai/localai:v2.24.0-cublas-cuda12"},
        "cannot pull localai/localai:v2.24.0-cublas-cuda12",
    ),
}


@pytest.mark.parametrize("failure", sorted(GPU_FAILURES))
def test_run_falls_back_to_cpu_when_the_gpu_is_not_usable(tmp_path: Path, failure: str):
    env, message = GPU_FAILURES[failure]
    host = Host(tmp_path, {"gpu": True})
    result = host.run(**env)
    assert result.returncode == 0, result.stderr
    assert message in result.stderr
    assert "falling back to CPU" in result.stderr
    argv = host.container_run()["argv"]
    assert argv[-1] == host.spec.cpu_image
    assert "--gpus" not in argv
    yaml_text = (host.mount / "models" / "phi-3.5-mini-instruct.yaml").read_text()
    assert yaml_text == host.spec.cpu_models["phi-3.5-mini-instruct.yaml"]


def test_switching_model_sets_removes_only_configs_we_installed(tmp_path: Path):
    two = ("phi-3.5-mini-instruct", "llama-3.1-8b-instruct")
    host = Host(tmp_path, {"gpu": True, "gpu_models": model_set(two, 99)})
    assert host.run(**GPU_OK).returncode == 0
    models = host.mount / "models"
    assert {p.name for p in models.glob("*.yaml")} == {f"{name}.yaml" for name in two}
    (models / "my-own.yaml").write_text("name: mine\n")
    result = host.run(STUB_NVIDIA_SMI="fail")  # the GPU is gone: CPU set (phi only)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in models.glob("*.yaml")} == {"phi-3.5-mini-instruct.yaml", "my-own.yaml"}
    assert "removed stale model config llama-3.1-8b-instruct.yaml" in result.stderr


def test_run_refuses_to_start_without_the_weights_volume(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run(STUB_MOUNTED="0")
    assert result.returncode != 0
    assert "is not a mount point" in result.stderr
    assert host.calls() == []
    assert not list((host.mount / "models").glob("*.yaml")), "nothing written to the root disk"


def test_run_fails_clearly_when_the_key_cannot_be_read(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run(STUB_AWS_FAIL="1", LOCALAI_SSM_ATTEMPTS="1")
    assert result.returncode != 0
    assert f"no API key from SSM parameter {KEY_PARAMETER}" in result.stderr
    assert not any(c["argv"][0] == "run" for c in host.calls("docker"))


def test_run_without_log_group_or_instance_id_uses_local_logs(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False, "log_group": ""})
    host.instance_id_file.unlink()
    result = host.run()
    assert result.returncode == 0, result.stderr
    argv = host.container_run()["argv"]
    assert option_values(argv, "--log-driver") == ["local"]
    assert not any(opt.startswith("awslogs") for opt in option_values(argv, "--log-opt"))


# --- localai-warmup, executed against a real HTTP server -----------------------------------


class FakeLocalAI(BaseHTTPRequestHandler):
    chat_statuses: ClassVar[list[int]] = []
    chat_bodies: ClassVar[list[bytes]] = []
    requests: ClassVar[list[dict]] = []

    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        status = type(self).chat_statuses.pop(0) if type(self).chat_statuses else 200
        payload = b'{"choices":[{"message":{"role":"assistant","content":"Hi"}}]}'
        if type(self).chat_bodies:
            payload = type(self).chat_bodies.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


STUB_CURL_RECORDING = r"""
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"cmd": "curl", "argv": sys.argv[1:]}) + "\n")
os.execv(os.environ["REAL_CURL"], ["curl", *sys.argv[1:]])
"""


@pytest.fixture
def warmup_host(tmp_path: Path):
    real_curl = shutil.which("curl")
    if not real_curl:
        skip_or_fail("curl not found")
    port = free_port()
    host = Host(tmp_path, {"gpu": False, "port": port})
    write_stub(host.stubs, "curl", STUB_CURL_RECORDING)
    host.run_dir.mkdir(mode=0o700, parents=True)
    header = host.run_dir / "auth.header"
    header.write_text(f"Authorization: Bearer {SENTINEL_KEY}\n")
    header.chmod(0o600)
    FakeLocalAI.requests = []
    FakeLocalAI.chat_statuses = []
    FakeLocalAI.chat_bodies = []
    servers: list[ThreadingHTTPServer] = []

    def open_port():
        server = ThreadingHTTPServer(("127.0.0.1", port), FakeLocalAI)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def warmup(delay_s: float | None, **env: str):
        timer = threading.Timer(delay_s, open_port) if delay_s is not None else None
        if timer:
            timer.start()
        host.log.write_text("")
        environment = {
            "PATH": f"{host.stubs}:/usr/sbin:/usr/bin:/sbin:/bin",
            "LOCALAI_CONF": str(host.conf),
            "LOCALAI_WARMUP_POLL_S": "0.2",
            "LOCALAI_WARMUP_WAIT_S": "30",
            "STUB_LOG": str(host.log),
            "REAL_CURL": real_curl,
            **env,
        }
        started = time.monotonic()
        try:
            result = subprocess.run(
                ["bash", str(host.path("/usr/local/sbin/localai-warmup"))],
                env=environment,
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            if timer:
                timer.cancel()
        return result, time.monotonic() - started

    try:
        yield host, warmup
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_warmup_waits_for_the_port_then_loads_the_default_model(warmup_host):
    host, warmup = warmup_host
    result, elapsed = warmup(delay_s=2.0)
    assert result.returncode == 0, result.stderr
    assert elapsed >= 2.0
    (request,) = FakeLocalAI.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {SENTINEL_KEY}"
    body = json.loads(request["body"])
    assert body["model"] == DEFAULT_MODEL
    assert body["max_tokens"] == 1
    assert f"model '{DEFAULT_MODEL}' answered" in result.stderr
    curl_argv = [c["argv"] for c in host.calls("curl")]
    assert any(f"@{host.run_dir}/auth.header" in argv for argv in curl_argv)
    assert SENTINEL_KEY not in json.dumps(curl_argv) + result.stdout + result.stderr


def test_warmup_retries_a_failed_load(warmup_host):
    _, warmup = warmup_host
    FakeLocalAI.chat_statuses = [500]
    result, _ = warmup(delay_s=0.0)
    assert result.returncode == 0, result.stderr
    assert len(FakeLocalAI.requests) == 2
    assert "HTTP 500" in result.stderr


STUB_DOCKER_EXEC = r"""
import os, subprocess, sys
# `docker exec localai sh -c SCRIPT`: SCRIPT runs here, with the container's /tmp and its
# PID 1's stderr (the log stream Docker ships) as directories of the test.
assert sys.argv[1:4] == ["exec", "localai", "sh"], sys.argv
script = sys.argv[5].replace("/tmp/", os.environ["CONTAINER_TMP"] + "/")
script = script.replace("/proc/1/fd/2", os.environ["CONTAINER_LOG"])
sys.exit(subprocess.run(["sh", "-c", script]).returncode)
"""


def test_a_failed_load_puts_the_backends_own_words_in_the_journal_and_the_log(
    warmup_host, tmp_path: Path
):
    """LocalAI v2.24.0 logs the backend's stderr only at debug level: a model that failed to
    load left no cause anywhere (item 33). It is read from the process manager's state dir."""
    host, warmup = warmup_host
    container_tmp = tmp_path / "container-tmp"
    old, new = container_tmp / "go-processmanager111", container_tmp / "go-processmanager222"
    for directory in (old, new):
        directory.mkdir(parents=True)
    (old / "stderr").write_text("an earlier model's output\n")
    (new / "stderr").write_text(
        "llama_model_load: loading model\n"
        "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4608 MiB on device 0: "
        "cudaMalloc failed: out of memory\n"
    )
    os.utime(old, (1, 1))
    write_stub(host.stubs, "docker", STUB_DOCKER_EXEC)
    container_log = tmp_path / "container.log"
    FakeLocalAI.chat_statuses = [500]
    FakeLocalAI.chat_bodies = [
        b'{"error":{"code":500,"message":"could not load model: rpc error: code = '
        b'Unavailable desc = error reading from server: EOF","type":""}}'
    ]
    result, _ = warmup(
        delay_s=0.0, CONTAINER_TMP=str(container_tmp), CONTAINER_LOG=str(container_log)
    )
    assert result.returncode == 0, result.stderr  # the second attempt loads it
    assert "the model's backend said, last:" in result.stderr
    assert "localai-warmup: localai-backend: ggml_backend_cuda_buffer_type_alloc_buffer" in (
        result.stderr
    )
    assert "an earlier model's output" not in result.stderr, "only the newest backend"
    assert "cudaMalloc failed: out of memory" in container_log.read_text()


def test_warmup_gives_up_clearly_when_localai_never_listens(warmup_host):
    _, warmup = warmup_host
    result, elapsed = warmup(delay_s=None, LOCALAI_WARMUP_WAIT_S="2")
    assert result.returncode != 0
    assert "did not open http://127.0.0.1:" in result.stderr
    assert elapsed < 15
    assert FakeLocalAI.requests == []


# --- day two: GPU decided by the probe, pulls, retries, key rotation (issue 9) -------------


def test_gpu_is_used_without_an_nvidia_entry_in_docker_info(tmp_path: Path):
    """--gpus all works through the NVIDIA container toolkit's hook; docker info need not
    list an nvidia runtime (defect 9). The probe container decides."""
    host = Host(tmp_path, {"gpu": True})
    result = host.run(STUB_NVIDIA_SMI="ok", STUB_DOCKER_RUNTIMES='{"runc":{}}')
    assert result.returncode == 0, result.stderr
    assert host.container_run()["argv"][-1] == host.spec.gpu_image
    assert (host.run_dir / "accelerator").read_text() == "gpu\n"


def test_an_image_already_present_is_not_pulled_again(tmp_path: Path):
    """A crash loop pulled on every restart (defect 9): present images are used as is."""
    host = Host(tmp_path, {"gpu": False})
    result = host.run(STUB_DOCKER_IMAGES=host.spec.cpu_image)
    assert result.returncode == 0, result.stderr
    assert not [c for c in host.calls("docker") if c["argv"][0] == "pull"]
    assert host.container_run()["argv"][-1] == host.spec.cpu_image


def test_a_missing_image_that_cannot_be_pulled_fails_the_start(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run(STUB_DOCKER_PULL_FAIL=host.spec.cpu_image)
    assert result.returncode != 0
    assert f"cannot pull {host.spec.cpu_image}" in result.stderr
    assert not [c for c in host.calls("docker") if c["argv"][0] == "run"]


def test_a_cpu_fallback_is_recorded_and_logged_loudly(tmp_path: Path):
    host = Host(tmp_path, {"gpu": True})
    result = host.run(STUB_NVIDIA_SMI="fail")
    assert result.returncode == 0, result.stderr
    assert "WARNING: GPU not usable (nvidia-smi finds no GPU): falling back to CPU" in result.stderr
    assert (host.run_dir / "accelerator").read_text() == "cpu-fallback: nvidia-smi finds no GPU\n"


def restarts(host: Host) -> list[list[str]]:
    return [c["argv"] for c in host.calls("systemctl") if c["argv"][:1] == ["restart"]]


def test_retry_gpu_moves_a_fallen_back_host_onto_the_gpu(tmp_path: Path):
    host = Host(tmp_path, {"gpu": True})
    assert host.run(STUB_NVIDIA_SMI="fail").returncode == 0  # serving on CPU
    still = host.run("retry-gpu", STUB_NVIDIA_SMI="fail")
    assert still.returncode == 0
    assert (
        "WARNING: serving on CPU although this host has a GPU (nvidia-smi finds no GPU)"
        in still.stderr
    )
    assert "WARNING: still serving on CPU: nvidia-smi finds no GPU" in still.stderr
    assert restarts(host) == []
    works = host.run("retry-gpu", **GPU_OK)
    assert works.returncode == 0, works.stderr
    assert restarts(host) == [["restart", "--no-block", "localai.service"]]


@pytest.mark.parametrize("gpu", [True, False])
def test_retry_gpu_does_nothing_on_the_gpu_or_on_cpu_types(tmp_path: Path, gpu: bool):
    host = Host(tmp_path, {"gpu": gpu})
    assert host.run(**GPU_OK).returncode == 0
    result = host.run("retry-gpu", **GPU_OK)
    assert result.returncode == 0 and restarts(host) == []
    assert not [c for c in host.calls("docker") if "--entrypoint" in c["argv"]]


def test_the_loaded_key_version_is_recorded(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run(STUB_AWS_VERSION="7")
    assert result.returncode == 0, result.stderr
    assert (host.run_dir / "api-key.version").read_text() == "7\n"
    assert "API key version 7 read from SSM parameter" in result.stderr


def test_watch_key_restarts_localai_when_the_key_changes(tmp_path: Path):
    """`pulumi config set --secret localai:apiKey NEW && pulumi up` changed only the SSM
    parameter; the server kept the old key (defect 6). The watcher compares versions."""
    host = Host(tmp_path, {"gpu": False})
    assert host.run("watch-key").returncode == 0
    assert restarts(host) == [], "nothing loaded yet: nothing to compare"
    assert host.run(STUB_AWS_VERSION="1").returncode == 0
    same = host.run("watch-key", STUB_AWS_VERSION="1")
    assert same.returncode == 0 and restarts(host) == []
    rotated = host.run("watch-key", STUB_AWS_VERSION="2")
    assert rotated.returncode == 0, rotated.stderr
    assert "the API key changed (version 1 -> 2)" in rotated.stderr
    assert restarts(host) == [["restart", "--no-block", "localai.service"]]
    (aws,) = host.calls("aws")
    assert "--with-decryption" not in aws["argv"], "the watcher never reads the key itself"


STUB_SLEEP = r"""
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"cmd": "sleep", "argv": sys.argv[1:]}) + "\n")
"""


@pytest.mark.parametrize("spread", [0, 7])
def test_watch_key_spreads_fleet_restarts_over_a_random_delay(tmp_path: Path, spread: int):
    """Every fleet host restarted LocalAI within the same 30 s tick after a rotation, and
    ELB health checks could replace the whole fleet at once (issue 18, item 5)."""
    host = Host(tmp_path, {"gpu": False})
    write_stub(host.stubs, "sleep", STUB_SLEEP)
    host.conf.write_text(host.conf.read_text() + f"LOCALAI_KEY_RESTART_SPREAD_S={spread}\n")
    assert host.run(STUB_AWS_VERSION="1").returncode == 0
    delays = set()
    for _ in range(12):
        rotated = host.run("watch-key", STUB_AWS_VERSION="2")
        assert rotated.returncode == 0, rotated.stderr
        (sleep,) = host.calls("sleep")
        delays.add(int(sleep["argv"][0]))
        assert restarts(host) == [["restart", "--no-block", "localai.service"]]
    assert delays <= set(range(spread + 1))
    if spread:
        assert len(delays) > 1, "random, not one fixed delay"
    else:
        assert delays == {0}


def test_fleet_hosts_spread_key_restarts_and_a_single_vm_does_not(tmp_path: Path) -> None:
    from components.aws.bootstrap.cloud_init import FLEET_DIR
    from tests.components.aws.bootstrap.cloud_init_support import fleet_spec

    install(render_user_data(fleet_spec()), tmp_path / "fleet")
    base = (tmp_path / "fleet" / FLEET_DIR.lstrip("/") / "base.conf").read_text()
    assert "\nLOCALAI_KEY_RESTART_SPREAD_S=120\n" in base
    install(render_user_data(make_spec()), tmp_path / "vm")
    assert "KEY_RESTART_SPREAD" not in (tmp_path / "vm" / CONF_PATH.lstrip("/")).read_text()


def test_watch_key_waits_quietly_when_ssm_is_unreachable(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    assert host.run().returncode == 0
    result = host.run("watch-key", STUB_AWS_FAIL="1")
    assert result.returncode == 0
    assert "will try again" in result.stderr and restarts(host) == []


STUB_APT_GET = r"""
import json, os, shutil, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"cmd": "apt-get", "argv": sys.argv[1:]}) + "\n")
if sys.argv[1:2] == ["install"]:
    shutil.copy(os.environ["STUB_DOCKER_SOURCE"], os.path.join(os.environ["STUB_BIN"], "docker"))
"""


def system_path_without(tmp_path: Path, tool: str) -> str:
    """A directory of links to the system's commands, all but ``tool`` (docker.io may be
    installed here, as on CI)."""
    links = tmp_path / f"system-without-{tool}"
    links.mkdir()
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for entry in Path(directory).iterdir():
            link = links / entry.name
            if entry.name != tool and not link.exists():
                link.symlink_to(entry)
    return str(links)


def test_a_host_whose_docker_install_failed_installs_it_at_start(tmp_path: Path):
    """cloud-init's apt run can fail (the Elastic IP swaps the address mid-install); the
    unit then installed nothing and, with Requires=docker.service, never ran (defect 8)."""
    host = Host(tmp_path, {"gpu": False})
    docker_source = tmp_path / "docker-stub"
    (host.stubs / "docker").rename(docker_source)
    write_stub(host.stubs, "apt-get", STUB_APT_GET)
    result = host.run(
        PATH=f"{host.stubs}:{host.root}/usr/local/sbin:{system_path_without(tmp_path, 'docker')}",
        STUB_BIN=str(host.stubs),
        STUB_DOCKER_SOURCE=str(docker_source),
    )
    assert result.returncode == 0, result.stderr
    assert "docker is missing: installing docker.io" in result.stderr
    apt = [c["argv"] for c in host.calls("apt-get")]
    assert ["install", "-y", "-q", "docker.io"] in apt
    started = [c["argv"] for c in host.calls("systemctl") if c["argv"][1:] == ["docker.service"]]
    assert started and started[0][0] in ("start", "restart"), "the unit starts Docker itself"
    assert host.container_run()["argv"][-1] == host.spec.cpu_image


def test_a_docker_daemon_that_does_not_answer_fails_the_start_for_a_retry(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run(STUB_DOCKER_INFO_RC="1", LOCALAI_DOCKER_WAIT_S="2")
    assert result.returncode != 0
    assert "the Docker daemon did not answer within 2s" in result.stderr
    assert not [c for c in host.calls("docker") if c["argv"][0] == "run"]
    assert host.run().returncode == 0, "the next start (Restart=always) goes on"


def test_an_unknown_subcommand_is_refused(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run("status")
    assert (
        result.returncode != 0 and "usage: localai-run [serve|watch-key|retry-gpu]" in result.stderr
    )


def test_localai_does_not_start_until_the_weights_are_present_and_verified(tmp_path: Path):
    """The fetcher runs before the container (LocalAI's own downloader serves after a
    failed download); its failure fails the start with the reason, and systemd retries."""
    host = Host(tmp_path, {"gpu": False})
    (host.mount / "models" / TINY_WEIGHTS_FILE).write_bytes(b"tampered")
    result = host.run(PATH=f"{host.stubs}:{host.root}/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin")
    assert result.returncode != 0
    assert "does not match its sha256: fetching it again" in result.stderr
    assert "the model weights are not all present and verified" in result.stderr
    assert not [
        c for c in host.calls("docker") if c["argv"][0] == "run" and "--entrypoint" not in c["argv"]
    ]
    assert not (host.mount / "models" / TINY_WEIGHTS_FILE).exists(), "never served"


def test_verified_weights_let_localai_start_and_are_not_listed_as_models(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False})
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert f"{TINY_WEIGHTS_FILE}: verified" in result.stderr
    assert (host.mount / "models" / TINY_WEIGHTS_FILE).read_bytes() == TINY_WEIGHTS
    hidden = {p.name for p in (host.mount / "models").iterdir() if p.name.startswith(".")}
    assert hidden == set(), "the state is outside the models directory LocalAI lists"
    # ...and outside what the container can write: beside models/, root's only (item 15)
    state = host.mount / ".localai-state"
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "fetch" / "verified" / TINY_WEIGHTS_FILE).is_file()
    assert (state / "configs" / "managed-configs").is_file()


def test_a_gated_models_token_reaches_only_the_fetcher(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False, "hf_token_parameter": "/localai/dev/hf-token"})
    token = "hf_sentinel_token_0123456789"
    result = host.run(STUB_AWS_TOKEN=token)
    assert result.returncode == 0, result.stderr
    reads = [c["argv"] for c in host.calls("aws") if "/localai/dev/hf-token" in c["argv"]]
    assert reads and "--with-decryption" in reads[0]
    for call in host.calls():
        assert token not in json.dumps(call), call
    assert token not in result.stdout + result.stderr


def test_docker_images_go_to_the_weights_volume_keeping_the_amis_settings(tmp_path: Path):
    """The DLAMI ships daemon.json with the NVIDIA runtime: merge data-root into it, and
    restart a Docker that came up with its root on the root disk (issue 12, item 2)."""
    host = Host(tmp_path, {"gpu": True})
    config = host.root / "etc/docker/daemon.json"
    config.parent.mkdir(parents=True)
    nvidia = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}
    config.write_text(json.dumps(nvidia))
    result = host.run(**GPU_OK)
    assert result.returncode == 0, result.stderr
    merged = json.loads(config.read_text())
    # The classic image store: Docker 29+ puts a fresh install's images in containerd's
    # root, off the volume (issue 18, item 14b).
    classic = {"containerd-snapshotter": False}
    assert merged == {**nvidia, "data-root": f"{host.mount}/docker", "features": classic}
    assert ["restart", "docker.service"] in [c["argv"] for c in host.calls("systemctl")]
    assert (host.mount / "docker").is_dir()
    # The daemon (stub) still reports another root: said loudly, the start goes on.
    assert "WARNING: Docker keeps its images in /var/lib/docker" in result.stderr

    again = host.run(STUB_DOCKER_ROOT=f"{host.mount}/docker", **GPU_OK)
    assert again.returncode == 0, again.stderr
    systemctl = [c["argv"] for c in host.calls("systemctl")]
    assert ["start", "docker.service"] in systemctl and [
        "restart",
        "docker.service",
    ] not in systemctl
    assert "WARNING: Docker keeps" not in again.stderr


def test_a_start_writes_the_boot_timeline_in_order(tmp_path: Path):
    host = Host(tmp_path, {"gpu": False, "log_group": ""})
    result = host.run()
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("localai-boot: ")]
    phases = [dict(f.split("=", 1) for f in line.split()[1:])["phase"] for line in lines]
    assert phases == [
        "volume_ready", "docker_ready", "image_present", "weights_present", "container_start",
    ]  # fmt: skip
    fields = dict(f.split("=", 1) for f in lines[2].split()[1:])
    assert (fields["source"], fields["accelerator"]) == ("pulled", "cpu")
    weights = dict(f.split("=", 1) for f in lines[3].split()[1:])
    assert (weights["source"], weights["bytes"]) == ("verified", str(len(TINY_WEIGHTS)))
    times = [float(dict(f.split("=", 1) for f in line.split()[1:])["t"]) for line in lines]
    assert times == sorted(times)


def test_a_config_with_the_containerd_store_on_is_turned_to_the_classic_one(tmp_path: Path):
    host = Host(tmp_path, {"gpu": True})
    config = host.root / "etc/docker/daemon.json"
    config.parent.mkdir(parents=True)
    root = f"{host.mount}/docker"
    config.write_text(
        json.dumps(
            {"data-root": root, "features": {"containerd-snapshotter": True, "buildkit": True}}
        )
    )
    result = host.run(STUB_DOCKER_ROOT=root, **GPU_OK)
    assert result.returncode == 0, result.stderr
    features = json.loads(config.read_text())["features"]
    assert features == {"containerd-snapshotter": False, "buildkit": True}
    assert ["restart", "docker.service"] in [c["argv"] for c in host.calls("systemctl")]
