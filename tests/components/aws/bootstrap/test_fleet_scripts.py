"""The fleet host's scripts, run for real as cloud-init installs them (compacted), against
a stub ``aws`` that records its arguments, a stub ``systemctl``, a fake IMDS, a fake sysfs
and a fake LocalAI: the host profile, the lifecycle heartbeat and the completion path of
the warm-up (CONTINUE on success, ABANDON otherwise)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from components.aws.bootstrap.cloud_init import (
    CONF_PATH,
    FLEET_DIR,
    FLEET_SCRIPTS,
    FLEET_UNITS,
    compact_script,
    compact_unit,
    read_file,
    render_user_data,
)
from tests.components.aws.bootstrap.cloud_init_support import (
    FLEET_GROUP,
    FLEET_HOOK,
    SENTINEL_KEY,
    assert_same_code,
    decoded_files,
    fleet_spec,
    install,
    make_spec,
    runcmd_steps,
    skip_or_fail,
)

INSTANCE_ID = "i-0123456789abcdef0"
GROUP = FLEET_GROUP
HOOK = FLEET_HOOK
VOLUME_SERIAL = "vol0123456789abcdef0"


def write_stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


STUB_AWS = r"""
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
outcomes = os.environ.get("STUB_AWS_OUTCOMES", "")
count_file = os.environ["STUB_LOG"] + ".n"
n = int(open(count_file).read()) if os.path.exists(count_file) else 0
open(count_file, "w").write(str(n + 1))
outcome = outcomes.split(",")[n] if n < len(outcomes.split(",")) and outcomes else "ok"
if outcome == "inactive":
    sys.stderr.write("An error occurred (ValidationError) when calling the "
                     "CompleteLifecycleAction operation: No active Lifecycle Action found "
                     "with instance ID i-0123456789abcdef0\n")
    sys.exit(254)
if outcome == "fail":
    sys.stderr.write("Could not connect to the endpoint URL\n")
    sys.exit(255)
"""

STUB_SYSTEMCTL = r"""
import os, sys
assert sys.argv[1:] == ["show", "--property", "ActiveState", "--value",
                        "localai-warmup.service"], sys.argv
