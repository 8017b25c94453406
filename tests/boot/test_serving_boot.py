"""The rendered user data serving a model under a real systemd, cloud-init and Docker (issue
18, "done when"): the dev (CPU) host, the gpu host (no GPU here: its CPU fallback) and a
fleet host, each booted twice. The first boot formats the blank weights volume, pulls the
image through Docker, fetches the weights over HTTPS and serves; a stop leaves nothing
failed; the reboot serves again from what the volume kept, with no request to the hub and
no pull. The LocalAI stand-in image is the only double of LocalAI; EC2 is stood in by
tests/boot/ec2_standin.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from components.aws.bootstrap.cloud_init import BootstrapSpec, HostProfile, render_user_data
from components.serving import LOCKDOWN_ENV, WEBUI_OFF_ENV
from tests.boot import ec2_standin
from tests.boot.machine import Machine
from tests.components.aws.bootstrap.cloud_init_support import (
    DEFAULT_MODEL,
    FLEET_GROUP,
    fleet_spec,
    make_spec,
)
from tests.docker.conftest import docker_engine, standin_image  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

CPU_IMAGE = "localai/localai:v2.24.0-ffmpeg-core"
GPU_IMAGE = "localai/localai:v2.24.0-cublas-cuda12"  # never pulled: no GPU in the machine
WEIGHTS = "tiny.Q4_K_M.gguf"
WEIGHTS_PATH = f"/o/r/resolve/main/{WEIGHTS}"
SERIAL = "vol0123456789abcdef0"
VOLUME_DEVICE = f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{SERIAL}"
MOUNT = "/var/lib/localai"
INSTANCE_ID = "i-0123456789abcdef0"


@pytest.fixture(scope="session")
def hub_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("hub-tls")
    cert, key = directory / "hub.pem", directory / "hub.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={ec2_standin.HUB_HOST}",
         "-addext", f"subjectAltName=DNS:{ec2_standin.HUB_HOST}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def registry(standin_image: str, booted_root: Path) -> Path:  # noqa: F811 (imported fixture)
    return ec2_standin.registry_storage(booted_root, standin_image, [CPU_IMAGE])


@pytest.fixture
def loop_volume(tmp_path: Path) -> Iterator[Path]:
    """A blank 3 GiB sparse file as a loop device: the stack's new weights volume."""
    backing = tmp_path / "ebs.img"
    with backing.open("wb") as f:
        f.truncate(3 << 30)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], check=True, capture_output=True, text=True
    ).stdout.strip()
    yield Path(device)
    subprocess.run(["losetup", "-d", device], check=False)


