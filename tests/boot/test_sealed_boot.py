"""A sealed host (``localai:egress none``, issue 20) booted with no route out: the rendered
user data under a real systemd, cloud-init and Docker, in a network namespace that has only
loopback. The image comes from the stack's "ECR" registry, pulled by digest over TLS after a
``docker login`` with the role's token; the weights come from the stack's "S3" bucket through
the fetcher's s3:// path (``s3_get``, ranged GETs). Nothing else is reachable: no model hub,
no registry mirror, no default route. The first boot serves; the reboot serves again with
the image kept and the weights verified, nothing fetched.

Stand-ins (tests/boot/ec2_standin.py, plus here): Debian's docker-registry as the account's
registry on 127.0.0.2:443 under its ECR name, and an ``aws`` that answers SSM, ``ecr
get-login-password`` and ``s3api get-object --range`` from a directory (S3's API itself runs
against moto in tests/components/weights/test_fetch_s3.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from components.aws.bootstrap.bundle import bundle_key
from components.aws.bootstrap.cloud_init import BootstrapSpec, render_bundle, render_user_data
from tests.boot import ec2_standin
from tests.boot.machine import Machine
from tests.boot.test_serving_boot import (  # noqa: F401 (fixtures)
    INSTANCE_ID,
    SERIAL,
    VOLUME_DEVICE,
    WEIGHTS,
    Host,
    hub_certificate,
    loop_volume,
    serving_spec,
)
from tests.components.aws.bootstrap.cloud_init_support import FLEET_GROUP, fleet_spec, make_spec
from tests.docker.conftest import docker_engine, standin_image  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

ACCOUNT = "123456789012"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
ECR_ADDRESS = "127.0.0.2"  # the hub stand-in holds 127.0.0.1:443
REPOSITORY = "localai/localai-test"
BUCKET = f"localai-test-{ACCOUNT}-eu-west-1"
TOKEN = "ecr-token-of-the-instance-role"

STUB_AWS = f"""#!/usr/bin/python3
# The stand-in AWS CLI of a sealed host: records every call; SSM answers the key, ECR a
# registry token, S3 ranged GETs of /srv/s3/BUCKET/KEY (as `aws s3api get-object`).
import sys
argv = sys.argv[1:]
with open("/var/log/aws-calls", "a") as log:
    log.write("aws " + " ".join(argv) + "\\n")
def opt(name):
    return argv[argv.index(name) + 1] if name in argv else None
text = " ".join(argv)
if argv[:2] == ["ssm", "get-parameter"]:
    query = opt("--query")
    if query == "Parameter.[Version,Value]":
        print("1\\t{ec2_standin.API_KEY}")
    elif query == "Parameter.Version":
        print("1")
    else:
        print("{ec2_standin.API_KEY}")
elif argv[:2] == ["ecr", "get-login-password"]:
    print("{TOKEN}")
elif argv[:2] == ["s3api", "get-object"]:
    path = "/srv/s3/" + opt("--bucket") + "/" + opt("--key")
    try:
        body = open(path, "rb").read()
    except FileNotFoundError:
        print("An error occurred (NoSuchKey) when calling the GetObject operation", file=sys.stderr)
        sys.exit(254)
    if opt("--range") is None:  # the whole object (a fleet's bootstrap bundle)
        start, end = "0", str(len(body) - 1)
    else:
        start, _, end = opt("--range").removeprefix("bytes=").partition("-")
    with open(argv[-1], "wb") as out:
        out.write(body[int(start): int(end) + 1])
    print('{{"ContentLength": %d}}' % (min(int(end) + 1, len(body)) - int(start)))