print(os.environ.get("STUB_ACTIVE_STATE", "inactive"))
"""


@dataclasses.dataclass
class FleetHost:
    root: Path
    stubs: Path
    log: Path

    def path(self, installed: str) -> Path:
        return self.root / installed.lstrip("/")

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {
            "PATH": f"{self.stubs}:/usr/sbin:/usr/bin:/sbin:/bin",
            "LOCALAI_CONF": str(self.path(CONF_PATH)),
            "LOCALAI_FLEET_DIR": str(self.path(FLEET_DIR)),
            "LOCALAI_INSTANCE_ID_FILE": str(self.root / "instance-id"),
            "LOCALAI_LIFECYCLE_RETRY_S": "0",
            "STUB_LOG": str(self.log),
            **env,
        }
        return subprocess.run(
            ["bash", str(self.path(f"/usr/local/sbin/{script}")), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def fleet_host(tmp_path: Path) -> FleetHost:
    root = tmp_path / "root"
    install(render_user_data(fleet_spec()), root)
    (root / "instance-id").write_text(INSTANCE_ID + "\n")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    write_stub(stubs, "aws", STUB_AWS)
    write_stub(stubs, "systemctl", STUB_SYSTEMCTL)
    return FleetHost(root, stubs, tmp_path / "aws.log")


def with_conf(host: FleetHost, extra: str = "") -> None:
    """The settings file as localai-host-profile leaves it (base + the type's profile)."""
    base = host.path(f"{FLEET_DIR}/base.conf").read_text()
    profile = host.path(f"{FLEET_DIR}/g6.xlarge.conf").read_text()
    host.path(CONF_PATH).write_text(base + profile + extra)


def hook_args(result: str) -> list[str]:
    return [
        "autoscaling",
        "complete-lifecycle-action",
        "--lifecycle-action-result",
        result,
        "--region",
        "eu-west-1",
        "--auto-scaling-group-name",
        GROUP,
        "--lifecycle-hook-name",
        HOOK,
        "--instance-id",
        INSTANCE_ID,
    ]


# --- what ships ----------------------------------------------------------------------------


def test_fleet_scripts_are_the_files_minus_their_comment_lines():
    files = decoded_files(render_user_data(fleet_spec()))
    for path, name in FLEET_SCRIPTS.items():
        source = read_file(name)
        assert files[path] == compact_script(source)
        assert_same_code(source, files[path], path)
    for path, name in FLEET_UNITS.items():
        assert files[path] == compact_unit(read_file(name))


def test_compaction_keeps_here_documents_and_directives():
    text = (
        "#!/usr/bin/env bash\n# a comment\n    # indented comment\n"
        "# shellcheck source=/dev/null\necho 1 # trailing stays\n"
        "python3 - <<'PY'\n# kept: inside a here-document\nif 1:\n    print(1)\nPY\n# gone\n"
        "if true; then\n    echo 2\nfi\n"
    )
    assert compact_script(text) == (
        "#!/usr/bin/env bash\n# shellcheck source=/dev/null\necho 1 # trailing stays\n"
        "python3 - <<'PY'\n# kept: inside a here-document\nif 1:\n    print(1)\nPY\n"
        "if true; then\necho 2\nfi\n"
    )


def test_every_compacted_script_still_parses():
    files = decoded_files(render_user_data(fleet_spec()))
    for path, content in files.items():
        if path.startswith("/usr/local/sbin/"):
            result = subprocess.run(["bash", "-n"], input=content, capture_output=True, text=True)
            assert result.returncode == 0, f"{path}: {result.stderr}"


def test_single_host_scripts_and_units_are_compacted_the_same_way():
    files = decoded_files(render_user_data(make_spec(gpu=True)))
    source = read_file("localai-run.sh")
    assert files["/usr/local/sbin/localai-run"] == compact_script(source)
    assert len(files["/usr/local/sbin/localai-run"]) < len(source)
    unit = read_file("localai.service")
    assert files["/etc/systemd/system/localai.service"] == compact_unit(unit)
    assert "#" not in compact_unit(
        unit
    ) and "ExecStart=/usr/local/sbin/localai-run" in compact_unit(unit)
    assert not set(FLEET_SCRIPTS) & set(files)


# --- localai-lifecycle -----------------------------------------------------------------------


def test_successful_warm_up_continues_the_hook(fleet_host: FleetHost):
    with_conf(fleet_host)
    result = fleet_host.run("localai-lifecycle", "complete", SERVICE_RESULT="success")
    assert result.returncode == 0, result.stderr
    assert fleet_host.calls() == [hook_args("CONTINUE")]


@pytest.mark.parametrize("service_result", ["exit-code", "timeout", "signal", ""])
def test_failed_warm_up_abandons_the_instance(fleet_host: FleetHost, service_result: str):
    with_conf(fleet_host)
    result = fleet_host.run("localai-lifecycle", "complete", SERVICE_RESULT=service_result)
    assert result.returncode == 0, result.stderr
    assert fleet_host.calls() == [hook_args("ABANDON")]


def test_no_waiting_action_is_not_an_error(fleet_host: FleetHost):
    """A reboot of an InService instance runs the warm-up again: nothing waits for it."""
    with_conf(fleet_host)
    result = fleet_host.run(
        "localai-lifecycle", "complete", SERVICE_RESULT="success", STUB_AWS_OUTCOMES="inactive"
    )
    assert result.returncode == 0, result.stderr
    assert "already in service" in result.stderr
    assert len(fleet_host.calls()) == 1  # not retried


def test_transient_failures_are_retried_then_reported(fleet_host: FleetHost):
    with_conf(fleet_host)
    ok = fleet_host.run(
        "localai-lifecycle", "complete", SERVICE_RESULT="success", STUB_AWS_OUTCOMES="fail,ok"
    )
    assert ok.returncode == 0, ok.stderr
    assert fleet_host.calls() == [hook_args("CONTINUE")] * 2
    fleet_host.log.unlink()
    Path(str(fleet_host.log) + ".n").unlink()
    failed = fleet_host.run(
        "localai-lifecycle",
        "complete",
        SERVICE_RESULT="success",
        STUB_AWS_OUTCOMES="fail,fail,fail",
        LOCALAI_LIFECYCLE_ATTEMPTS="3",
    )
    assert failed.returncode == 1
    assert "could not complete the lifecycle action" in failed.stderr
    assert len(fleet_host.calls()) == 3


def test_heartbeat_only_while_the_warm_up_runs(fleet_host: FleetHost):
    with_conf(fleet_host)
    idle = fleet_host.run("localai-lifecycle", "heartbeat", STUB_ACTIVE_STATE="inactive")
    assert idle.returncode == 0 and fleet_host.calls() == []
    busy = fleet_host.run("localai-lifecycle", "heartbeat", STUB_ACTIVE_STATE="activating")
    assert busy.returncode == 0, busy.stderr
    (call,) = fleet_host.calls()
    assert call[:2] == ["autoscaling", "record-lifecycle-action-heartbeat"]
    assert call[-2:] == ["--instance-id", INSTANCE_ID]


@pytest.mark.parametrize(
    ("conf_edit", "expected"),
    [
        ("LOCALAI_LIFECYCLE_HOOK=\n", "no LOCALAI_AUTOSCALING_GROUP / LOCALAI_LIFECYCLE_HOOK"),
        ("LOCALAI_AUTOSCALING_GROUP=\n", "no LOCALAI_AUTOSCALING_GROUP / LOCALAI_LIFECYCLE_HOOK"),
        ("LOCALAI_REGION=\n", "no LOCALAI_REGION"),
    ],
)
def test_lifecycle_refuses_an_incomplete_conf(fleet_host: FleetHost, conf_edit: str, expected: str):
    with_conf(fleet_host, conf_edit)
    result = fleet_host.run("localai-lifecycle", "complete", SERVICE_RESULT="success")
    assert result.returncode == 1 and expected in result.stderr
    assert fleet_host.calls() == []


def test_lifecycle_refuses_a_bad_command_and_instance_id(fleet_host: FleetHost):
    with_conf(fleet_host)
    assert "usage" in fleet_host.run("localai-lifecycle", "finish").stderr
    (fleet_host.root / "instance-id").write_text("not-an-id\n")
    result = fleet_host.run("localai-lifecycle", "complete", SERVICE_RESULT="success")
    assert result.returncode == 1 and "no instance id" in result.stderr
    assert fleet_host.calls() == []


# --- the warm-up's completion path, end to end ----------------------------------------------


class FakeLocalAI(BaseHTTPRequestHandler):
    chat_status: ClassVar[int] = 200

    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        payload = b'{"choices":[{"message":{"role":"assistant","content":"Hi"}}]}'
        self.send_response(type(self).chat_status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_ai() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLocalAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "result"), [(200, "CONTINUE"), (500, "ABANDON")])