@dataclasses.dataclass
class Host:
    machine: Machine

    def sh(self, command: str, timeout: float = 60) -> str:
        done = self.machine.run("sh", "-c", command, timeout=timeout)
        return done.stdout

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.machine.run("systemctl", "show", unit, *(f"-p{p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.machine.run("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout

    def wait_for_warm_up(self, timeout_s: float = 900) -> None:
        """The warm-up (one completion on the default model) ended; it must have succeeded."""

        def ended() -> bool:
            # Here nothing is slow or missing: a start of localai.service that failed is a
            # failure now, not after the warm-up's wait.
            restarts = self.show("localai.service", "NRestarts").get("NRestarts", "0")
            assert restarts == "0", self.journal("localai.service")[-3000:]
            shown = self.show("localai-warmup.service", "ExecMainExitTimestampMonotonic")
            return shown.get("ExecMainExitTimestampMonotonic", "0") not in ("", "0")

        self.machine.wait_until(ended, timeout_s=timeout_s, what="the warm-up's end")
        shown = self.show("localai-warmup.service", "Result", "ExecMainStatus")
        assert shown == {"Result": "success", "ExecMainStatus": "0"}, (
            shown,
            self.journal("localai-warmup.service")[-3000:],
            self.journal("localai.service")[-3000:],
            self.sh("tail -n 30 /var/log/cloud-init-output.log"),
        )

    def chat(self) -> dict:
        body = json.dumps(
            {
                "model": DEFAULT_MODEL,
                "max_tokens": 2,
                "messages": [{"role": "user", "content": "hi"}],
            }
        )
        out = self.sh(
            "curl -sf -H @/run/localai/auth.header -H 'Content-Type: application/json' "
            f"--data '{body}' http://127.0.0.1:8080/v1/chat/completions"
        )
        assert out, "the chat completion failed"
        return json.loads(out)

    def timeline(self) -> dict[str, dict[str, str]]:
        """The last boot-timeline line of each phase, as fields."""
        phases: dict[str, dict[str, str]] = {}
        for line in self.journal("localai.service").splitlines():
            if line.startswith("localai-boot: "):
                fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
                phases[fields["phase"]] = fields
        return phases

    def hub_gets(self) -> list[str]:
        return [line for line in self.sh("cat /var/log/hub-requests").splitlines() if line]


@pytest.fixture
def ec2_host(
    tmp_path: Path,
    registry: Path,
    hub_certificate: tuple[Path, Path],
    tiny_gguf: Path,
    loop_volume: Path,
    machines: list[Machine],
) -> Callable[[BootstrapSpec, str], Host]:
    def boot(spec: BootstrapSpec, instance_type: str) -> Host:
        directory = tmp_path / f"m{len(machines)}"
        binds = ec2_standin.volume_binds(loop_volume, serial=SERIAL, scratch=directory)
        machine = Machine(
            directory / "machine",
            render_user_data(spec),
            stubs={"aws": ec2_standin.STUB_AWS},
            nspawn_args=binds,
        )
        ec2_standin.install(
            machine.root,
            meta_data={"instance-type": instance_type, "instance-id": INSTANCE_ID,
                       "placement/region": "eu-west-1"},
            hub_files={WEIGHTS_PATH: tiny_gguf.read_bytes()},
            hub_certificate=hub_certificate,
            registry=registry,
            ebs_serial=SERIAL,
        )  # fmt: skip
        machines.append(machine)
        machine.boot()
        return Host(machine)

    return boot


def serving_spec(base: BootstrapSpec, tiny_gguf: Path) -> BootstrapSpec:
    body = tiny_gguf.read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    config = yaml.safe_dump(
        {"name": DEFAULT_MODEL, "backend": "llama-cpp", "context_size": 256,
         "parameters": {"model": WEIGHTS}}
    )  # fmt: skip
    models = {f"{DEFAULT_MODEL}.yaml": config}
    return dataclasses.replace(
        base,
        cpu_image=CPU_IMAGE,
        gpu_image=GPU_IMAGE,
        log_group="",
        # The CloudWatch agent's unit is not booted here (its bucket has no stand-in in the
        # machine): tests/components/aws/bootstrap/test_metrics_agent_script.py runs it.
        metrics_namespace="",
        cpu_limit=1.0,
        memory_limit_mb=1024,
        threads=1,
        parallel_requests=1,
        cpu_models=models,
        gpu_models=models if base.gpu_capable else {},
        extra_env={**LOCKDOWN_ENV, **WEBUI_OFF_ENV},
        weights_manifest=f"{WEIGHTS}\t{sha}\t{len(body)}\thttps://{ec2_standin.HUB_HOST}{WEIGHTS_PATH}\n",
        fleet=(
            dataclasses.replace(
                base.fleet,
                profiles={"g6.xlarge": HostProfile(1.0, 1024, 1, True, models, models)},
            )
            if base.fleet
            else None
        ),
    )


def first_boot_serves(host: Host, *, fleet: bool = False) -> None:
    host.wait_for_warm_up()
    m = host.machine
    assert m.run("cloud-init", "status").stdout.strip() == "status: done", host.sh(
        "cloud-init status --long; grep -E 'FAIL|WARNING' /var/log/cloud-init.log | tail -n 20"
    )
    # The volume: formatted (it was blank), mounted from the device itself (item 13).
    assert host.sh(f"findmnt -no SOURCE,FSTYPE {MOUNT}").split() == ["/dev/nvme1n1", "ext4"]
    assert "UUID=" in host.sh("grep localai /etc/fstab")
    # Docker keeps its images on the volume (item 14b), the classic store.
    assert host.sh("docker info --format '{{.DockerRootDir}}'").strip() == f"{MOUNT}/docker"
    phases = host.timeline()
    assert phases["image_present"]["source"] == "pulled", phases
    assert phases["weights_present"]["source"] == "fetched", phases
    assert host.hub_gets() == [f"GET {WEIGHTS_PATH} -"], "one download, whole"
    answer = host.chat()
    assert answer["object"] == "chat.completion" and answer["choices"], answer
    # No key on a command line or in a readable file (the header file is 0600 in a 0700 dir).
    assert host.sh("stat -c %a /run/localai /run/localai/auth.header").split() == ["700", "600"]
    assert ec2_standin.API_KEY not in host.sh("ps -eo args")
    if fleet:
        calls = host.sh("cat /var/log/aws-calls")
        assert (
            "complete-lifecycle-action" in calls and "--lifecycle-action-result CONTINUE" in calls
        ), calls
        assert FLEET_GROUP in calls and "ABANDON" not in calls, calls
    # A stop is a stop, not a failure (item 14): nothing failed, the system is not degraded.
    m.run("systemctl", "stop", "localai.service", timeout=120)
    assert host.show("localai.service", "ActiveState", "Result") == {
        "ActiveState": "inactive",
        "Result": "success",
    }
    running = m.run("systemctl", "is-system-running").stdout.strip()
    assert running == "running", (running, host.sh("systemctl --failed --no-legend"))


def reboot_serves_from_the_volume(host: Host) -> None:
    gets_before = host.hub_gets()
    host.machine.reboot()
    host.wait_for_warm_up()
    phases = host.timeline()  # the journal is volatile: this boot's lines only
    assert phases["image_present"]["source"] == "kept", phases
    assert phases["weights_present"]["source"] == "verified", phases
    assert host.hub_gets() == gets_before, "the reboot downloaded weights again"
    assert host.chat()["choices"]
    assert host.sh(f"findmnt -no SOURCE {MOUNT}").strip() == "/dev/nvme1n1"
    assert host.machine.run("systemctl", "is-system-running").stdout.strip() == "running", host.sh(
        "systemctl --failed --no-legend"
    )


def test_a_dev_host_serves_on_first_boot_and_after_a_reboot(ec2_host, tiny_gguf):
    spec = serving_spec(make_spec(volume_device=VOLUME_DEVICE), tiny_gguf)
    host = ec2_host(spec, "t3.large")
    first_boot_serves(host)
    assert host.sh("cat /run/localai/accelerator").strip() == "cpu"
    reboot_serves_from_the_volume(host)


def test_a_gpu_host_without_a_usable_gpu_serves_on_cpu_on_both_boots(ec2_host, tiny_gguf):
    spec = serving_spec(make_spec(gpu=True, volume_device=VOLUME_DEVICE), tiny_gguf)
    host = ec2_host(spec, "g6.xlarge")
    first_boot_serves(host)
    assert (
        host.sh("cat /run/localai/accelerator").strip() == "cpu-fallback: nvidia-smi finds no GPU"
    )
    assert GPU_IMAGE not in host.sh("docker images --format '{{.Repository}}:{{.Tag}}'")
    reboot_serves_from_the_volume(host)


def test_a_fleet_host_profiles_itself_serves_and_completes_its_hook(ec2_host, tiny_gguf):
    spec = serving_spec(fleet_spec(), tiny_gguf)
    host = ec2_host(spec, "g6.xlarge")
    first_boot_serves(host, fleet=True)
    conf = host.sh("cat /etc/localai/localai.conf")
    assert f"LOCALAI_VOLUME_DEVICE={VOLUME_DEVICE}" in conf
    assert re.search(r"^LOCALAI_INSTANCE_TYPE=g6\.xlarge$", conf, re.M), conf
    reboot_serves_from_the_volume(host)
    assert "ABANDON" not in host.sh("cat /var/log/aws-calls")