sys.exit(0)
"""

REGISTRY_DROPIN = """[Unit]
After=ec2-imds.service
[Service]
AmbientCapabilities=CAP_NET_BIND_SERVICE
"""


@pytest.fixture(scope="session")
def ecr_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("ecr-tls")
    cert, key = directory / "ecr.pem", directory / "ecr.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={ECR_HOST}", "-addext", f"subjectAltName=DNS:{ECR_HOST}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def ecr_registry(standin_image: str, booted_root: Path) -> tuple[Path, str]:  # noqa: F811
    """The registry's storage with the stand-in image in the stack's repository, and its
    manifest digest (what the program reads with ecr:getImage)."""
    storage = ec2_standin.registry_storage(booted_root, standin_image, [REPOSITORY])
    link = (
        storage
        / f"docker/registry/v2/repositories/{REPOSITORY}/_manifests/tags/latest/current/link"
    )
    return storage, link.read_text().strip()


def install_sealed(
    root: Path, certificate: tuple[Path, Path], s3_objects: dict[str, bytes]
) -> None:
    """Over ec2_standin.install: the registry as the account's ECR on 443 (TLS, trusted by
    Docker), no registry mirror, and the bucket's objects."""
    cert, key = certificate
    etc = root / "etc/ec2-standin"
    subprocess.run(["cp", str(cert), str(etc / "ecr.pem")], check=True)
    subprocess.run(["cp", str(key), str(etc / "ecr.key")], check=True)
    subprocess.run(["chmod", "0644", str(etc / "ecr.pem"), str(etc / "ecr.key")], check=True)
    (root / "etc/docker/registry/config.yml").write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n"
        f"http:\n  addr: {ECR_ADDRESS}:443\n  tls:\n"
        "    certificate: /etc/ec2-standin/ecr.pem\n    key: /etc/ec2-standin/ecr.key\n"
    )
    dropin = root / "etc/systemd/system/docker-registry.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "ecr.conf").write_text(REGISTRY_DROPIN)
    certs = root / "etc/docker/certs.d" / ECR_HOST
    certs.mkdir(parents=True)
    subprocess.run(["cp", str(cert), str(certs / "ca.crt")], check=True)
    (root / "etc/docker/daemon.json").write_text("{}\n")  # no mirror: Docker Hub unreachable
    with (root / "etc/hosts").open("a") as hosts:
        hosts.write(f"{ECR_ADDRESS} {ECR_HOST}\n")
    for key_name, body in s3_objects.items():
        target = root / "srv/s3" / BUCKET / key_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)


def sealed_spec(tiny_gguf: Path, digest: str, *, fleet: bool = False) -> BootstrapSpec:
    body = tiny_gguf.read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    image = f"{ECR_HOST}/{REPOSITORY}@{digest}"
    base = serving_spec(
        fleet_spec() if fleet else make_spec(volume_device=VOLUME_DEVICE), tiny_gguf
    )
    return dataclasses.replace(
        base,
        cpu_image=image,
        gpu_image=image,
        install_docker=False,
        ecr_registry=ECR_HOST,
        weights_manifest=f"{WEIGHTS}\t{sha}\t{len(body)}\ts3://{BUCKET}/weights/{sha}/{WEIGHTS}\n",
        bundle_bucket=BUCKET if fleet else "",
    )


@pytest.fixture
def sealed_host(
    tmp_path: Path,
    ecr_registry: tuple[Path, str],
    ecr_certificate: tuple[Path, Path],
    hub_certificate: tuple[Path, Path],  # noqa: F811
    tiny_gguf: Path,
    loop_volume: Path,  # noqa: F811
    machines: list[Machine],
) -> Callable[[], tuple[Host, BootstrapSpec]]:
    def boot(*, fleet: bool = False) -> tuple[Host, BootstrapSpec]:
        storage, digest = ecr_registry
        spec = sealed_spec(tiny_gguf, digest, fleet=fleet)
        directory = tmp_path / "sealed"
        binds = ec2_standin.volume_binds(loop_volume, serial=SERIAL, scratch=directory)
        machine = Machine(
            directory / "machine", render_user_data(spec), stubs={"aws": STUB_AWS},
            nspawn_args=binds,
        )  # fmt: skip
        ec2_standin.install(
            machine.root,
            meta_data={"instance-type": "g6.xlarge" if fleet else "c7a.xlarge",
                       "instance-id": INSTANCE_ID,
                       "placement/region": "eu-west-1"},
            hub_files={},  # nothing on the hub: a download from it would fail
            hub_certificate=hub_certificate,
            registry=storage,
            ebs_serial=SERIAL,
        )  # fmt: skip
        sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
        objects = {f"weights/{sha}/{WEIGHTS}": tiny_gguf.read_bytes()}
        if fleet:
            bundle = render_bundle(spec)
            objects[bundle_key(bundle)] = bundle
        install_sealed(machine.root, ecr_certificate, objects)
        machines.append(machine)
        machine.boot()
        return Host(machine), spec

    return boot