def test_warm_up_then_the_hook(
    fleet_host: FleetHost, local_ai: ThreadingHTTPServer, status: int, result: str
):
    """What systemd does: run localai-warmup, then ExecStopPost with $SERVICE_RESULT."""
    if not shutil.which("curl"):
        skip_or_fail("curl not found")
    run_dir = fleet_host.root / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "auth.header").write_text(f"Authorization: Bearer {SENTINEL_KEY}\n")
    port = local_ai.server_address[1]
    with_conf(fleet_host, f"LOCALAI_PORT={port}\nLOCALAI_RUN_DIR={run_dir}\n")
    write_stub(fleet_host.stubs, "localai-timeline", "")
    FakeLocalAI.chat_status = status
    warm = fleet_host.run(
        "localai-warmup", LOCALAI_WARMUP_POLL_S="0.1", LOCALAI_WARMUP_ATTEMPTS="2"
    )
    assert (warm.returncode == 0) == (status == 200), warm.stderr
    done = fleet_host.run(
        "localai-lifecycle",
        "complete",
        SERVICE_RESULT="success" if warm.returncode == 0 else "exit-code",
        EXIT_STATUS=str(warm.returncode),
    )
    assert done.returncode == 0, done.stderr
    assert fleet_host.calls() == [hook_args(result)]
    assert SENTINEL_KEY not in json.dumps(fleet_host.calls())


