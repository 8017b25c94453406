"""What an EC2 instance has around the rendered user data, stood in inside a boot test's
machine (its own network namespace, nothing of it reaches the internet):

- IMDSv2 on 169.254.169.254 (a token from PUT, then the instance type and id with it);
- the weights "hub": HTTPS on 127.0.0.1:443 for huggingface.co (/etc/hosts), with a test CA
  in the machine's trust store, logging every request;
- the registry: Debian's docker-registry on 127.0.0.1:5000, pre-filled with the LocalAI
  stand-in image under LocalAI's name, as Docker's registry mirror (so `docker pull
  localai/localai:...` is a real pull);
- writable cgroup controllers for Docker (systemd-nspawn mounts them read-only on a cgroup v1
  host; an EC2 VM's are writable);
- no apt sources: `apt-get update` has nothing to fetch and the packages cloud-init asks for
  (docker.io, curl) are installed, as they would be once the mirror answered;
- the weights volume: a loop device bound at an NVMe-like path, with the by-id link udev
  would make and (for the fleet's host profile) the sysfs model and serial EBS shows.

Every file goes into the machine's root before it boots; units are enabled by symlink.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.boot.machine import CACHE
from tests.support.ports import free_port, listening

IMDS_ADDRESS = "169.254.169.254"
API_KEY = "sk-boot-test-key-0123456789"
STUB_AWS = f"""#!/bin/sh
# The stand-in AWS CLI: records every call; SSM answers the key (version 1).
echo "aws $*" >> /var/log/aws-calls
case "$*" in
*"get-parameter"*"Parameter.[Version,Value]"*) printf '1\\t{API_KEY}\\n' ;;
*"get-parameter"*"--query Parameter.Version"*) echo 1 ;;
*"get-parameter"*) echo "{API_KEY}" ;;
esac
exit 0
"""
HUB_HOST = "huggingface.co"
REGISTRY_PORT = 5000
EBS_MODEL = "Amazon Elastic Block Store"

IMDS_SERVER = (Path(__file__).parents[1] / "support" / "imds.py").read_text()
"""The stand-in IMDSv2 (tests/support/imds.py), copied into the machine."""

HUB_SERVER = r"""
import ssl, sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Handler(SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        with open("/var/log/hub-requests", "a") as log:
            log.write("%s %s %s\n" % (self.command, self.path, self.headers.get("Range") or "-"))

server = ThreadingHTTPServer(("127.0.0.1", 443), partial(Handler, directory="/srv/hub"))
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/etc/ec2-standin/hub.pem", "/etc/ec2-standin/hub.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

UNITS = {
    "ec2-imds.service": f"""[Unit]
Description=Stand-in IMDSv2 on {IMDS_ADDRESS}
DefaultDependencies=no
Before=cloud-init-local.service sysinit.target
[Service]
ExecStartPre=-/usr/sbin/ip link set lo up
ExecStartPre=/usr/sbin/ip addr replace {IMDS_ADDRESS}/32 dev lo
ExecStart=/usr/bin/python3 /etc/ec2-standin/imds.py /etc/ec2-standin/meta-data.json {IMDS_ADDRESS} 80
[Install]
WantedBy=sysinit.target
""",
    "ec2-hub.service": f"""[Unit]
Description=Stand-in model hub: HTTPS for {HUB_HOST} on 127.0.0.1
Before=cloud-final.service
[Service]
ExecStart=/usr/bin/python3 /etc/ec2-standin/hub.py
[Install]
WantedBy=multi-user.target
""",
    "ec2-ebs-sysfs.service": """[Unit]
Description=The weights volume's NVMe model and serial in /sys/block, as EBS shows them
DefaultDependencies=no
Before=cloud-init-local.service sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind /etc/ec2-standin/sys-block /sys/block
[Install]
WantedBy=sysinit.target
""",
    "ec2-cgroups.service": """[Unit]
Description=Writable cgroup controllers for Docker, as on a VM
DefaultDependencies=no
Before=containerd.service docker.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for c in /sys/fs/cgroup/*/; do case $c in */unified/|*/systemd/) ;; *) mount -o remount,bind,rw "$c" ;; esac; done'
[Install]
WantedBy=sysinit.target
""",
}


def registry_storage(root: Path, image: str, names: list[str]) -> Path:
    """docker-registry's storage holding ``image`` (a tag on this machine's Docker Engine)
    under each of ``names``: built once per image id with the registry binary of the boot
    root ``root`` and a push from this machine's engine, then copied into each machine."""
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        check=True, capture_output=True, text=True,
    ).stdout.strip().removeprefix("sha256:")[:16]  # fmt: skip
    names_key = hashlib.sha256("|".join(names).encode()).hexdigest()[:8]
    storage = CACHE / f"registry-{image_id}-{names_key}"
    if (storage / ".complete").exists():
        return storage
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)
    port = free_port()
    config = storage.parent / f"registry-{image_id}-{names_key}.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + str(storage) + "\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    registry = subprocess.Popen(
        [str(root / "usr/bin/docker-registry"), "serve", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert time.monotonic() < deadline, "the registry did not listen"
            time.sleep(0.2)
        for name in names:
            pushed = f"127.0.0.1:{port}/{name}"
            subprocess.run(["docker", "tag", image, pushed], check=True, capture_output=True)
            subprocess.run(["docker", "push", pushed], check=True, capture_output=True, timeout=900)
            subprocess.run(["docker", "rmi", pushed], check=True, capture_output=True)
    finally:
        registry.terminate()
        registry.wait(timeout=30)
        config.unlink(missing_ok=True)
    (storage / ".complete").write_text("")
    return storage


def _enable(root: Path, unit: str, target: str) -> None:
    wants = root / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not link.is_symlink():
        link.symlink_to(f"/etc/systemd/system/{unit}")


def install(
    root: Path,
    *,
    meta_data: dict[str, str],
    hub_files: dict[str, bytes],
    hub_certificate: tuple[Path, Path],
    registry: Path,
    ebs_serial: str,
) -> None:
    """Put the stand-in EC2 environment into a machine's root (before its first boot)."""
    etc = root / "etc/ec2-standin"
    etc.mkdir(parents=True)
    (etc / "meta-data.json").write_text(json.dumps(meta_data))
    (etc / "imds.py").write_text(IMDS_SERVER)
    (etc / "hub.py").write_text(HUB_SERVER)
    cert, key = hub_certificate
    shutil.copy(cert, etc / "hub.pem")
    shutil.copy(key, etc / "hub.key")
    os.chmod(etc / "hub.key", 0o600)
    # The hub's certificate is trusted as a CA by the machine (curl reads this bundle).
    with (root / "etc/ssl/certs/ca-certificates.crt").open("a") as bundle:
        bundle.write(cert.read_text())
    with (root / "etc/hosts").open("a") as hosts:
        hosts.write(f"127.0.0.1 {HUB_HOST}\n")
    for path, body in hub_files.items():
        target = root / "srv/hub" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    # nspawn's /sys takes no bind from outside: the machine binds this over /sys/block.
    disk = etc / "sys-block/nvme1n1/device"
    disk.mkdir(parents=True)
    (disk / "model").write_text(f"{EBS_MODEL}                     \n")
    (disk / "serial").write_text(f"{ebs_serial}        \n")
    for name, text in UNITS.items():
        (root / "etc/systemd/system" / name).write_text(text)
    _enable(root, "ec2-ebs-sysfs.service", "sysinit.target")
    _enable(root, "ec2-imds.service", "sysinit.target")
    _enable(root, "ec2-cgroups.service", "sysinit.target")
    _enable(root, "ec2-hub.service", "multi-user.target")
    # The registry: Debian's unit (enabled by its package) serves /var/lib/docker-registry,
    # without the package's htpasswd auth, on loopback.
    (root / "etc/docker/registry/config.yml").write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n"
        f"http:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n"
    )
    shutil.copytree(registry, root / "var/lib/docker-registry", dirs_exist_ok=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root / "var/lib/docker-registry")], check=True)
    docker = root / "etc/docker"
    docker.mkdir(parents=True, exist_ok=True)
    (docker / "daemon.json").write_text(
        json.dumps({"registry-mirrors": [f"http://127.0.0.1:{REGISTRY_PORT}"]})
    )
    # apt has nothing to fetch: the packages cloud-init installs are in the root already.
    (root / "etc/apt/sources.list").write_text("")
    for sources in (root / "etc/apt/sources.list.d").glob("*"):
        sources.unlink()


def volume_binds(device: Path, *, serial: str, scratch: Path) -> list[str]:
    """nspawn arguments that show ``device`` (a loop device) as EBS volume ``serial`` on
    NVMe: /dev/nvme1n1 and the by-id link udev would make (``scratch`` holds it)."""
    by_id = scratch / "by-id"
    by_id.mkdir(parents=True, exist_ok=True)
    link = by_id / f"nvme-Amazon_Elastic_Block_Store_{serial}"
    if not link.is_symlink():
        link.symlink_to("/dev/nvme1n1")
    return [f"--bind={device}:/dev/nvme1n1", f"--bind-ro={by_id}:/dev/disk/by-id"]