def aws_calls(host: Host) -> list[str]:
    return host.sh("cat /var/log/aws-calls").splitlines()


def test_a_sealed_host_serves_from_its_own_stores_with_no_route_out(sealed_host) -> None:
    host, spec = sealed_host()
    host.wait_for_warm_up()
    assert host.machine.run("cloud-init", "status").stdout.strip() == "status: done"
    # No way out: loopback only, no default route, nothing on the hub asked for.
    assert host.sh("ip -4 route show default").strip() == ""
    routes = host.sh("ip -4 route show").splitlines()
    assert routes and all(" dev docker0 " in r for r in routes), routes  # Docker's bridge only
    links = {name.split("@")[0] for name in host.sh("ip -o link show | cut -d: -f2").split()}
    assert {n for n in links if not n.startswith("veth")} == {"lo", "docker0"}, links
    assert host.sh("cat /var/log/hub-requests 2>/dev/null").strip() == ""
    phases = host.timeline()
    assert phases["image_present"]["source"] == "pulled", phases
    assert phases["weights_present"]["source"] == "fetched", phases
    # The image by digest from the account's registry, after a login with the role's token.
    images = host.sh("docker images --digests --format '{{.Repository}}@{{.Digest}}'").split()
    assert spec.cpu_image in images, images
    auths = json.loads(host.sh("cat /root/.docker/config.json"))["auths"]
    assert list(auths) == [ECR_HOST]
    calls = aws_calls(host)
    assert "aws ecr get-login-password --region eu-west-1" in calls
    gets = [c for c in calls if c.startswith("aws s3api get-object")]
    assert gets and all(f"--bucket {BUCKET} --key weights/" in c for c in gets), calls
    assert host.chat()["choices"]
    # The reboot: the image kept and the weights verified on the volume, nothing fetched.
    before = aws_calls(host)
    host.machine.reboot()
    host.wait_for_warm_up()
    phases = host.timeline()
    assert phases["image_present"]["source"] == "kept", phases
    assert phases["weights_present"]["source"] == "verified", phases
    new = aws_calls(host)[len(before) :]
    assert not [c for c in new if c.startswith(("aws s3api", "aws ecr"))], new
    assert host.chat()["choices"]


def test_a_sealed_fleet_host_boots_from_its_bundle_and_completes_its_hook(sealed_host) -> None:
    host, spec = sealed_host(fleet=True)
    host.wait_for_warm_up()
    assert host.machine.run("cloud-init", "status").stdout.strip() == "status: done"
    assert host.sh("ip -4 route show default").strip() == ""
    calls = aws_calls(host)
    (fetch,) = [c for c in calls if c.startswith("aws s3api get-object") and "bootstrap/" in c]
    assert f"--bucket {BUCKET} --key {bundle_key(render_bundle(spec))} " in fetch + " "
    # Only Docker's drop-in came inline; the bundle brought the rest, the profile found g6.
    conf = host.sh("cat /etc/localai/localai.conf")
    assert "LOCALAI_INSTANCE_TYPE=g6.xlarge" in conf and f"LOCALAI_ECR_REGISTRY={ECR_HOST}" in conf
    assert host.sh("stat -c %a /usr/local/sbin/localai-run /usr/local/sbin/s3_get").split() == [
        "755",
        "755",
    ]
    assert host.sh("test -e /run/localai-bootstrap.tar.gz && echo left").strip() == ""
    assert host.timeline()["image_present"]["source"] == "pulled"
    assert host.chat()["choices"]
    completed = [c for c in aws_calls(host) if "complete-lifecycle-action" in c]
    assert completed and FLEET_GROUP in completed[-1] and "CONTINUE" in completed[-1], calls