# --- localai-host-profile ------------------------------------------------------------------


class FakeImds(BaseHTTPRequestHandler):
    instance_type: ClassVar[str] = "g6.xlarge"
    token = "imds-token-1"

    def do_PUT(self):
        ok = self.path == "/latest/api/token" and self.headers.get(
            "X-aws-ec2-metadata-token-ttl-seconds"
        )
        self._answer(200 if ok else 400, self.token if ok else "")

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self._answer(401, "")  # IMDSv2 only, as the launch template requires
        elif self.path == "/latest/meta-data/instance-type":
            self._answer(200, type(self).instance_type)
        else:
            self._answer(404, "")

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeImds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def nvme(sys_block: Path, name: str, model: str, serial: str) -> None:
    device = sys_block / name / "device"
    device.mkdir(parents=True)
    # The kernel pads both fields with spaces.
    (device / "model").write_text(f"{model:<40}\n")
    (device / "serial").write_text(f"{serial:<20}\n")


def profile(host: FleetHost, imds_url: str, sys_block: Path, **env: str):
    return host.run(
        "localai-host-profile",
        LOCALAI_IMDS_URL=imds_url,
        LOCALAI_SYS_BLOCK=str(sys_block),
        LOCALAI_BY_ID_DIR="/dev/disk/by-id",
        LOCALAI_ROOT_DISK="nvme0n1",
        LOCALAI_PROFILE_VOLUME_WAIT_S="1",
        LOCALAI_PROFILE_POLL_S="0.1",
        LOCALAI_IMDS_ATTEMPTS="2",
        **env,
    )


def conf_values(host: FleetHost) -> dict[str, str]:
    lines = host.path(CONF_PATH).read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "every key once: bash and systemd read the same"
    return dict(pairs)


def test_profile_writes_the_types_settings_and_the_volume(
    fleet_host: FleetHost, imds: str, tmp_path: Path
):
    sys_block = tmp_path / "sys-block"
    nvme(sys_block, "nvme0n1", "Amazon Elastic Block Store", "vol0aaaaaaaaaaaaaaaa")  # root
    nvme(sys_block, "nvme1n1", "Amazon EC2 NVMe Instance Storage", "AWS1234567890")  # g6 SSD
    nvme(sys_block, "nvme2n1", "Amazon Elastic Block Store", VOLUME_SERIAL)
    FakeImds.instance_type = "g4dn.xlarge"
    result = profile(fleet_host, imds, sys_block)
    assert result.returncode == 0, result.stderr
    values = conf_values(fleet_host)
    assert values["LOCALAI_INSTANCE_TYPE"] == "g4dn.xlarge"
    assert values["LOCALAI_THREADS"] == "2"  # the g4dn profile, not the first type's
    assert values["LOCALAI_MODEL_SRC_DIR"] == "/etc/localai/models/g4dn.xlarge"
    assert values["LOCALAI_VOLUME_DEVICE"] == (
        f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{VOLUME_SERIAL}"
    )
    assert values["LOCALAI_AUTOSCALING_GROUP"] == GROUP
    assert oct(fleet_host.path(CONF_PATH).stat().st_mode & 0o777) == "0o644"
    # Run again (a re-run of runcmd): the same file.
    before = fleet_host.path(CONF_PATH).read_text()
    assert profile(fleet_host, imds, sys_block).returncode == 0
    assert fleet_host.path(CONF_PATH).read_text() == before


def test_profile_refuses_to_guess_between_two_data_volumes(
    fleet_host: FleetHost, imds: str, tmp_path: Path
):
    sys_block = tmp_path / "sys-block"
    nvme(sys_block, "nvme0n1", "Amazon Elastic Block Store", "vol0aaaaaaaaaaaaaaaa")
    nvme(sys_block, "nvme1n1", "Amazon Elastic Block Store", VOLUME_SERIAL)
    nvme(sys_block, "nvme2n1", "Amazon Elastic Block Store", "vol0bbbbbbbbbbbbbbbb")
    FakeImds.instance_type = "g6.xlarge"
    result = profile(fleet_host, imds, sys_block)
    assert result.returncode == 1
    assert "refusing to guess" in result.stderr
    assert not fleet_host.path(CONF_PATH).exists()


def test_profile_never_takes_the_root_disk(fleet_host: FleetHost, imds: str, tmp_path: Path):
    sys_block = tmp_path / "sys-block"
    nvme(sys_block, "nvme0n1", "Amazon Elastic Block Store", "vol0aaaaaaaaaaaaaaaa")
    FakeImds.instance_type = "g6.xlarge"
    result = profile(fleet_host, imds, sys_block)
    assert result.returncode == 1
    assert "no EBS weights volume appeared within 1s" in result.stderr
    assert not fleet_host.path(CONF_PATH).exists()


def test_profile_refuses_a_type_the_fleet_did_not_size(
    fleet_host: FleetHost, imds: str, tmp_path: Path
):
    sys_block = tmp_path / "sys-block"
    nvme(sys_block, "nvme1n1", "Amazon Elastic Block Store", VOLUME_SERIAL)
    FakeImds.instance_type = "p5.48xlarge"
    result = profile(fleet_host, imds, sys_block)
    assert result.returncode == 1
    assert "p5.48xlarge, which has no profile" in result.stderr
    assert "g4dn.xlarge" in result.stderr and "g6.xlarge" in result.stderr
    assert not fleet_host.path(CONF_PATH).exists()


def test_profile_needs_imds(fleet_host: FleetHost, tmp_path: Path):
    sys_block = tmp_path / "sys-block"
    nvme(sys_block, "nvme1n1", "Amazon Elastic Block Store", VOLUME_SERIAL)
    result = profile(fleet_host, "http://127.0.0.1:9", sys_block)
    assert result.returncode == 1 and "no instance type from IMDS" in result.stderr
    assert not fleet_host.path(CONF_PATH).exists()


# --- schema and units ------------------------------------------------------------------------


def test_fleet_user_data_validates_against_cloud_init_schema():
    import os

    import yaml

    from tests.components.aws.bootstrap.test_cloud_init import (
        DEFAULT_SCHEMA_PATH,
        known_top_level_keys,
        schema_errors,
    )

    path = Path(os.environ.get("CLOUD_INIT_SCHEMA", DEFAULT_SCHEMA_PATH))
    if not path.is_file():
        skip_or_fail(
            f"cloud-init schema not found at {path}: run scripts/fetch-cloud-init-schema.sh"
        )
    schema = json.loads(path.read_text())
    config = yaml.safe_load(render_user_data(fleet_spec()))
    assert schema_errors(schema, config) == []
    assert set(config) <= known_top_level_keys(schema)
    # The profile step runs first; the volume step reads the conf it wrote.
    assert runcmd_steps(config)[0] == ["/usr/local/sbin/localai-host-profile"]
    assert runcmd_steps(config)[1][:2] == ["sh", "-c"]
    assert '"$LOCALAI_VOLUME_DEVICE"' in runcmd_steps(config)[1][2]
    assert "localai-lifecycle-heartbeat.timer" in runcmd_steps(config)[-1]


def test_fleet_units_pass_systemd_analyze_verify(tmp_path: Path):
    from tests.components.aws.bootstrap.test_scripts import OS_BINARIES, host_unit_dir

    systemd_analyze = shutil.which("systemd-analyze")
    if not systemd_analyze:
        skip_or_fail("systemd-analyze not found (apt-get install systemd)")
    root = tmp_path / "root"
    shutil.copytree(host_unit_dir(), root / "usr/lib/systemd/system", symlinks=True)
    install(render_user_data(fleet_spec()), root)
    with_conf(FleetHost(root, tmp_path, tmp_path / "log"))
    for binary in OS_BINARIES:
        stub = root / binary.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    (root / "etc/systemd/system/docker.service").write_text(
        "[Unit]\nDescription=Docker (stub)\n[Service]\nExecStart=/usr/bin/docker\n"
    )
    units = ["localai-warmup.service", "localai-lifecycle-heartbeat.service",
             "localai-lifecycle-heartbeat.timer"]  # fmt: skip
    result = subprocess.run(
        [systemd_analyze, "verify", f"--root={root}", "--man=no", "--generators=no", *units],
        capture_output=True,
        text=True,
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "localai" in line]
    assert result.returncode == 0 and problems == [], problems
    dropin = root / "etc/systemd/system/localai-warmup.service.d/20-lifecycle.conf"
    assert "ExecStopPost=/usr/local/sbin/localai-lifecycle complete" in dropin.read_text()


# --- issue 18, items 11, 12 and 14: what a real boot showed -------------------------------


def test_a_failed_profile_step_abandons_the_launch_from_base_conf(fleet_host: FleetHost):
    """No settings file (no EBS disk, two, an unknown type, IMDS down): the hook used to
    wait out its 900 s timeout while localai.service restarted in a loop (item 12)."""
    assert not fleet_host.path(CONF_PATH).exists()
    result = fleet_host.run("localai-lifecycle", "complete", SERVICE_RESULT="host-profile-failed")
    assert result.returncode == 0, result.stderr
    assert "the host profile step failed): using" in result.stderr
    assert fleet_host.calls() == [hook_args("ABANDON")]


def unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_the_units_survive_a_missing_settings_file_without_a_restart_loop():
    files = decoded_files(render_user_data(fleet_spec()))
    warmup = files["/etc/systemd/system/localai-warmup.service"]
    # '-': systemd still runs ExecStopPost (the lifecycle drop-in) when the file is missing
    assert unit_values(warmup, "EnvironmentFile") == [f"-{CONF_PATH}"]
    service = files["/etc/systemd/system/localai.service"]
    assert unit_values(service, "ConditionPathExists") == [CONF_PATH]


def test_the_warm_up_hangs_off_localai_service_not_multi_user_target():
    """WantedBy=multi-user.target held multi-user.target and cloud-final until the model
    answered, at every reboot and warm-pool start (item 11)."""
    warmup = read_file("localai-warmup.service")
    assert unit_values(warmup, "WantedBy") == ["localai.service"]
    assert "multi-user.target" not in "".join(
        unit_values(warmup, "WantedBy") + unit_values(warmup, "Before")
    )


def test_stopping_localai_is_a_success_not_a_failure():
    """docker run exits 143 on the stop's SIGTERM: the unit ended failed and the system
    degraded (item 14)."""
    assert unit_values(read_file("localai.service"), "SuccessExitStatus") == ["143"]


STUB_STEP = r"""
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\n")
sys.exit(1 if os.path.basename(sys.argv[0]) in os.environ.get("STUB_FAIL", "").split() else 0)
"""


@pytest.mark.parametrize(("fail", "rc"), [("", 0), ("localai-prepare-volume", 1), ("systemctl", 1)])
def test_runcmd_runs_every_step_and_fails_the_stage_when_one_failed(tmp_path: Path, fail, rc):
    """cloud-init reports the stage failed only if the runcmd script exits non-zero; the
    old script ended with the last command's status (item 14)."""
    config = yaml.safe_load(render_user_data(make_spec()))
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("systemctl", "localai-prepare-volume"):
        write_stub(stubs, name, STUB_STEP)
    script = "\n".join(["#!/bin/sh", *config["runcmd"]]).replace("/usr/local/sbin/", "")
    log = tmp_path / "steps.jsonl"
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=30,
        env={"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log), "STUB_FAIL": fail},
    )  # fmt: skip
    assert result.returncode == rc
    ran = [json.loads(line)[0] for line in log.read_text().splitlines()]
    assert ran == ["localai-prepare-volume", "systemctl", "systemctl", "systemctl"], "every step"
